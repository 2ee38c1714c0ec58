"""CSV tables: the class-mapping CSV of an AOI (``source,target``) and the training logs
(``train/log.csv``, ``train/val_log.csv``).
"""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pipeline.errors import InputError, MissingInputError
from pipeline.io.atomic import atomic_path


def read_class_mapping(path: str | Path, what: str = "class mapping") -> list[tuple[str, str]]:
    """Read a class-mapping CSV with header ``source,target`` (extra columns are ignored).

    Returns:
        ``[(source, target), ...]`` as stripped strings, in file order. Interpretation (codes
        or names, validation against the schema) is done by
        :func:`pipeline.hr.labels.parse_class_mapping`.

    Raises:
        InputError: missing/unreadable file, missing columns, no rows, or an empty cell.
    """
    import pandas as pd

    p = Path(path)
    if not p.is_file():
        raise MissingInputError(
            f"{what} CSV {p} does not exist: fix 'class_mapping' in the AOI definition", p
        )
    try:
        df = pd.read_csv(p, dtype=str, keep_default_na=False, skipinitialspace=True)
    except Exception as exc:
        raise InputError(f"{what} CSV {p} cannot be read ({exc}): save it as plain CSV") from None
    df.columns = [str(c).strip().lower() for c in df.columns]
    if "source" not in df.columns or "target" not in df.columns:
        raise InputError(
            f"{what} CSV {p} needs a header with columns 'source,target' (found "
            f"{list(df.columns)}): add the header line"
        )
    if len(df) == 0:
        raise InputError(f"{what} CSV {p} has no rows: add one 'source,target' line per class")
    rows: list[tuple[str, str]] = []
    for i, (s, t) in enumerate(zip(df["source"], df["target"], strict=True)):
        s, t = str(s).strip(), str(t).strip()
        if not s or not t:
            raise InputError(
                f"{what} CSV {p}, line {i + 2}: empty source or target: fill in both cells"
            )
        rows.append((s, t))
    return rows


def append_csv_row(path: str | Path, fields: Sequence[str], row: Mapping[str, Any]) -> None:
    """Append one row to a CSV log (header written when the file is new; extra keys ignored)."""
    p = Path(path)
    new = not p.exists()
    with p.open("a", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(fields), extrasaction="ignore")
        if new:
            w.writeheader()
        w.writerow(dict(row))


def truncate_csv_log(path: str | Path, max_step: int) -> None:
    """Drop the rows of a CSV log whose ``step`` is above ``max_step`` (atomic rewrite)."""
    p = Path(path)
    if not p.exists():
        return
    with p.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    if not rows:
        return
    fields = list(rows[0].keys())
    keep = [r for r in rows if int(r["step"]) <= max_step]
    with atomic_path(p) as tmp, tmp.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=fields)
        w.writeheader()
        w.writerows(keep)
