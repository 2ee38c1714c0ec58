"""YAML documents: AOI definitions and class schemas (read with ``yaml.safe_load``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipeline.errors import ConfigError, MissingInputError


def read_yaml(path: str | Path, what: str, fix: str) -> Any:
    """Parse a YAML file.

    Args:
        what: how to name the file in errors (``"AOI definition"``).
        fix: what to do when it is missing.

    Raises:
        MissingInputError: the file does not exist (message: ``what``, path, ``fix``).
        ConfigError: it is not valid YAML.
    """
    import yaml

    p = Path(path)
    if not p.is_file():
        raise MissingInputError(f"{what} {p} does not exist: {fix}", p)
    try:
        return yaml.safe_load(p.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{what} {p} is not valid YAML: {exc}") from None
    except ValueError as exc:  # YAML scalars that parse as impossible dates (2018-13-01)
        raise ConfigError(
            f"{what} {p} has an invalid value ({exc}): dates are YYYY-MM-DD, e.g. 2018-08-15"
        ) from None


def yaml_stems(folder: str | Path) -> list[str]:
    """Sorted stems of the ``*.yaml`` files in ``folder``."""
    return sorted(p.stem for p in Path(folder).glob("*.yaml"))
