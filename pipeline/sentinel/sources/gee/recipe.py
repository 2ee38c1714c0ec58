"""The Earth Engine recipe: the expression graph of one (block, month) composite and of the
month's scene-count query (pure: builds ``ee`` objects, sends nothing). See the package
docstring for the recipe; ``ee`` is passed in by the caller, never imported here.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

from pipeline.bands import S1_BANDS, S2_BANDS
from pipeline.errors import SourceError
from pipeline.grid import AoiGrid
from pipeline.sentinel.sources.base import Block, Recipe

S2_L2A = "COPERNICUS/S2_SR_HARMONIZED"
S2_L1C = "COPERNICUS/S2_HARMONIZED"
S2_CLOUD_PROB = "COPERNICUS/S2_CLOUD_PROBABILITY"
CLOUD_SCORE_PLUS = "GOOGLE/CLOUD_SCORE_PLUS/V1/S2_HARMONIZED"
S1_GRD = "COPERNICUS/S1_GRD"
S2_COUNT = "s2_count"
S1_COUNT = "s1_count"
#: Band ids of a full response, in order.
RESPONSE_BANDS: tuple[str, ...] = (*S2_BANDS, S2_COUNT, *S1_BANDS, S1_COUNT)
#: s2cloudless shadow parameters (GEE s2cloudless tutorial defaults).
NIR_DARK_THRESHOLD = 0.15
CLOUD_PROJECTION_DISTANCE_KM = 1.0

def month_bounds(month: str) -> tuple[str, str]:
    """``YYYY-MM`` -> (first day, first day of the next month) as ISO dates (end exclusive)."""
    try:
        y, m = (int(v) for v in month.split("-"))
        start = dt.date(y, m, 1)
    except ValueError:
        raise SourceError(f"month {month!r} is not YYYY-MM") from None
    end = dt.date(y + (m == 12), m % 12 + 1, 1)
    return start.isoformat(), end.isoformat()


def block_grid(grid: AoiGrid, block: Block) -> dict[str, Any]:
    """The exact computePixels ``grid`` of ``block`` (its window of the AOI grid, north-up)."""
    t = grid.window_transform(block.col0, block.row0)
    return {
        "dimensions": {"width": int(block.width), "height": int(block.height)},
        "affineTransform": {
            "scaleX": float(t.a),
            "shearX": float(t.b),
            "translateX": float(t.c),
            "shearY": float(t.d),
            "scaleY": float(t.e),
            "translateY": float(t.f),
        },
        "crsCode": grid.crs,
    }


# --------------------------------------------------------------------------- expressions


def _region(ee: Any, grid: AoiGrid, block: Block | None = None) -> Any:
    """Rectangle of the block (or whole grid) in the grid CRS (planar)."""
    if block is None:
        minx, miny, maxx, maxy = grid.bounds
    else:
        t = grid.window_transform(block.col0, block.row0)
        minx, maxy = t.c, t.f
        maxx, miny = minx + block.width * grid.res_m, maxy - block.height * grid.res_m
    return ee.Geometry.Rectangle([minx, miny, maxx, maxy], grid.crs, False)


def _join_first(ee: Any, primary: Any, secondary: Any, name: str) -> Any:
    joined = ee.Join.saveFirst(name).apply(
        primary=primary,
        secondary=secondary,
        condition=ee.Filter.equals(leftField="system:index", rightField="system:index"),
    )
    return ee.ImageCollection(joined)


def s2_joined(ee: Any, region: Any, month: str, recipe: Recipe, product: str) -> Any:
    """The month's S2 scenes of ``product`` that have a cloud layer (``recipe.s2_mask``): the
    inner join drops the others, so this, not the raw collection, is what can be composited
    and what the scene count counts."""
    start, end = month_bounds(month)
    coll_id = S2_L2A if product == "L2A" else S2_L1C
    s2 = ee.ImageCollection(coll_id).filterBounds(region).filterDate(start, end)
    if recipe.s2_mask == "cloud_score_plus":
        cs = ee.ImageCollection(CLOUD_SCORE_PLUS).filterBounds(region).filterDate(start, end)
        return _join_first(ee, s2, cs, "cloud_score_plus")
    probs = ee.ImageCollection(S2_CLOUD_PROB).filterBounds(region).filterDate(start, end)
    return _join_first(ee, s2, probs, "s2cloudless")


def _no_observation_s2(ee: Any) -> Any:
    """A fully masked 12-band DN image: merged into the masked collection so that its mean
    keeps the 12 bands even when the join matched no scene (an empty collection's mean has no
    bands, and Earth Engine then fails the request with HTTP 400 "If one image has no bands,
    the other must also have no bands"). Masked, it adds nothing to the mean or the count."""
    return (ee.Image.constant([0] * len(S2_BANDS)).rename(list(S2_BANDS)).toUint16()
            .updateMask(ee.Image.constant(0)))


def s2_collection(ee: Any, region: Any, month: str, recipe: Recipe, product: str) -> Any:
    """Masked S2 collection of the month: bands S2_BANDS as DN (uint16), clouds masked, plus
    one fully masked placeholder (never band-less; see :func:`_no_observation_s2`)."""
    joined = s2_joined(ee, region, month, recipe, product)
    if recipe.s2_mask == "cloud_score_plus":
        threshold = float(recipe.cloud_score_plus_threshold)

        def mask(img: Any) -> Any:
            clear = ee.Image(img.get("cloud_score_plus")).select("cs").gte(threshold)
            return img.select(list(S2_BANDS)).updateMask(clear)

    else:
        threshold = int(recipe.cloud_probability_threshold)
        shadow = bool(recipe.shadow_mask)
        has_scl = product == "L2A"

        def mask(img: Any) -> Any:
            prob = ee.Image(img.get("s2cloudless")).select("probability")
            bad = prob.gt(threshold)
            if shadow:
                dark = img.select("B8").lt(NIR_DARK_THRESHOLD * 1e4)
                if has_scl:  # not water (SCL 6)
                    dark = dark.And(img.select("SCL").neq(6))
                azimuth = ee.Number(90).subtract(ee.Number(img.get("MEAN_SOLAR_AZIMUTH_ANGLE")))
                projected = (
                    bad.directionalDistanceTransform(azimuth, CLOUD_PROJECTION_DISTANCE_KM * 10)
                    .reproject(crs=img.select(0).projection(), scale=100)
                    .select("distance")
                    .mask()
                )
                bad = bad.Or(projected.And(dark))
            return img.select(list(S2_BANDS)).updateMask(bad.Not())

    masked = joined.map(mask)
    if recipe.s2_resampling == "bilinear":
        masked = masked.map(lambda img: img.resample("bilinear"))
    return masked.merge(ee.ImageCollection([_no_observation_s2(ee)]))


def s2_image(ee: Any, region: Any, month: str, recipe: Recipe, product: str) -> Any:
    """S2 mean reflectance (float32, 12 bands) + ``s2_count`` (uint8) of the month."""
    masked = s2_collection(ee, region, month, recipe, product)
    mean = masked.mean().divide(10000).toFloat().rename(list(S2_BANDS))
    count = masked.select("B2").count().unmask(0).min(255).toUint8().rename(S2_COUNT)
    return mean.addBands(count)


def s1_collection(ee: Any, region: Any, month: str, recipe: Recipe) -> Any:
    """S1 GRD IW scenes with VV and VH (dB) of the month, optional orbit-pass filter."""
    start, end = month_bounds(month)
    s1 = (
        ee.ImageCollection(S1_GRD)
        .filterBounds(region)
        .filterDate(start, end)
        .filter(ee.Filter.eq("instrumentMode", "IW"))
        .filter(ee.Filter.listContains("transmitterReceiverPolarisation", "VV"))
        .filter(ee.Filter.listContains("transmitterReceiverPolarisation", "VH"))
    )
    if recipe.s1_orbit_pass:
        s1 = s1.filter(ee.Filter.eq("orbitProperties_pass", recipe.s1_orbit_pass))
    return s1.select(list(S1_BANDS))


def s1_image(ee: Any, region: Any, month: str, recipe: Recipe) -> Any:
    """S1 mean backscatter (float32 dB, VV, VH) + ``s1_count`` (uint8) of the month."""
    s1 = s1_collection(ee, region, month, recipe)
    if recipe.s1_mean == "linear":
        # 10^(dB/10) = exp(dB * ln(10)/10); mean in linear power; back with 10*log10
        linear = s1.map(lambda img: img.multiply(math.log(10.0) / 10.0).exp())
        mean = linear.mean().log10().multiply(10)
    else:
        mean = s1.mean()
    mean = mean.toFloat().rename(list(S1_BANDS))
    count = s1.select("VV").count().unmask(0).min(255).toUint8().rename(S1_COUNT)
    return mean.addBands(count)


def scene_counts_expr(
    ee: Any, grid: AoiGrid, month: str, recipe: Recipe
) -> Any:
    """ee.Dictionary {L2A, L1C, S1} scene counts of the month over the AOI (one value:compute).

    S2 counts are of scenes with a cloud layer (:func:`s2_joined`): a month whose L2A scenes
    all lack one falls back to L1C (if allowed) instead of compositing nothing.
    """
    region = _region(ee, grid)
    return ee.Dictionary(
        {
            "L2A": s2_joined(ee, region, month, recipe, "L2A").size(),
            "L1C": s2_joined(ee, region, month, recipe, "L1C").size(),
            "S1": s1_collection(ee, region, month, recipe).size(),
        }
    )


def block_image(
    ee: Any,
    grid: AoiGrid,
    block: Block,
    month: str,
    recipe: Recipe,
    product: str | None,
    with_s1: bool,
) -> tuple[Any, list[str]]:
    """The image fetched for one block and its band ids (S2 part only if ``product``).

    Collections are filtered by the whole AOI grid (the same filter as the per-month scene
    count), so a block is never asked to composite an empty collection (a zero-band image);
    the exact block window is pinned by the request grid instead.
    """
    region = _region(ee, grid)
    parts, bands = [], []
    if product is not None:
        parts.append(s2_image(ee, region, month, recipe, product))
        bands += [*S2_BANDS, S2_COUNT]
    if with_s1:
        parts.append(s1_image(ee, region, month, recipe))
        bands += [*S1_BANDS, S1_COUNT]
    if not parts:
        raise SourceError(f"{month}: nothing to fetch for block {block.id}")
    image = parts[0] if len(parts) == 1 else ee.Image.cat(parts)
    return image, bands


