"""Export to the FUSU release layout (pure parts: naming, value conventions, checks).

Layout written under ``export/fusu/`` (as read by the FUSU code's
``datasets/change_detection.py``: ``<root>/<split>/im1/<id>.png`` etc., and the Sentinel series
found by ``re.match('^<id>_.*\\.tif$')`` in ``<root>/<split>/Times``)::

    <split>/im1/<id>.png        T1 HR RGB, 8-bit RGB PNG (no-data pixels are 0 = black)
    <split>/im2/<id>.png        T2 HR RGB (on T1's pixel grid)
    <split>/label1/<id>.png     T1 labels, 8-bit palette PNG, pixel value = FUSU class value
                                0..17 (0 = background), 255 = no data (use it as ignore index);
                                palette = the FUSU colours
    <split>/label2/<id>.png     T2 labels, same convention
    <split>/label_bin/<id>.png  binary change, 8-bit: 0 unchanged, 1 changed; pixels the native
                                layout marks as ignored (255: no data / background in either
                                date) become ``export.bin_ignore_value`` (default 0, because the
                                FUSU code trains BCE on 0/1 targets; 255 keeps the ignore mask)
    <split>/Times/<id>_<k>.tif  Sentinel month k = 1..T (1 = T1's month, T = T2's month),
                                14 bands float32: B1..B9, B8A, B11, B12 (reflectance 0..1),
                                VV, VH (dB); NaN = no clear observation; georeferenced on the
                                AOI's 10 m grid (footprint window, 5x the patch, centred)
    <split>.txt                 patch ids of the split
    samples.csv                 per patch: split, AOI, city, GSD, HR CRS, dates, months,
                                footprint window and the patch's offset inside it
    meta.json                   bands + wavelengths, classes, naming conventions

``<id>`` is the native patch id (``<aoi>_r<row>_c<col>``). Month files are numbered without
zero padding, as in the FUSU naming; sort them numerically by ``k`` (the FUSU loader lists
them in directory order). Guard patches of a block split are not exported.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.errors import DatasetError

SPLITS = ("train", "val", "test")
IMAGE_DIRS = ("im1", "im2", "label1", "label2", "label_bin")
TIMES_DIR = "Times"


def sample_paths(split: str, patch_id: str, n_months: int) -> dict[str, str]:
    """Relative paths of one exported sample: ``im1`` .. ``label_bin`` and ``times_<k>``."""
    out = {d: f"{split}/{d}/{patch_id}.png" for d in IMAGE_DIRS}
    for k in range(1, n_months + 1):
        out[f"times_{k}"] = f"{split}/{TIMES_DIR}/{patch_id}_{k}.tif"
    return out


def label_bin_values(
    change_bin: np.ndarray, ignore_value: int = 0, nodata: int = 255
) -> np.ndarray:
    """Native binary change (0/1, ``nodata`` = ignored) -> FUSU ``label_bin`` uint8.

    Ignored pixels become ``ignore_value`` (0 or 255).
    """
    a = np.asarray(change_bin)
    out = np.where(a == nodata, ignore_value, (a == 1).astype(np.uint8)).astype(np.uint8)
    return out


def check_target(path: str | Path, nonempty: bool, overwrite: bool) -> None:
    """Refuse to export into an existing non-empty folder unless ``overwrite``.

    Raises:
        DatasetError: naming the folder and the two ways out.
    """
    if nonempty and not overwrite:
        raise DatasetError(
            f"export folder {path} exists and is not empty: set export.overwrite: true to "
            "replace it, or move it away first"
        )


def export_rows(index: Any) -> Any:
    """The index rows to export (train / val / test; guard patches excluded), sorted."""
    df = index[index["split"].isin(SPLITS)]
    return df.sort_values(["split", "patch_id"], kind="stable")


def check_months(
    months_by_aoi: Mapping[str, Sequence[str]], cube_months: Sequence[str], aoi: str
) -> list[str]:
    """The months the export writes for ``aoi`` (its T1..T2 months, in order).

    Raises:
        DatasetError: months missing from the AOI's mosaic (names them and the fix).
    """
    want = list(months_by_aoi.get(aoi, cube_months))
    missing = [m for m in want if m not in set(cube_months)]
    if missing:
        raise DatasetError(
            f"AOI {aoi!r}: Sentinel mosaic lacks months {missing}: run the sentinel rules for "
            "this AOI before exporting"
        )
    return want


#: Label value of pixels without a class in the official-training export: the official
#: train.py's ``CrossEntropyLoss(ignore_index=-1)``.
OFFICIAL_IGNORE = -1


def official_label_values(label: np.ndarray, nodata: int = 255) -> np.ndarray:
    """Native labels (0 = background, 1..17 classes, ``nodata``) -> the official training
    code's targets: int32 class - 1 (0..16, its 17 outputs) and -1 (its ignore index) for
    background and no data."""
    a = np.asarray(label).astype(np.int32)
    return np.where((a >= 1) & (a <= 17), a - 1, OFFICIAL_IGNORE).astype(np.int32)


def official_times(x: np.ndarray, s2_count: np.ndarray, fill: float) -> np.ndarray:
    """One month (14, H, W) float32 (NaN = no data) -> the official U-TAE's 15 input bands:
    the 14 with NaN filled (its NaN propagates to every output) + a 0/1 clear-observation flag
    (the month had a clear S2 observation at the pixel)."""
    v = np.where(np.isfinite(x), x, np.float32(fill)).astype(np.float32)
    flag = (np.asarray(s2_count) > 0).astype(np.float32)[None]
    return np.concatenate([v, flag], axis=0)


def meta_document(
    bands: Sequence[str],
    wavelengths_nm: Sequence[float],
    class_names: Sequence[str],
    bin_ignore_value: int,
    months_by_aoi: dict[str, list[str]],
    official: tuple[bool, float] = (False, 0.0),
) -> dict[str, Any]:
    """``meta.json`` of the export: conventions a FUSU user needs (``official`` =
    (official_training, nodata fill))."""
    doc: dict[str, Any] = {
        "layout": "FUSU release layout: <split>/{im1,im2,label1,label2,label_bin}/<id>.png, "
        "<split>/Times/<id>_<k>.tif (k = 1..T)",
        "splits": list(SPLITS),
        "times": {
            "bands": list(bands),
            "wavelengths_nm": [float(w) for w in wavelengths_nm],
            "units": "S2: surface reflectance 0..1 (L2A, or L1C TOA where the month had no L2A); "
            "S1: backscatter dB",
            "nodata": "NaN",
            "dtype": "float32",
            "k": "1-based month index; month k of AOI a is months_by_aoi[a][k-1]",
        },
        "months_by_aoi": months_by_aoi,
        "labels": {
            "values": {str(v): n for v, n in enumerate(class_names)},
            "nodata": 255,
            "format": "8-bit palette PNG; pixel value = class value",
        },
        "label_bin": {"unchanged": 0, "changed": 1, "ignored": int(bin_ignore_value)},
        "hr": {"format": "8-bit RGB PNG", "nodata": "0 (black) where the HR image had no data"},
    }
    if official[0]:
        doc["times"] = {**doc["times"], "bands": [*bands, "clear_flag"],
                        "nodata": f"filled with {official[1]}; band 15 = 1 where the month had a "
                        "clear S2 observation"}
        doc["labels"] = {
            "values": {str(v - 1): n for v, n in enumerate(class_names) if v >= 1},
            "nodata": OFFICIAL_IGNORE,
            "format": "32-bit integer TIFF named <id>.png (PIL reads it by content): class - 1, "
            "-1 = background / no data (the official CrossEntropyLoss ignore_index)",
        }
    return doc
