"""Reader of the DynamicEarthNet release layout for the expansion paradigm (adapter
``dynamicearthnet``): split files, PlanetFusion cubes and monthly one-hot labels."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.errors import InputError
from pipeline.expand.adapters import SampleRecord
from pipeline.expand.datasets.common import georef
from pipeline.io.raster import read_bands

#: DynamicEarthNet's split-file folders (the TUM webshare's, torchgeo's redistribution).
_DEN_SPLIT_DIRS = ("dynnet_training_splits", "split_info", ".")
#: The cube paths in the split files point at the authors' machine; the release holds them
#: under planet/ (the official loaders make the same replacement).
_DEN_PREFIX = "/reprocess-cropped/UTM-24000/"
#: The 7 label bands (one-hot, 255 = the class): DynamicEarthNet's classes in band order.
DEN_CLASSES = ("impervious surface", "agriculture", "forest & other vegetation", "wetlands",
               "soil", "water", "snow & ice")


def _den_path(root: Path, rel: str) -> Path:
    rel = rel.strip()
    if rel.startswith(_DEN_PREFIX):
        rel = "/planet/" + rel[len(_DEN_PREFIX):]
    return root / rel.lstrip("/")


def _den_label(root: Path, rel: str) -> Path:
    """A label path of the split files; the mediatum release names six label folders with a
    hyphen where the split files have the last underscore (torchgeo's redistribution notes
    it): both spellings are tried."""
    p = _den_path(root, rel)
    if p.is_file():
        return p
    parts = rel.strip().lstrip("/").split("/")
    if len(parts) > 1 and parts[0] == "labels":
        d = parts[1]
        for alt in (d[::-1].replace("_", "-", 1)[::-1], d[::-1].replace("-", "_", 1)[::-1]):
            q = root.joinpath("labels", alt, *parts[2:])
            if q.is_file():
                return q
    return p


def scan_dynamicearthnet(root: str | Path) -> list[SampleRecord]:
    """Records of the DynamicEarthNet layout, one per cube (layout ``dynamicearthnet``).

    Reads the split files (``dynnet_training_splits/{train,val,test}.txt``: lines
    ``<cube>/PF-SR <label .tif> <YYYY-MM>``); each cube becomes one multi-date sample over its
    labelled months (the months of its split lines), with ``files`` = the PlanetFusion folder
    (``planet/<zone>/<tile>/<cube>/PF-SR/<YYYY-MM-DD>.tif``, 4 bands B, G, R, NIR at 3 m) and
    ``labels`` = {month: 7-band one-hot label}, ``month_images`` = {month: its first daily
    image} (the images of DynamicEarthNet's consecutive-month protocol), the AOI-level split
    from the file it is listed in, and the encoding ``den-onehot``.

    Raises:
        InputError: no split files, a cube without imagery or labels, no georeferencing.
    """
    r = Path(root)
    if not r.is_dir():
        raise InputError(f"DynamicEarthNet folder {r} does not exist: fix expand.path")
    lines: list[tuple[str, str, str, str]] = []
    for d in _DEN_SPLIT_DIRS:
        for split in ("train", "val", "test"):
            f = r / d / f"{split}.txt"
            if f.is_file():
                for ln in f.read_text().splitlines():
                    parts = ln.split()
                    if len(parts) == 3:
                        lines.append((split, parts[0], parts[1], parts[2]))
        if lines:
            break
    if not lines:
        raise InputError(
            f"{r}: no DynamicEarthNet split files (dynnet_training_splits/train.txt, val.txt, "
            "test.txt: '<cube>/PF-SR <label>.tif <YYYY-MM>' per line): put them beside planet/ "
            "and labels/"
        )
    cubes: dict[str, dict[str, Any]] = {}
    for split, cube_rel, label_rel, month in lines:
        pf = _den_path(r, cube_rel)
        cid = pf.parent.name if pf.name.upper() == "PF-SR" else pf.name
        c = cubes.setdefault(cid, {"folder": pf, "labels": {}, "split": split})
        c["labels"][month] = str(_den_label(r, label_rel))
    out = []
    for cid, c in sorted(cubes.items()):
        folder: Path = c["folder"]
        imgs = sorted(folder.glob("*.tif")) if folder.is_dir() else []
        if not imgs:
            raise InputError(f"DynamicEarthNet cube {cid}: no PlanetFusion images in {folder}: "
                             "check the planet/ folder of the release")
        missing = [m for m, p in c["labels"].items() if not Path(p).is_file()]
        if missing:
            raise InputError(f"DynamicEarthNet cube {cid}: label files of months {missing[:4]} "
                             f"are missing (e.g. {c['labels'][missing[0]]})")
        info = georef(imgs[0], "PlanetFusion image")
        months = sorted(c["labels"])
        dates = tuple(dt.date(int(m[:4]), int(m[5:7]), 1) for m in months)
        if len(dates) == 1:
            dates = (dates[0], dates[0])
        month_images = {}
        for m in months:
            first = next((p for p in imgs if p.name.startswith(m)), None)
            if first is None:
                raise InputError(f"DynamicEarthNet cube {cid}: no PlanetFusion image of labelled "
                                 f"month {m} in {folder}")
            month_images[m] = str(first)
        files: dict[str, Any] = {"images": str(folder), "labels": dict(sorted(c["labels"].items())),
                                 "t1": str(imgs[0]), "t2": str(imgs[-1]),
                                 "month_images": month_images}
        out.append(SampleRecord(cid, info.crs_id, info.bounds, dates, info.gsd_m,
                                info.width, info.height, files, cid, "den-onehot",
                                str(folder), c["split"]))
    return out


def read_den_label(path: str | Path) -> np.ndarray:
    """uint8 (H, W) class map of a DynamicEarthNet label: 0..5 the first six one-hot bands,
    255 = no class or snow & ice (band 7, which the official loader ignores as well)."""
    a = read_bands(path)
    out = np.full(a.shape[1:], 255, np.uint8)
    for i in range(min(6, a.shape[0])):
        out[a[i] == 255] = i
    return out
