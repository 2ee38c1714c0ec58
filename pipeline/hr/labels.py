"""Annotation polygons -> class label rasters on each HR patch grid (pure functions).

Pipeline per AOI and date (see :mod:`stages.labels`):

1. :func:`prepare_polygons`: map the class attribute to schema values (:func:`map_class_values`,
   optional ``source,target`` mapping from :func:`parse_class_mapping`), reproject the polygons
   to the image CRS, repair invalid geometries with ``shapely.make_valid`` (counted), keep the
   polygonal parts, drop empty ones, and order them so that the overlap winner is burned last
   (:func:`burn_order`). The result carries a ``shapely.STRtree``.
2. :func:`rasterize_patch`: per patch, query the tree with the patch box, clip the hits to the
   box (plus a 2-pixel margin) and burn them with ``rasterio.features.rasterize`` in burn
   order; pixels covered by no polygon are background (0).
3. :func:`apply_nodata`: pixels where the HR patch of that date has no imagery become 255.

Overlap rules (``labels.overlap_rule``), deterministic:

* ``smallest`` (default): the polygon with the smallest area (in the image CRS) wins; on equal
  areas the later feature in file order wins.
* ``last``: the later feature in file order wins.
* ``priority``: the class listed earlier in the schema's ``priority`` wins; within a class the
  later feature wins.

Labels are uint8 ``(h, w)`` arrays on the patch grid (CRS of the HR imagery, units of that
CRS), values ``0..n_classes-1`` and ``schema.nodata`` (255) = no imagery.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import shapely
from affine import Affine
from rasterio.features import rasterize

from pipeline.classes import ClassSchema, normalize_token
from pipeline.errors import LabelError

log = logging.getLogger(__name__)

OverlapRule = Literal["smallest", "last", "priority"]
MISSING = "<missing>"


# --------------------------------------------------------------------------- class mapping


def parse_class_mapping(
    rows: Iterable[tuple[str, str]], schema: ClassSchema, where: str = "class mapping"
) -> dict[str, int]:
    """Validate ``(source, target)`` rows into ``normalized source -> label value``.

    ``source`` is a code or name as it appears in the annotations (matched case-insensitively,
    ``3``/``3.0``/``"03"`` are the same code). ``target`` is a schema value (``0..n-1``, or the
    nodata value 255 for "no imagery") or a schema class name/alias.

    Raises:
        LabelError: unknown targets or a source mapped to two different targets.
    """
    out: dict[str, int] = {}
    bad: list[str] = []
    for source, target in rows:
        key = normalize_token(source)
        value = schema.resolve(target)
        if key is None:
            bad.append(f"empty source for target {target!r}")
            continue
        if value is None:
            bad.append(f"{source!r} -> {target!r} (target is not a value or class name)")
            continue
        if key in out and out[key] != value:
            bad.append(f"{source!r} is mapped to both {out[key]} and {value}")
            continue
        out[key] = value
    if bad:
        raise LabelError(
            f"{where}: invalid rows: " + "; ".join(bad) + f". Targets must be values 0.."
            f"{schema.n_classes - 1} (or {schema.nodata} = no data) or class names of schema "
            f"{schema.id!r}: {schema.names}"
        )
    return out


def map_class_values(
    raw: Sequence[Any],
    schema: ClassSchema,
    mapping: dict[str, int] | None = None,
    unknown: Literal["error", "background"] = "error",
    where: str = "annotations",
) -> tuple[np.ndarray, dict[str, int]]:
    """Map raw class attribute values to label values.

    Args:
        raw: one attribute value per feature (ints, floats, strings, None/NaN).
        schema: target class schema.
        mapping: ``normalized source -> value`` from :func:`parse_class_mapping`; None means
            the values are already schema values or class names/aliases (case-insensitive).
        unknown: ``"error"`` raises; ``"background"`` maps unknown values to the background
            class (counts are returned so the caller can log them).
        where: file / AOI description for messages.

    Returns:
        ``(values uint8 (n,), unknown_counts {display value: n features})``.

    Raises:
        LabelError: listing every unknown value with its feature count (``unknown="error"``).
    """
    n = len(raw)
    values = np.empty(n, dtype=np.uint8)
    unknown_counts: Counter[str] = Counter()
    cache: dict[str | None, int | None] = {}
    for i, token in enumerate(raw):
        key = normalize_token(token)
        if key not in cache:
            if key is None:
                cache[key] = None
            elif mapping is not None:
                cache[key] = mapping.get(key)
            else:
                cache[key] = schema.resolve(key)
        v = cache[key]
        if v is None:
            unknown_counts[MISSING if key is None else repr(token)] += 1
            values[i] = schema.background
        else:
            values[i] = v
    if unknown_counts and unknown == "error":
        listing = ", ".join(f"{k} ({c} features)" for k, c in sorted(unknown_counts.items()))
        how = (
            "add them to the class_mapping CSV"
            if mapping is not None
            else "use FUSU values 0..17 or class names, or give a class_mapping CSV (source,target)"
        )
        raise LabelError(
            f"{where}: {sum(unknown_counts.values())} features have class values unknown to "
            f"schema {schema.id!r}: {listing}. Fix: {how}, or set labels.unknown_classes: "
            "background to map them to background (0)"
        )
    return values, dict(unknown_counts)


# --------------------------------------------------------------------------- geometry


def _polygonal(geom: Any) -> Any:
    """The polygonal part of a geometry (Polygon/MultiPolygon) or an empty polygon."""
    if geom is None:
        return shapely.Polygon()
    kind = shapely.get_type_id(geom)
    if kind in (3, 6):  # Polygon, MultiPolygon
        return geom
    if kind == 7:  # GeometryCollection
        parts = [p for p in shapely.get_parts(geom) if shapely.get_type_id(p) in (3, 6)]
        polys: list[Any] = []
        for p in parts:
            polys.extend(shapely.get_parts(p) if shapely.get_type_id(p) == 6 else [p])
        return shapely.MultiPolygon(polys) if polys else shapely.Polygon()
    return shapely.Polygon()


def repair_geometries(geoms: np.ndarray) -> tuple[np.ndarray, int]:
    """Repair invalid geometries with ``shapely.make_valid`` and keep polygonal parts.

    Args:
        geoms: object array of shapely geometries (None allowed).

    Returns:
        ``(polygonal geometries (object array, same length; empty where nothing polygonal
        remains), number of geometries that were invalid and repaired)``.
    """
    geoms = np.asarray(geoms, dtype=object)
    present = ~shapely.is_missing(geoms)
    invalid = present & ~shapely.is_valid(geoms)
    out = geoms.copy()
    if invalid.any():
        out[invalid] = shapely.make_valid(geoms[invalid])
    out = np.array([_polygonal(g) for g in out], dtype=object)
    return out, int(invalid.sum())


def burn_order(
    values: np.ndarray,
    areas: np.ndarray,
    rule: OverlapRule,
    schema: ClassSchema | None = None,
) -> np.ndarray:
    """Indices ordering features so that the overlap winner is burned LAST.

    Args:
        values: label value per feature (uint8).
        areas: polygon area per feature (image CRS units squared).
        rule: see module docstring (``smallest`` / ``last`` / ``priority``).
        schema: needed for ``priority``.

    Returns:
        int64 permutation of ``range(n)``; ties always resolve to file order (later wins).
    """
    n = len(values)
    order = np.arange(n)
    if rule == "last":
        return order
    if rule == "smallest":
        # primary key: area descending (largest burned first); secondary: file order
        return np.lexsort((order, -np.asarray(areas, dtype=float)))
    if rule == "priority":
        if schema is None:
            raise ValueError("burn_order(rule='priority') needs the schema")
        rank = schema.priority_rank()
        ranks = np.array([rank.get(int(v), -1) for v in values], dtype=np.int64)
        # lowest priority (largest rank) first, highest priority last
        return np.lexsort((order, -ranks))
    raise ValueError(f"unknown overlap rule {rule!r}")


@dataclass
class PolygonSet:
    """Polygons of one annotation file, ready to burn.

    Attributes:
        geoms: object array of (Multi)Polygons in the image CRS, in burn order.
        values: uint8 label value per geometry, in burn order.
        crs: the image CRS string the geometries are in.
        stats: counts for the log (features, repaired, dropped_empty, dropped_non_polygon,
            unknown).
    """

    geoms: np.ndarray
    values: np.ndarray
    crs: str
    stats: dict[str, Any] = field(default_factory=dict)
    tree: shapely.STRtree = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.tree = shapely.STRtree(self.geoms)

    def __len__(self) -> int:
        return len(self.geoms)


def prepare_polygons(
    gdf: Any,
    class_attribute: str,
    image_crs: str,
    schema: ClassSchema,
    mapping: dict[str, int] | None = None,
    overlap_rule: OverlapRule = "smallest",
    unknown: Literal["error", "background"] = "error",
    where: str = "annotations",
) -> PolygonSet:
    """Turn an annotation GeoDataFrame into a :class:`PolygonSet` on the image CRS.

    Steps: class mapping (errors before any geometry work), reprojection to ``image_crs``,
    ``make_valid`` repair (counted), polygonal parts only (points/lines dropped, counted),
    empty geometries dropped (counted), burn ordering for ``overlap_rule``.

    Args:
        gdf: GeoDataFrame with a CRS and the ``class_attribute`` column.
        class_attribute: column with class codes / names.
        image_crs: CRS of the HR patches (e.g. ``"EPSG:32649"``).
        schema, mapping, unknown, where: see :func:`map_class_values`.
        overlap_rule: see module docstring.

    Raises:
        LabelError: unknown classes (``unknown="error"``) or an invalid class mapping.
    """
    values, unknown_counts = map_class_values(
        list(gdf[class_attribute]), schema, mapping, unknown=unknown, where=where
    )
    if unknown_counts:
        listing = ", ".join(f"{k}: {c}" for k, c in sorted(unknown_counts.items()))
        log.warning("%s: unknown class values mapped to background (0): %s", where, listing)
    gs = gdf.geometry
    if gs.crs is not None and not gs.crs.equals(image_crs):
        gs = gs.to_crs(image_crs)
    geoms = np.asarray(gs.values, dtype=object)
    n_missing = int(shapely.is_missing(geoms).sum())
    geom_types = shapely.get_type_id(geoms)
    non_poly = (~shapely.is_missing(geoms)) & ~np.isin(geom_types, (3, 6, 7))
    geoms, n_repaired = repair_geometries(geoms)
    empty = shapely.is_empty(geoms)
    keep = ~empty
    geoms, values = geoms[keep], values[keep]
    areas = shapely.area(geoms)
    order = burn_order(values, areas, overlap_rule, schema)
    stats = {
        "features": len(gdf),
        "repaired": n_repaired,
        "dropped_non_polygon": int(non_poly.sum()),
        "dropped_missing_geometry": n_missing,
        "dropped_empty": int(empty.sum() - non_poly.sum() - n_missing),
        "unknown": dict(unknown_counts),
        "kept": int(keep.sum()),
    }
    log.info(
        "%s: %d features, %d invalid geometries repaired with make_valid, %d empty dropped, "
        "%d non-polygon dropped, %d missing geometries, %d kept",
        where,
        stats["features"],
        n_repaired,
        stats["dropped_empty"],
        stats["dropped_non_polygon"],
        n_missing,
        stats["kept"],
    )
    return PolygonSet(geoms=geoms[order], values=values[order], crs=str(image_crs), stats=stats)


# --------------------------------------------------------------------------- rasterization


def window_bounds(transform: Affine, shape: tuple[int, int]) -> tuple[float, float, float, float]:
    """(minx, miny, maxx, maxy) of a north-up grid of ``shape`` (h, w)."""
    h, w = shape
    x0, y0 = transform @ (0, 0)
    x1, y1 = transform @ (w, h)
    return (min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))


def rasterize_patch(
    polys: PolygonSet,
    transform: Affine,
    shape: tuple[int, int],
    all_touched: bool = False,
) -> np.ndarray:
    """Burn the polygons intersecting one patch onto its grid.

    Only polygons whose envelope meets the patch box are used (STRtree query); they are clipped
    to the box plus a 2-pixel margin (the burnt result is unchanged, huge polygons get cheap)
    and burned in burn order, so the overlap winner ends on top.

    Args:
        polys: from :func:`prepare_polygons`, in the patch's CRS.
        transform: pixel -> CRS affine of the patch's upper-left corner (north-up).
        shape: ``(h, w)`` in pixels.
        all_touched: rasterio ``all_touched``.

    Returns:
        uint8 ``(h, w)``; 0 (background) where no polygon covers a pixel centre (or, with
        ``all_touched``, touches the pixel).
    """
    out = np.zeros(shape, dtype=np.uint8)
    if len(polys) == 0:
        return out
    minx, miny, maxx, maxy = window_bounds(transform, shape)
    mx, my = 2 * abs(transform.a), 2 * abs(transform.e)
    box = shapely.box(minx, miny, maxx, maxy)
    hits = np.sort(polys.tree.query(box))
    if hits.size == 0:
        return out
    clipped = shapely.clip_by_rect(polys.geoms[hits], minx - mx, miny - my, maxx + mx, maxy + my)
    keep = ~shapely.is_empty(clipped)
    if not keep.any():
        return out
    shapes = zip(clipped[keep], polys.values[hits][keep].tolist(), strict=True)
    return rasterize(
        shapes,
        out_shape=shape,
        transform=transform,
        fill=0,
        dtype=np.uint8,
        all_touched=all_touched,
    )


def apply_nodata(label: np.ndarray, valid: np.ndarray, nodata: int = 255) -> np.ndarray:
    """Set ``nodata`` where ``valid`` is False (no imagery); returns ``label`` (modified)."""
    if valid.shape != label.shape:
        raise ValueError(f"valid mask shape {valid.shape} != label shape {label.shape}")
    label[~valid] = nodata
    return label


def label_patch(
    polys: PolygonSet,
    transform: Affine,
    valid: np.ndarray,
    nodata: int = 255,
    all_touched: bool = False,
) -> np.ndarray:
    """Label raster of one patch: :func:`rasterize_patch` + :func:`apply_nodata`.

    Args:
        valid: ``(h, w)`` bool, True where the HR patch of this date has imagery.

    Returns:
        uint8 ``(h, w)``: class values, ``nodata`` outside the imagery.
    """
    label = rasterize_patch(polys, transform, valid.shape, all_touched=all_touched)
    return apply_nodata(label, valid, nodata)


# --------------------------------------------------------------------------- histograms


def histogram_values(schema: ClassSchema) -> list[int]:
    """Values counted in histograms: every class value, then nodata."""
    return [*schema.values, schema.nodata]


def histogram_columns(prefix: str, schema: ClassSchema) -> list[str]:
    """Column names ``<prefix>_px_<value>`` for :func:`class_histogram` (e.g. ``t1_px_255``)."""
    return [f"{prefix}_px_{v}" for v in histogram_values(schema)]


def class_histogram(label: np.ndarray, schema: ClassSchema) -> np.ndarray:
    """Pixel counts per class value and nodata (order of :func:`histogram_values`), int64.

    Raises:
        ValueError: the label holds values outside the schema (a corrupt label file).
    """
    counts = np.bincount(label.ravel(), minlength=256)
    vals = histogram_values(schema)
    hist = counts[vals].astype(np.int64)
    if hist.sum() != label.size:
        bad = sorted(set(np.flatnonzero(counts).tolist()) - set(vals))
        raise ValueError(f"label holds values outside schema {schema.id!r}: {bad}")
    return hist


def check_overlap(polys: PolygonSet, image_bounds: Sequence[float], where: str) -> None:
    """Fail before any label is written when the polygons cannot touch the image at all.

    Args:
        polys: the date's polygons in the image CRS.
        image_bounds: (minx, miny, maxx, maxy) of the tiled patches, image CRS.

    Raises:
        LabelError: no polygon bounds intersect the image bounds (wrong CRS, wrong file,
            polygons far off the image); the message gives both extents.
    """
    if len(polys) == 0:
        return
    b = shapely.total_bounds(polys.geoms)
    x0, y0, x1, y1 = (float(v) for v in image_bounds)
    if b[0] > x1 or b[2] < x0 or b[1] > y1 or b[3] < y0:
        raise LabelError(
            f"{where}: no polygon touches the image: polygons span "
            f"({b[0]:.1f}, {b[1]:.1f}, {b[2]:.1f}, {b[3]:.1f}) and the patches "
            f"({x0:.1f}, {y0:.1f}, {x1:.1f}, {y1:.1f}) in {polys.crs}; check the file's CRS "
            "(a wrong .prj or an unassigned CRS is the usual cause) and that it is this AOI's"
        )


def check_coverage(hist: np.ndarray, schema: ClassSchema, min_share: float, warn_share: float,
                   where: str) -> float:
    """Share of valid HR pixels (not no data) that got a class (not background); fails at or
    below ``min_share``, warns below ``warn_share``. Returns the share.

    Args:
        hist: the date's class histogram summed over the AOI (schema values, no data last).

    Raises:
        LabelError: coverage at or below ``min_share`` (names the numbers and the fix).
    """
    h = np.asarray(hist, dtype=np.int64)
    valid = int(h.sum() - h[-1])
    labelled = valid - int(h[schema.background])
    share = labelled / valid if valid else 0.0
    if share <= min_share:
        raise LabelError(
            f"{where}: the polygons label {labelled} of {valid} valid pixels ({100 * share:.2f} "
            f"%, limit {100 * min_share:.2f} %, labels.min_coverage): check the annotation CRS, "
            "the class attribute / mapping (unknown classes mapped to background?) and that the "
            "file covers this image"
        )
    if share < warn_share:
        log.warning("%s: only %.2f %% of the valid pixels are labelled (labels.warn_coverage "
                    "%.2f %%)", where, 100 * share, 100 * warn_share)
    return share
