"""Layout ``spacenet7``: monthly mosaics of each AOI with building labels; one multi-date sample
per AOI; see :mod:`pipeline.expand.datasets`."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any

from pipeline.errors import InputError
from pipeline.expand.adapters import SampleRecord
from pipeline.expand.datasets.common import georef, images

_SN7_RE = re.compile(r"global_monthly_(\d{4})_(\d{2})_mosaic")

def scan_spacenet7(root: str | Path) -> list[SampleRecord]:
    """Records of SpaceNet 7 style monthly mosaics, one multi-date sample per AOI.

    Raises:
        InputError: no AOI folders with ``images/global_monthly_YYYY_MM_mosaic_*.tif``.
    """
    r = Path(root)
    if not r.is_dir():
        raise InputError(f"SpaceNet 7 folder {r} does not exist: fix expand.path")
    aois = sorted({d.parent for d in list(r.glob("*/images")) + list(r.glob("*/*/images"))
                   if d.is_dir()})
    out = []
    for a in aois:
        imgs = [(m, p) for p in images(a / "images") if (m := _SN7_RE.search(p.name))]
        if not imgs:
            continue
        imgs.sort(key=lambda mp: (int(mp[0].group(1)), int(mp[0].group(2))))
        dates = tuple(dt.date(int(m.group(1)), int(m.group(2)), 1) for m, _ in imgs)
        paths = [p for _, p in imgs]
        info = georef(paths[0], "SpaceNet 7 mosaic")
        labels = []
        for p in paths:
            lab = next((d / f"{p.stem}_Buildings.geojson" for d in (a / "labels_match",
                        a / "labels") if (d / f"{p.stem}_Buildings.geojson").is_file()), None)
            labels.append(str(lab) if lab else "")
        files: dict[str, Any] = {"t1": str(paths[0]), "t2": str(paths[-1]),
                                 "images": [str(p) for p in paths]}
        if any(labels):
            files["labels"] = labels
        out.append(SampleRecord(a.name, info.crs_id, info.bounds, dates, info.gsd_m,
                                info.width, info.height, files, a.name, "", str(a)))
    if not out:
        raise InputError(
            f"{r}: no SpaceNet 7 AOI folders (<aoi>/images/global_monthly_YYYY_MM_mosaic_*.tif): "
            "point expand.path at the SpaceNet 7 'train' folder"
        )
    return out
