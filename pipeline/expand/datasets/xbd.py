"""Reader of the xBD / xView2 layout for the expansion paradigm (adapter ``xbd``): pre/post
PNG pairs placed by their label JSONs' building coordinates."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.errors import InputError
from pipeline.expand.adapters import SampleRecord, parse_date

log = logging.getLogger(__name__)

#: Post-disaster building subtypes that count as change (damage); "un-classified" is ignored.
XBD_DAMAGED = ("minor-damage", "major-damage", "destroyed")


def _xbd_vertices(doc: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """Matching (pixel x, y) and (lon, lat) vertices of a label JSON's building polygons
    (``features.xy`` and ``features.lng_lat``, paired by ``uid``)."""
    import shapely

    feats = doc.get("features", {}) or {}
    by_uid = {}
    for f in feats.get("xy", []) or []:
        uid = (f.get("properties") or {}).get("uid")
        if uid is not None and f.get("wkt"):
            by_uid[uid] = f["wkt"]
    px, ll = [], []
    for f in feats.get("lng_lat", []) or []:
        uid = (f.get("properties") or {}).get("uid")
        if uid not in by_uid or not f.get("wkt"):
            continue
        a = shapely.get_coordinates(shapely.from_wkt(by_uid[uid]))
        b = shapely.get_coordinates(shapely.from_wkt(f["wkt"]))
        if len(a) == len(b):
            px.append(a)
            ll.append(b)
    if not px:
        return np.zeros((0, 2)), np.zeros((0, 2))
    return np.concatenate(px), np.concatenate(ll)


def xbd_transform(doc: dict[str, Any]) -> tuple[float, ...] | None:
    """The pixel -> lon/lat affine (a, b, c, d, e, f) of an xBD image, fitted (least squares)
    to its label's building vertices, which the JSON gives both in pixels and in lon/lat;
    None when it has fewer than 3 non-collinear vertices (an image without buildings)."""
    return fit_pixel_affine(*_xbd_vertices(doc))


def fit_pixel_affine(px: np.ndarray, ll: np.ndarray) -> tuple[float, ...] | None:
    """Least-squares affine (a, b, c, d, e, f) with ``lon = a x + b y + c``, ``lat = d x + e y
    + f`` from (N, 2) pixel and (N, 2) lon/lat vertices; None below 3 non-collinear points."""
    if len(px) < 3:
        return None
    A = np.column_stack([px, np.ones(len(px))])
    if np.linalg.matrix_rank(A) < 3:
        return None
    (a, b, c), *_ = np.linalg.lstsq(A, ll[:, 0], rcond=None)
    (d, e, f), *_ = np.linalg.lstsq(A, ll[:, 1], rcond=None)
    return (float(a), float(b), float(c), float(d), float(e), float(f))


def scan_xbd(root: str | Path) -> list[SampleRecord]:
    """Records of the xBD / xView2 layout (``<split>/images/<disaster>_<id>_{pre,post}_
    disaster.png`` + ``<split>/labels/<same>.json``; splits train, tier3, test, hold), one per
    pre/post pair. The PNGs carry no georeferencing, but the label JSONs give every building
    both in pixels (``features.xy``) and in lon/lat (``features.lng_lat``): the image's affine
    is fitted to those vertices (pre and post together), and its bounds come from it (EPSG:4326).
    Dates are the JSONs' ``capture_date``; ``gsd_m`` their ``gsd``; the split is the folder.
    Pairs without buildings cannot be placed: they are skipped, counted and logged.

    Raises:
        InputError: no label JSONs, or no pair that can be placed.
    """
    import json as _json

    r = Path(root)
    if not r.is_dir():
        raise InputError(f"xBD folder {r} does not exist: fix expand.path")
    pres = (sorted(r.glob("*/labels/*_pre_disaster.json"))
            + sorted(r.glob("labels/*_pre_disaster.json")))
    if not pres:
        raise InputError(f"{r}: no xBD label files (<split>/labels/<disaster>_<id>_pre_disaster"
                         ".json): point expand.path at the xBD root")
    out, unplaced = [], []
    for pre in pres:
        post = pre.with_name(pre.name.replace("_pre_disaster", "_post_disaster"))
        if not post.is_file():
            raise InputError(f"{pre}: no post-disaster label {post.name} beside it")
        d1, d2 = _json.loads(pre.read_text()), _json.loads(post.read_text())
        stem = pre.name[: -len("_pre_disaster.json")]
        (px1, ll1), (px2, ll2) = _xbd_vertices(d1), _xbd_vertices(d2)
        tr = fit_pixel_affine(np.concatenate([px1, px2]), np.concatenate([ll1, ll2]))
        if tr is None:
            unplaced.append(stem)
            continue
        meta = d1.get("metadata", {}) or {}
        w, h = int(meta.get("width", 1024)), int(meta.get("height", 1024))
        a, b, c, d, e, f = tr
        xs = [c, c + a * w, c + b * h, c + a * w + b * h]
        ys = [f, f + d * w, f + e * h, f + d * w + e * h]
        bounds = (min(xs), min(ys), max(xs), max(ys))
        t1 = parse_date(meta.get("capture_date"), str(pre))
        t2 = parse_date((d2.get("metadata") or {}).get("capture_date"), str(post))
        img_dir = pre.parent.parent / "images"
        files = {"t1": str(img_dir / f"{stem}_pre_disaster.png"),
                 "t2": str(img_dir / f"{stem}_post_disaster.png"),
                 "label_pre": str(pre), "label_post": str(post),
                 "transform": list(tr)}
        out.append(SampleRecord(stem, "EPSG:4326", bounds, (t1, t2),
                                float(meta["gsd"]) if meta.get("gsd") else None, w, h,
                                files, str(meta.get("disaster", "") or ""), "xbd-damage",
                                str(pre), pre.parent.parent.name))
    if unplaced:
        log.warning("%s: %d xBD pairs have no building to fit their georeferencing and are "
                    "skipped (e.g. %s)", r, len(unplaced), unplaced[:3])
    if not out:
        raise InputError(f"{r}: none of the {len(pres)} xBD pairs has buildings to place it")
    return out


def read_xbd_change(post_json: str | Path, height: int, width: int) -> np.ndarray:
    """uint8 (H, W) change of an xBD pair: 1 on buildings the post label grades minor-damage,
    major-damage or destroyed, 255 on un-classified buildings, 0 elsewhere (no-damage buildings
    and background), rasterised from the pixel polygons (``features.xy``)."""
    import json as _json

    import shapely
    from rasterio.features import rasterize

    doc = _json.loads(Path(post_json).read_text())
    shapes = []
    for f in (doc.get("features", {}) or {}).get("xy", []) or []:
        sub = (f.get("properties") or {}).get("subtype", "")
        if not f.get("wkt"):
            continue
        val = 1 if sub in XBD_DAMAGED else 255 if sub == "un-classified" else 0
        if val:
            shapes.append((shapely.from_wkt(f["wkt"]), val))
    if not shapes:
        return np.zeros((height, width), np.uint8)
    return rasterize(shapes, out_shape=(height, width), fill=0, dtype="uint8")
