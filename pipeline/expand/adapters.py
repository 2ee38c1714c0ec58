"""Dataset adapters, pure part: sample records -> the expansion sample index.

Every adapter (:func:`pipeline.expand.datasets.read_samples`) turns a foreign layout into a list
of :class:`SampleRecord` (one per change sample: an image pair, a multi-date stack, or a row of
a patch index). :func:`build_sample_index` validates them (ids unique, dates present and
ordered, a real CRS) and builds the index GeoDataFrame shared by every adapter:

=================  =========================================================================
column             meaning
=================  =========================================================================
geometry           sample polygon (its bounds in ``hr_crs``, densified) in EPSG:4326
patch_id           = ``sample_id`` (so native readers of ``patch_id`` work)
sample_id          the dataset's own id (str)
dataset, city      dataset name, city / region / OSCD city / SpaceNet 7 AOI
t1, t2             first and last date of the sample (ISO ``YYYY-MM-DD`` str)
dates              JSON list of every date (ISO), > 2 for multi-date samples (SpaceNet 7)
month_first/last   ``YYYY-MM`` of t1 / t2; n_months = calendar months first..last inclusive
hr_crs             CRS of the original image (``EPSG:xxxx`` or WKT)
hr_bounds          JSON [minx, miny, maxx, maxy] in ``hr_crs``
gsd_m              original pixel size (m; NaN when only bounds are known)
size_px            longer image side (px; 0 when unknown); width_px, height_px
hr_t1, hr_t2       original image paths of the first / last date ("" when none)
files              JSON {role: path or [paths]} of every original file (images, labels)
label_encoding     e.g. ``1-2`` (OSCD release: 1 no change, 2 change), ``0-1``, "" if none
=================  =========================================================================

Coordinates are never invented: records without a CRS are rejected with
:func:`no_georef_error`, which explains the sidecar index such datasets need.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import logging
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pipeline.aoi import month_range
from pipeline.errors import InputError

log = logging.getLogger(__name__)

#: What a sidecar patch index must hold (adapter 'index'); quoted by every no-georef error.
SIDECAR_HELP = (
    "write a sidecar patch index and use 'expand.adapter: index' with 'expand.path' pointing "
    "to it: a CSV with columns id, minx, miny, maxx, maxy, crs (e.g. EPSG:32650), t1, t2 "
    "(YYYY-MM-DD) and optional hr_t1, hr_t2, label (paths to the original files), or a "
    "GeoJSON / GeoPackage / GeoParquet with id, t1, t2 and the patch polygons in a real CRS. "
    "The bounds must come from the data's provider or your own georeferencing; the pipeline "
    "never invents coordinates"
)

_DATE_RES = (
    (re.compile(r"^(\d{4})-(\d{2})-(\d{2})"), 3),
    (re.compile(r"^(\d{4})(\d{2})(\d{2})$"), 3),
    (re.compile(r"^(\d{4})-(\d{2})$"), 2),
    (re.compile(r"^(\d{4})_(\d{2})$"), 2),
)


@dataclass(frozen=True)
class SampleRecord:
    """One change sample as read by an adapter (dataset-agnostic).

    Attributes:
        sample_id: the dataset's id (unique within the dataset).
        crs: CRS string of ``bounds`` (``EPSG:xxxx`` or WKT); None = not georeferenced.
        bounds: (minx, miny, maxx, maxy) of the sample in ``crs`` units.
        dates: acquisition dates, in any order (sorted by the index builder).
        gsd_m: original pixel size in metres (None when unknown or not metric).
        width_px, height_px: original image size (None when unknown).
        files: {role: path or list of paths}: "t1", "t2", "images" (multi-date), "label", ...
        city: city / region / AOI name of the sample.
        label_encoding: change-label value convention ("1-2", "0-1") or "".
        where: file the record comes from (for messages).
        split: the dataset's own split of the sample ("train", "test", ...) where it ships
            split lists (OSCD's train.txt / test.txt), else "".
    """

    sample_id: str
    crs: str | None
    bounds: tuple[float, float, float, float]
    dates: tuple[dt.date, ...]
    gsd_m: float | None = None
    width_px: int | None = None
    height_px: int | None = None
    files: dict[str, Any] = field(default_factory=dict)
    city: str = ""
    label_encoding: str = ""
    where: str = ""
    split: str = ""


def parse_date(value: Any, where: str) -> dt.date:
    """A date from ``YYYY-MM-DD`` (time part ignored), ``YYYYMMDD``, ``YYYY-MM`` / ``YYYY_MM``
    (first of the month), a ``datetime.date`` or a pandas Timestamp.

    Raises:
        InputError: missing (None/NaN/"") or unparseable, naming ``where``.
    """
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if hasattr(value, "to_pydatetime"):
        return value.to_pydatetime().date()
    text = "" if value is None else str(value).strip()
    if text.lower() in ("", "nan", "nat", "none", "null"):
        raise InputError(
            f"{where}: date is missing: give every sample its acquisition dates (t1 and t2, "
            "YYYY-MM-DD)"
        )
    for rx, n in _DATE_RES:
        m = rx.match(text)
        if m:
            y, mo = int(m.group(1)), int(m.group(2))
            d = int(m.group(3)) if n == 3 else 1
            try:
                return dt.date(y, mo, d)
            except ValueError:
                break
    raise InputError(f"{where}: cannot read date {text!r}: write dates as YYYY-MM-DD")


def no_georef_error(path: Any, what: str = "image") -> InputError:
    """The error for data without georeferencing (LEVIR-CD, SECOND, plain PNG chips)."""
    return InputError(
        f"{path}: this {what} has no georeferencing (no CRS / geotransform; PNG/JPEG chips such "
        "as LEVIR-CD or SECOND never have one), so no Sentinel footprint can be placed. To "
        f"expand such a dataset, {SIDECAR_HELP}"
    )


#: The value pair (no change, change) of each change-label convention.
ENCODINGS: dict[str, tuple[int, int]] = {"1-2": (1, 2), "0-1": (0, 1), "0-255": (0, 255)}


def detect_change_encoding(values: Sequence[int] | Mapping[int, int], configured: str,
                           where: str) -> str:
    """Change-label convention from the label's values (or {value: pixel count}).

    The public OSCD release stores ``1`` = no change, ``2`` = change (its README says 0/1).
    auto: any 2 (within {0, 1, 2}) -> "1-2"; values within {0, 1} -> "0-1"; {0, 255} (PNG
    masks) -> "0-255". A forced ``configured`` convention ("0-1", "1-2", "0-255") is checked
    against the data: a value it does not define (for example the 2s of OSCD's 1/2 labels
    under "0-1", which would make every no-change pixel a change) is refused.

    Raises:
        InputError: values that fit no convention, or contradict the forced one, with the
            pixel counts per value (names ``where`` and the config key).
    """
    counts = dict(values) if isinstance(values, Mapping) else {int(v): -1 for v in values}
    vals = set(counts)

    def listing() -> str:
        return ", ".join(f"{v}: {n} px" if n >= 0 else str(v)
                         for v, n in sorted(counts.items())[:8])

    if configured != "auto":
        no, yes = ENCODINGS[configured]
        # "1-2" labels may hold 0 = unlabelled; other conventions define only their two values
        allowed = {no, yes} | ({0} if configured == "1-2" else set())
        extra = sorted(vals - allowed)
        if extra:
            guess = next((e for e, (a, b) in ENCODINGS.items() if vals <= {a, b, 0}), "auto")
            raise InputError(
                f"{where}: the change label holds values {extra} that the configured encoding "
                f"{configured!r} does not define (values: {listing()}); the data look like "
                f"{guess!r}: set expand.oscd_change_encoding to {guess!r} or 'auto'"
            )
        return configured
    if 2 in vals and vals <= {0, 1, 2}:
        return "1-2"
    if vals <= {0, 1}:
        # a label of all ones is ambiguous; 0/1 is the README's convention
        return "0-1"
    if vals <= {0, 255}:
        return "0-255"
    raise InputError(
        f"{where}: change label values ({listing()}) fit neither the OSCD release (1 no "
        "change, 2 change), 0/1 nor 0/255: set expand.oscd_change_encoding explicitly"
    )


def change_to_binary(label: np.ndarray, encoding: str) -> np.ndarray:
    """Map a change label to the project's binary convention.

    Args:
        label: (H, W) integer array in ``encoding`` ("1-2": 1 no change / 2 change, other
            values e.g. 0 = unlabelled; "0-1"; "0-255").
        encoding: see :func:`detect_change_encoding`.

    Returns:
        uint8 (H, W): 0 no change, 1 change, 255 ignored (anything else).
    """
    a = np.asarray(label)
    out = np.full(a.shape, 255, np.uint8)
    no, yes = ENCODINGS[encoding]
    out[a == no] = 0
    out[a == yes] = 1
    return out


@functools.lru_cache(maxsize=64)
def _transformer(crs: str) -> Any:
    from pyproj import Transformer

    return Transformer.from_crs(crs, "EPSG:4326", always_xy=True)


def _ring(b: np.ndarray, segments: int) -> tuple[np.ndarray, np.ndarray]:
    """(N, 4*(segments+1)) x and y of the densified outlines of (N, 4) boxes."""
    t = np.linspace(0.0, 1.0, segments + 1)[None, :]
    minx, miny, maxx, maxy = (b[:, k : k + 1] for k in range(4))
    one = np.ones_like(t)
    xs = np.concatenate([minx + (maxx - minx) * t, maxx * one, maxx - (maxx - minx) * t,
                         minx * one], axis=1)
    ys = np.concatenate([miny * one, miny + (maxy - miny) * t, maxy * one,
                         maxy - (maxy - miny) * t], axis=1)
    return xs, ys


def bounds_polygons_wgs84(crs: Sequence[str], bounds: np.ndarray, segments: int = 8) -> Any:
    """Bounding boxes (N, 4) given in per-row CRSs as densified EPSG:4326 polygons (lon/lat).

    Returns:
        (N,) numpy array of shapely Polygons.
    """
    import shapely

    b = np.asarray(bounds, np.float64).reshape(-1, 4)
    crs_arr = np.asarray(crs, dtype=object)
    out = np.empty(len(b), dtype=object)
    for c in dict.fromkeys(crs_arr):
        sel = np.flatnonzero(crs_arr == c)
        xs, ys = _ring(b[sel], segments)
        lon, lat = _transformer(str(c)).transform(xs.ravel(), ys.ravel())
        coords = np.stack([np.asarray(lon).reshape(xs.shape), np.asarray(lat).reshape(xs.shape)],
                          axis=-1)
        out[sel] = shapely.polygons(coords)
    return out


@functools.lru_cache(maxsize=256)
def _normalize_crs(crs: str) -> str:
    from pyproj import CRS

    c = CRS.from_user_input(crs)
    epsg = c.to_epsg()
    return f"EPSG:{epsg}" if epsg else c.to_wkt()


def _check_crs(crs: str | None, rec: SampleRecord) -> str:
    from pyproj.exceptions import CRSError

    if not crs:
        raise no_georef_error(rec.where or rec.sample_id, "sample")
    try:
        return _normalize_crs(str(crs))
    except CRSError:
        raise InputError(
            f"{rec.where or rec.sample_id}: sample {rec.sample_id!r} has an unknown CRS "
            f"{crs!r}: use an EPSG code such as EPSG:32650"
        ) from None


#: First months with data: Sentinel-2A (first products June 2015) and Sentinel-1A (October
#: 2014). Months before them are empty for that sensor.
S2_FIRST_MONTH = "2015-06"
S1_FIRST_MONTH = "2014-10"


def build_sample_index(records: Sequence[SampleRecord], dataset: str,
                       clip_to_sentinel: bool = False) -> Any:
    """Validate adapter records and build the sample index (module docstring).

    Months before Sentinel-2 existed (``S2_FIRST_MONTH``) are logged per sample (a LEVIR-style
    2008 t1 would plan 84 empty months); ``clip_to_sentinel`` starts such samples' series at
    ``S2_FIRST_MONTH`` instead (the index records ``months_before_s2``).

    Raises:
        InputError: no samples, duplicate ids (all listed), missing dates, dates not after each
            other (t2 must not precede t1), missing CRS (sidecar help), non-finite bounds.
    """
    import geopandas as gpd

    if not records:
        raise InputError(
            f"dataset {dataset!r}: the adapter found no samples: check expand.path and "
            "expand.adapter"
        )
    ids = [r.sample_id for r in records]
    seen: dict[str, int] = {}
    for i in ids:
        seen[i] = seen.get(i, 0) + 1
    dups = sorted(i for i, n in seen.items() if n > 1)
    if dups:
        where = {r.where for r in records if r.sample_id in set(dups)}
        raise InputError(
            f"dataset {dataset!r}: duplicate sample ids {dups[:10]}"
            f"{' ...' if len(dups) > 10 else ''} ({len(dups)} ids; in {sorted(where)[:3]}): "
            "give every sample a unique id"
        )
    rows: list[dict[str, Any]] = []
    all_bounds = []
    for r in records:
        crs = _check_crs(r.crs, r)
        b = tuple(float(v) for v in r.bounds)
        if len(b) != 4 or not all(math.isfinite(v) for v in b) or b[2] <= b[0] or b[3] <= b[1]:
            raise InputError(
                f"{r.where or dataset}: sample {r.sample_id!r} has invalid bounds {b}: "
                "give minx < maxx and miny < maxy in the sample's CRS"
            )
        if len(r.dates) < 2:
            raise InputError(
                f"{r.where or dataset}: sample {r.sample_id!r} has {len(r.dates)} date(s): "
                "give at least two dates (t1 and t2, YYYY-MM-DD)"
            )
        dates = sorted(r.dates)
        if len(r.dates) == 2 and r.dates[1] < r.dates[0]:
            raise InputError(
                f"{r.where or dataset}: sample {r.sample_id!r}: t2 ({r.dates[1]}) is before t1 "
                f"({r.dates[0]}): swap them"
            )
        months = month_range(dates[0], dates[-1])
        before = [m for m in months if m < S2_FIRST_MONTH]
        if before:
            log.warning(
                "%s: sample %r spans %s..%s: %d month(s) before Sentinel-2 (%s; Sentinel-1 "
                "from %s) %s", r.where or dataset, r.sample_id, months[0], months[-1],
                len(before), S2_FIRST_MONTH, S1_FIRST_MONTH,
                "are clipped (expand.clip_to_sentinel)" if clip_to_sentinel else
                "will be empty: set expand.clip_to_sentinel: true to start at " + S2_FIRST_MONTH)
            if clip_to_sentinel:
                months = [m for m in months if m >= S2_FIRST_MONTH] or [S2_FIRST_MONTH]
        files = dict(r.files)
        size = max(r.width_px or 0, r.height_px or 0)
        all_bounds.append(b)
        rows.append({
            "patch_id": r.sample_id,
            "sample_id": r.sample_id,
            "dataset": dataset,
            "city": r.city or dataset,
            "t1": dates[0].isoformat(),
            "t2": dates[-1].isoformat(),
            "dates": json.dumps([d.isoformat() for d in dates]),
            "month_first": months[0],
            "month_last": months[-1],
            "n_months": len(months),
            "hr_crs": crs,
            "hr_bounds": json.dumps(list(b)),
            "gsd_m": float(r.gsd_m) if r.gsd_m else float("nan"),
            "size_px": int(size),
            "width_px": int(r.width_px or 0),
            "height_px": int(r.height_px or 0),
            "hr_t1": str(files.get("t1", "") or ""),
            "hr_t2": str(files.get("t2", "") or ""),
            "files": json.dumps(files, sort_keys=True, default=str),
            "label_encoding": r.label_encoding,
            "source_split": r.split,
            "months_before_s2": len(before),
        })
    geoms = bounds_polygons_wgs84([r["hr_crs"] for r in rows], np.array(all_bounds))
    gdf = gpd.GeoDataFrame(rows, geometry=list(geoms), crs="EPSG:4326")
    return gdf.sort_values("sample_id", kind="stable").reset_index(drop=True)


def template_records(
    name: str,
    city: str,
    t1: dt.date,
    t2: dt.date,
    extent_wgs84: Sequence[float],
    patch_px: int,
    gsd_m: float,
) -> list[SampleRecord]:
    """Synthetic tiling of an AOI template's extent (plan-only): square patches of
    ``patch_px * gsd_m`` metres on the UTM zone of the extent's centre, row-major from the
    north-west corner, ids ``<name>_r<row:03d>_c<col:03d>`` (the tile stage's scheme).

    Only used to estimate requests before imagery exists; no file is referenced.
    """
    from pyproj import Transformer

    from pipeline.grid import choose_aoi_epsg

    w, s, e, n = (float(v) for v in extent_wgs84)
    epsg = choose_aoi_epsg((w, s, e, n), name)
    to = Transformer.from_crs("EPSG:4326", f"EPSG:{epsg}", always_xy=True)
    lon = np.array([w, e, e, w, (w + e) / 2, (w + e) / 2])
    lat = np.array([s, s, n, n, s, n])
    x, y = to.transform(lon, lat)
    side = patch_px * gsd_m
    x0, y1 = float(np.min(x)), float(np.max(y))
    ncol = max(1, int((float(np.max(x)) - x0) // side))
    nrow = max(1, int((y1 - float(np.min(y))) // side))
    out = []
    for r in range(nrow):
        for c in range(ncol):
            minx, maxy = x0 + c * side, y1 - r * side
            out.append(SampleRecord(
                sample_id=f"{name}_r{r:03d}_c{c:03d}",
                crs=f"EPSG:{epsg}",
                bounds=(minx, maxy - side, minx + side, maxy),
                dates=(t1, t2),
                gsd_m=gsd_m,
                width_px=patch_px,
                height_px=patch_px,
                city=city,
                where=f"AOI template {name}",
            ))
    return out
