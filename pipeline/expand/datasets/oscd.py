"""Layout ``oscd``: the Onera Satellite Change Detection release (per-band GeoTIFFs of each
city and date, dates.txt, change maps with the 1/2 convention); see
:mod:`pipeline.expand.datasets`."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any

from pipeline.errors import InputError
from pipeline.expand.adapters import SampleRecord, detect_change_encoding, parse_date
from pipeline.expand.datasets.common import check_label_shape, georef, images
from pipeline.io.raster import label_counts


def _oscd_dates(city_dir: Path) -> tuple[dt.date, dt.date]:
    f = city_dir / "dates.txt"
    if not f.is_file():
        raise InputError(
            f"OSCD city {city_dir.name}: {f} is missing: add it with lines 'date_1: YYYYMMDD' "
            "and 'date_2: YYYYMMDD'"
        )
    found = dict(re.findall(r"date_?([12])\s*[:=]\s*(\S+)", f.read_text()))
    where = str(f)
    if "1" not in found or "2" not in found:
        raise InputError(f"{f}: needs lines 'date_1: YYYYMMDD' and 'date_2: YYYYMMDD'")
    return parse_date(found["1"], where), parse_date(found["2"], where)


def _oscd_georef_file(city_dir: Path, date: int) -> Path:
    for sub in (f"imgs_{date}_rect", f"imgs_{date}"):
        d = city_dir / sub
        if d.is_dir():
            tifs = images(d)
            if tifs:
                # a 10 m band (B02/B03/B04/B08) defines the grid best
                pref = [t for t in tifs if re.search(r"B0?[2348]\.tif+$", t.name, re.I)]
                return (pref or tifs)[0]
    raise InputError(f"OSCD city {city_dir.name}: no images in {city_dir}/imgs_{date}/")


def _oscd_label(city_dir: Path, root: Path) -> Path | None:
    cands = [city_dir / "cm"]
    cands += [d / city_dir.name / "cm" for d in sorted(root.parent.glob("*abel*")) if d.is_dir()]
    cands += [d / city_dir.name / "cm" for d in sorted(root.glob("*abel*")) if d.is_dir()]
    for c in cands:
        if c.is_dir():
            files = sorted(c.glob("*-cm.tif")) + sorted(c.glob("*.tif")) + sorted(c.glob("*.png"))
            if files:
                return files[0]
    return None


def _oscd_splits(root: Path) -> dict[str, str]:
    """{city: "train" | "test"} from the OSCD release's ``train.txt`` / ``test.txt`` (one
    comma-separated line of city names, in the Images folder or beside it); {} without them."""
    out: dict[str, str] = {}
    for split in ("train", "test"):
        for folder in (root, root.parent):
            f = folder / f"{split}.txt"
            if f.is_file():
                for name in re.split(r"[,\s]+", f.read_text()):
                    if name.strip():
                        out[name.strip()] = split
                break
    return out


def scan_oscd(root: str | Path, encoding: str = "auto") -> list[SampleRecord]:
    """Records of the OSCD layout, one per city (layout ``oscd``).

    Raises:
        InputError: no city folders, missing dates.txt, images without georeferencing,
            labels with values of no known convention.
    """
    r = Path(root)
    if not r.is_dir():
        raise InputError(f"OSCD folder {r} does not exist: fix expand.path")
    cities = sorted({d.parent for d in list(r.glob("*/imgs_1")) + list(r.glob("*/*/imgs_1"))
                     if d.is_dir()})
    if not cities:
        raise InputError(
            f"{r}: no OSCD city folders (<city>/imgs_1/ and imgs_2/ with one GeoTIFF per band, "
            "<city>/dates.txt): point expand.path at the 'Images' folder of OSCD"
        )
    splits = _oscd_splits(r)
    out = []
    for c in cities:
        t1, t2 = _oscd_dates(c)
        g1 = _oscd_georef_file(c, 1)
        info = georef(g1, "OSCD band image")
        files: dict[str, Any] = {
            "t1": str(g1.parent), "t2": str(_oscd_georef_file(c, 2).parent),
        }
        enc = ""
        lab = _oscd_label(c, r)
        if lab is not None:
            files["label"] = str(lab)
            enc = detect_change_encoding(label_counts(lab), encoding, str(lab))
            check_label_shape(lab, info, c.name)
        out.append(SampleRecord(c.name, info.crs_id, info.bounds, (t1, t2), info.gsd_m,
                                info.width, info.height, files, c.name, enc, str(c),
                                splits.get(c.name, "")))
    return out
