"""JSON files: pretty, key-sorted, atomic writes; reads that name the file on failure; and the
input fingerprints (small JSON state files) that let a rerun reuse patch rasters of an
interrupted run made from the same inputs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pipeline.errors import InputError, MissingInputError
from pipeline.io.atomic import write_bytes_atomic


def write_json(path: str | Path, obj: Any) -> None:
    """Write ``obj`` as pretty, key-sorted JSON, atomically."""
    text = json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n"
    write_bytes_atomic(path, text.encode())


def _json_default(o: Any) -> Any:
    import numpy as np

    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def read_json(path: str | Path, what: str = "", fix: str = "") -> Any:
    """Read JSON.

    Raises:
        MissingInputError: the file does not exist (also a ``FileNotFoundError``).
        InputError: the file is not valid JSON.
    """
    p = Path(path)
    if not p.is_file():
        raise MissingInputError(
            f"{what + ' ' if what else ''}{p} does not exist: "
            f"{fix or 'run the stage that produces it first'}", p
        )
    try:
        return json.loads(p.read_text())
    except json.JSONDecodeError as exc:
        raise InputError(f"{p} is not valid JSON ({exc}); delete it and rerun its stage") from None


def read_json_if_exists(path: str | Path) -> Any | None:
    """JSON content of ``path`` or None if it does not exist."""
    p = Path(path)
    return read_json(p) if p.is_file() else None


def read_json_folder(folder: str | Path) -> dict[str, Any]:
    """``{file stem: content}`` of every ``*.json`` directly in ``folder`` (sorted by name;
    an absent folder gives ``{}``)."""
    return {p.stem: read_json(p) for p in sorted(Path(folder).glob("*.json"))}
