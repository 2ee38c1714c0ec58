"""Layout ``pairs``: ``<root>/{t1,t2}/<id>.tif`` georeferenced image pairs with optional labels
and a dates table; see :mod:`pipeline.expand.datasets`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pipeline.errors import InputError
from pipeline.expand.adapters import SampleRecord, no_georef_error, parse_date
from pipeline.expand.datasets.common import GEO_EXT, georef, images, label_encoding
from pipeline.expand.datasets.index import ID_COLS

_PAIR_DIRS = (("t1", "t2"), ("T1", "T2"), ("A", "B"), ("im1", "im2"), ("time1", "time2"))
_LABEL_DIRS = ("label", "labels", "OUT", "cm", "mask")

def _read_dates_table(path: Path) -> dict[str, tuple[Any, Any]]:
    """{id: (t1, t2)} from a dates CSV / JSON (id '*' = every pair)."""
    if not path.is_file():
        raise InputError(f"dates file {path} does not exist: fix expand.dates_file")
    if path.suffix.lower() == ".json":
        try:
            d = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise InputError(f"dates file {path} is not valid JSON ({exc})") from None
        if isinstance(d, dict) and "t1" in d and "t2" in d:
            return {"*": (d["t1"], d["t2"])}
        return {str(k): (v.get("t1"), v.get("t2")) for k, v in d.items() if isinstance(v, dict)}
    import pandas as pd

    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    cols = {c.lower().strip(): c for c in df.columns}
    id_col = next((cols[c] for c in ID_COLS if c in cols), None)
    if id_col is None or "t1" not in cols or "t2" not in cols:
        raise InputError(f"dates file {path}: needs columns id, t1, t2 (id '*' = every pair)")
    return {str(r[id_col]).strip(): (r[cols["t1"]], r[cols["t2"]]) for r in df.to_dict("records")}


def scan_pairs(root: str | Path, dates_file: str | None = None) -> list[SampleRecord]:
    """Records of a folder of georeferenced T1/T2 pairs (layout ``pairs``).

    Raises:
        InputError: no T1/T2 folders, unmatched files, no georeferencing (sidecar help),
            missing dates (listing the pairs).
    """
    r = Path(root)
    if not r.is_dir():
        raise InputError(f"pairs folder {r} does not exist: fix expand.path")
    pair = next(((r / a, r / b) for a, b in _PAIR_DIRS if (r / a).is_dir() and (r / b).is_dir()),
                None)
    if pair is None:
        loose = images(r)
        if loose:
            raise no_georef_error(loose[0], "pair folder") if loose[0].suffix.lower() not in \
                GEO_EXT else InputError(
                    f"{r}: put T1 and T2 images in sub-folders t1/ and t2/ with matching names")
        raise InputError(
            f"{r}: no T1/T2 sub-folders ({', '.join(a + '/' + b for a, b in _PAIR_DIRS)}): "
            "arrange the pairs as <root>/t1/<id>.tif and <root>/t2/<id>.tif"
        )
    d1, d2 = pair
    label_dir = next((r / n for n in _LABEL_DIRS if (r / n).is_dir()), None)
    t2_by_stem = {p.stem: p for p in images(d2)}
    if dates_file:
        dp: Path | None = Path(dates_file)
    else:
        dp = next((r / n for n in ("dates.csv", "dates.json") if (r / n).is_file()), None)
    table = _read_dates_table(dp) if dp is not None else {}
    out, missing = [], []
    for f1 in images(d1):
        sid = f1.stem
        f2 = t2_by_stem.get(sid)
        if f2 is None:
            raise InputError(f"{f1}: no T2 image named {sid}.* in {d2}: add it or remove {f1}")
        info = georef(f1, "T1 image")
        georef(f2, "T2 image")
        dates = table.get(sid, table.get("*"))
        if dates is None:
            missing.append(sid)
            continue
        files: dict[str, Any] = {"t1": str(f1), "t2": str(f2)}
        if label_dir is not None:
            lab = sorted(label_dir.glob(f"{sid}.*"))
            if lab:
                files["label"] = str(lab[0])
        where = f"{dp or r} (pair {sid!r})"
        out.append(SampleRecord(
            sid, info.crs_id, info.bounds,
            (parse_date(dates[0], where), parse_date(dates[1], where)),
            info.gsd_m, info.width, info.height, files, "",
            label_encoding(files.get("label"), info, sid), str(f1),
        ))
    if missing:
        raise InputError(
            f"{r}: no dates for pairs {missing[:10]}{' ...' if len(missing) > 10 else ''} "
            f"({len(missing)} pairs): add rows id,t1,t2 to {dp or r / 'dates.csv'} (id '*' "
            "sets the dates of every pair)"
        )
    if not out:
        raise InputError(f"{d1}: no images found: put the T1 GeoTIFFs there")
    return out
