"""Class schemas: label values, names, colours and name/code lookup.

A schema is a YAML file ``pipeline/data/<id>.yaml`` (the default ``fusu17`` holds the 17 FUSU
land-use classes + background, see that file for sources and known inconsistencies of the FUSU
release). Label rasters store the class *value* (uint8); ``schema.nodata`` (255) marks pixels
without imagery.

Typical use::

    schema = load_schema("fusu17")
    schema.n_classes            # 18 (values 0..17)
    schema.colormap()           # {0: (255, 255, 255, 255), ..., 255: (0, 0, 0, 0)} for rasterio
    schema.value_of("orchard")  # 8 (case-insensitive, aliases accepted)
    schema.resolve("9")         # 9 (codes or names)
"""

from __future__ import annotations

import functools
import math
import numbers
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.errors import ConfigError

DATA_DIR = Path(__file__).parent / "data"


@dataclass(frozen=True)
class ClassInfo:
    """One class: label ``value`` (uint8), display ``name``, RGB ``color`` (0..255 each)."""

    value: int
    name: str
    color: tuple[int, int, int]
    description: str = ""
    aliases: tuple[str, ...] = ()


def normalize_name(name: str) -> str:
    """Case- and whitespace-insensitive key for class names (``" Park "`` -> ``"park"``)."""
    return " ".join(str(name).replace("_", " ").split()).casefold()


def normalize_token(token: Any) -> str | None:
    """Normalise a raw class token (attribute value or CSV cell) for lookups.

    Integral numbers (``3``, ``3.0``, ``"03"``, ``"3.0"``) become ``"3"``; other strings are
    :func:`normalize_name`'d; ``None``, NaN and empty strings become ``None`` (missing).
    """
    if token is None:
        return None
    if isinstance(token, bool):
        return str(int(token))
    if isinstance(token, numbers.Number):
        f = float(token)  # type: ignore[arg-type]
        if math.isnan(f):
            return None
        return str(int(f)) if f.is_integer() else repr(f)
    text = str(token).strip()
    if not text:
        return None
    try:
        f = float(text)
    except ValueError:
        return normalize_name(text)
    if math.isnan(f):
        return None
    return str(int(f)) if f.is_integer() else normalize_name(text)


@dataclass(frozen=True)
class ClassSchema:
    """A validated class schema (see module docstring).

    Attributes:
        id: schema id (file stem).
        name: human-readable title.
        classes: classes ordered by value, values contiguous ``0..n_classes-1``.
        background: value of the background class (0 in FUSU).
        nodata: label value for "no imagery" (255), not a class.
        nodata_color: RGB shown for nodata in the colour table (alpha 0).
        priority: every value once, highest priority first (overlap_rule 'priority').
        source: where names/colours come from.
    """

    id: str
    name: str
    classes: tuple[ClassInfo, ...]
    background: int
    nodata: int
    nodata_color: tuple[int, int, int]
    priority: tuple[int, ...]
    source: str = ""

    @property
    def n_classes(self) -> int:
        """Number of classes including background (18 for FUSU); also the from-to base."""
        return len(self.classes)

    @property
    def values(self) -> list[int]:
        return [c.value for c in self.classes]

    @property
    def names(self) -> list[str]:
        """Class names indexed by value."""
        return [c.name for c in self.classes]

    def name_of(self, value: int) -> str:
        """Name of a label value (``nodata`` -> ``"No data"``)."""
        if value == self.nodata:
            return "No data"
        if 0 <= value < self.n_classes:
            return self.classes[value].name
        raise KeyError(f"{value} is not a label value of class schema {self.id!r}")

    def lookup(self) -> dict[str, int]:
        """``normalize_name(name or alias) -> value``, plus ``"no data"``/``"nodata"``."""
        return _lookup(self)

    def value_of(self, name: str) -> int:
        """Value of a class name or alias (case-insensitive). KeyError if unknown."""
        key = normalize_name(name)
        table = self.lookup()
        if key not in table:
            raise KeyError(f"{name!r} is not a class name of schema {self.id!r}")
        return table[key]

    def resolve(self, token: Any) -> int | None:
        """Label value of a code (``0..n-1`` or ``nodata``) or name/alias; None if unknown."""
        key = normalize_token(token)
        if key is None:
            return None
        if key.lstrip("-").isdigit():
            v = int(key)
            return v if (0 <= v < self.n_classes or v == self.nodata) else None
        return self.lookup().get(key)

    def colormap(self) -> dict[int, tuple[int, int, int, int]]:
        """Colour table for rasterio ``write_colormap``: value -> RGBA (nodata transparent)."""
        cmap = {c.value: (*c.color, 255) for c in self.classes}
        cmap[self.nodata] = (*self.nodata_color, 0)
        return cmap

    def priority_rank(self) -> dict[int, int]:
        """value -> rank (0 = highest priority)."""
        return {v: i for i, v in enumerate(self.priority)}


