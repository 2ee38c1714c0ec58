"""AOI definitions (``aoi/*.yaml``): one co-registered HR image pair, its annotations and
dates, validated by :class:`AoiSpec` and read by :func:`load_aoi` (the one loader of the
Snakefile and every stage).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from pydantic import Field, ValidationError, field_validator, model_validator

from pipeline.config_sections import (
    _check_slug,
    _format_validation_error,
    _Model,
    check_path_component,
)
from pipeline.errors import ConfigError


class AoiDates(_Model):
    """One path per acquisition date."""

    t1: str
    t2: str


class AoiSpec(_Model):
    """An area of interest: one co-registered HR image pair plus annotations.

    Paths are relative to the working directory (the repository root when run via Snakemake)
    unless absolute. Dates are ISO ``YYYY-MM-DD`` acquisition dates of the HR images; the
    Sentinel series runs over every calendar month from t1's month to t2's month inclusive.
    """

    name: str = Field(description="Safe slug used in file names (a-z, 0-9, '-', '_').")
    city: str = Field(description="City / region name, used for per-city splits and stats.")
    t1: dt.date = Field(description="Acquisition date of the T1 HR image (YYYY-MM-DD).")
    t2: dt.date = Field(description="Acquisition date of the T2 HR image; must be after t1.")
    images: AoiDates | None = Field(
        default=None, description="HR GeoTIFF per date (any CRS). None for plan-only templates."
    )
    annotations: AoiDates | None = Field(
        default=None, description="Annotation polygons per date (GeoPackage, shapefile, GeoJSON)."
    )
    class_attribute: str = Field(
        default="class", description="Polygon attribute holding the class."
    )
    annotation_layer: str | None = Field(
        default=None, description="Layer of multi-layer annotation files (GeoPackage); None = "
        "the file's first polygon layer."
    )
    class_mapping: str | None = Field(
        default=None,
        description="CSV with columns 'source,target' mapping source codes or names to FUSU "
        "values 0..17. None: the attribute already holds FUSU values (or FUSU class names).",
    )
    sentinel_archive: str | None = Field(
        default=None,
        description="Sentinel data of this AOI: a static STAC catalogue (a folder holding "
        "catalog.json, or the .json) for source 'stac', or a scene archive folder for source "
        "'local'. None with 'stac': sentinel.stac.url or the profile's public API.",
    )
    extent_wgs84: tuple[float, float, float, float] | None = Field(
        default=None,
        description="(west, south, east, north) in degrees; informational for templates and "
        "used by plan-only runs without imagery.",
    )
    template: bool = Field(
        default=False,
        description="True for templates that need the user's own imagery and annotations: "
        "building them fails with a message saying what to provide.",
    )
    generated: bool = Field(
        default=False,
        description="True for the synthetic demo AOI, whose inputs the pipeline makes.",
    )

    @field_validator("name")
    @classmethod
    def _slug(cls, v: str) -> str:
        return _check_slug(v, "AOI name")

    @field_validator("city")
    @classmethod
    def _city(cls, v: str) -> str:
        return check_path_component(v, "AOI city")

    @model_validator(mode="after")
    def _dates(self) -> AoiSpec:
        if self.t2 <= self.t1:
            raise ValueError(
                f"AOI {self.name!r}: t2 ({self.t2}) must be after t1 ({self.t1}); swap them"
            )
        if not self.template and (self.images is None or self.annotations is None):
            raise ValueError(
                f"AOI {self.name!r}: 'images' and 'annotations' (t1 and t2 paths) are required "
                "unless 'template: true'"
            )
        return self

    @property
    def months(self) -> list[str]:
        """Calendar months ``YYYY-MM`` from t1's month to t2's month inclusive."""
        return month_range(self.t1, self.t2)


def month_range(start: dt.date, end: dt.date) -> list[str]:
    """Calendar months ``YYYY-MM`` from ``start``'s month to ``end``'s month inclusive."""
    y, m = start.year, start.month
    out: list[str] = []
    while (y, m) <= (end.year, end.month):
        out.append(f"{y:04d}-{m:02d}")
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    return out



def load_aoi(path: str | Path) -> AoiSpec:
    """Read and validate one AOI definition YAML file.

    Raises:
        ConfigError: file missing, not YAML, or invalid (message names the file and key).
    """
    from pipeline.io.yamlfile import read_yaml

    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"AOI definition {p} does not exist: check the 'aois' list in the config")
    raw = read_yaml(p, "AOI definition", "check the 'aois' list in the config")
    if not isinstance(raw, dict):
        raise ConfigError(f"AOI definition {p} must be a mapping of keys to values")
    try:
        return AoiSpec.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(_format_validation_error(err, f"AOI definition {p}")) from None