@functools.lru_cache(maxsize=16)
def _lookup(schema: ClassSchema) -> dict[str, int]:
    table: dict[str, int] = {}
    for c in schema.classes:
        for n in (c.name, *c.aliases):
            table[normalize_name(n)] = c.value
    table.setdefault("no data", schema.nodata)
    table.setdefault("nodata", schema.nodata)
    return table


def schema_path(schema_id: str) -> Path:
    """File of a bundled schema id (``pipeline/data/<id>.yaml``)."""
    return DATA_DIR / f"{schema_id}.yaml"


@functools.lru_cache(maxsize=8)
def load_schema(schema_id: str = "fusu17") -> ClassSchema:
    """Load and validate a bundled schema by id (cached).

    Raises:
        ConfigError: unknown id (lists the available ones) or an invalid schema file.
    """
    path = schema_path(schema_id)
    if not path.is_file():
        from pipeline.io.yamlfile import yaml_stems

        avail = yaml_stems(DATA_DIR)
        raise ConfigError(
            f"class schema {schema_id!r} not found ({path}): set labels.class_schema to one of "
            f"{avail} or add pipeline/data/{schema_id}.yaml"
        )
    return load_schema_file(path)


def load_schema_file(path: str | Path) -> ClassSchema:
    """Load and validate a schema YAML file (see ``pipeline/data/fusu17.yaml``)."""
    from pipeline.io.yamlfile import read_yaml

    p = Path(path)
    raw = read_yaml(p, "class schema", "set labels.class_schema to a bundled schema id")
    return schema_from_dict(raw, where=str(p))


def _rgb(value: Any, where: str) -> tuple[int, int, int]:
    if (
        not isinstance(value, list | tuple)
        or len(value) != 3
        or not all(isinstance(c, int) and not isinstance(c, bool) and 0 <= c <= 255 for c in value)
    ):
        raise ConfigError(f"{where}: colour must be [r, g, b] with integers 0..255 (got {value!r})")
    return (int(value[0]), int(value[1]), int(value[2]))


def schema_from_dict(raw: Any, where: str = "class schema") -> ClassSchema:
    """Validate a schema mapping (the parsed YAML) and build a :class:`ClassSchema`.

    Checks: values are unique integers forming ``0..n-1`` (n <= 255), names and aliases unique
    case-insensitively, colours valid RGB, nodata in 0..255 and not a class value, background
    a class value, priority a permutation of the values.

    Raises:
        ConfigError: naming ``where`` and the offending entry.
    """
    if not isinstance(raw, dict) or not isinstance(raw.get("classes"), list):
        raise ConfigError(f"{where}: expected a mapping with a 'classes' list")
    classes: list[ClassInfo] = []
    for i, c in enumerate(raw["classes"]):
        loc = f"{where}: classes[{i}]"
        if not isinstance(c, dict) or "value" not in c or "name" not in c or "color" not in c:
            raise ConfigError(f"{loc} needs 'value', 'name' and 'color'")
        v = c["value"]
        if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v <= 254:
            raise ConfigError(f"{loc}: value must be an integer 0..254 (got {v!r})")
        aliases = c.get("aliases") or []
        if not isinstance(aliases, list) or not all(isinstance(a, str) for a in aliases):
            raise ConfigError(f"{loc}: aliases must be a list of strings")
        classes.append(
            ClassInfo(
                value=v,
                name=str(c["name"]),
                color=_rgb(c["color"], loc),
                description=str(c.get("description", "")).strip(),
                aliases=tuple(aliases),
            )
        )
    classes.sort(key=lambda c: c.value)
    values = [c.value for c in classes]
    if values != list(range(len(classes))):
        raise ConfigError(
            f"{where}: class values must be unique and contiguous 0..{len(classes) - 1} "
            f"(got {values})"
        )
    seen: dict[str, int] = {}
    for c in classes:
        for n in (c.name, *c.aliases):
            key = normalize_name(n)
            if key.lstrip("-").isdigit():
                raise ConfigError(f"{where}: class name/alias {n!r} must not be a number")
            if key in seen and seen[key] != c.value:
                raise ConfigError(
                    f"{where}: name/alias {n!r} is used by values {seen[key]} and {c.value}; "
                    "names must be unique (case-insensitive)"
                )
            seen[key] = c.value
    nodata = raw.get("nodata", 255)
    if not isinstance(nodata, int) or not 0 <= nodata <= 255 or nodata in values:
        raise ConfigError(f"{where}: nodata must be 0..255 and not a class value (got {nodata!r})")
    background = raw.get("background", 0)
    if background not in values:
        raise ConfigError(f"{where}: background {background!r} is not a class value")
    priority = raw.get("priority", values)
    if not isinstance(priority, list) or sorted(priority) != values:
        raise ConfigError(
            f"{where}: priority must list every class value exactly once (got {priority!r})"
        )
    return ClassSchema(
        id=str(raw.get("id", Path(where).stem)),
        name=str(raw.get("name", "")),
        classes=tuple(classes),
        background=int(background),
        nodata=int(nodata),
        nodata_color=_rgb(raw.get("nodata_color", [0, 0, 0]), f"{where}: nodata_color"),
        priority=tuple(int(v) for v in priority),
        source=str(raw.get("source", "")),
    )
