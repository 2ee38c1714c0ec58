"""The Earth Engine recipe: the expression graph of one (block, month) composite and of the
month's scene-count query (pure: builds ``ee`` objects, sends nothing). See the package
docstring for the recipe; ``ee`` is passed in by the caller, never imported here.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from pipeline.bands import S1_BANDS, S2_BANDS
from pipeline.errors import SourceError
from pipeline.grid import AoiGrid
from pipeline.sentinel.model import Block, Recipe

S2_L2A = "COPERNICUS/S2_SR_HARMONIZED"
S2_L1C = "COPERNICUS/S2_HARMONIZED"
S2_CLOUD_PROB = "COPERNICUS/S2_CLOUD_PROBABILITY"
CLOUD_SCORE_PLUS = "GOOGLE/CLOUD_SCORE_PLUS/V1/S2_HARMONIZED"
S1_GRD = "COPERNICUS/S1_GRD"
#: The same S1 scenes as linear power (no dB conversion): averaged before going back to dB.
S1_GRD_FLOAT = "COPERNICUS/S1_GRD_FLOAT"
S2_COUNT = "s2_count"
S1_COUNT = "s1_count"
#: Band ids of a full response, in order.
RESPONSE_BANDS: tuple[str, ...] = (*S2_BANDS, S2_COUNT, *S1_BANDS, S1_COUNT)
#: s2cloudless shadow parameters (GEE s2cloudless tutorial defaults).
NIR_DARK_THRESHOLD = 0.15
CLOUD_PROJECTION_DISTANCE_KM = 1.0
#: Value given to a masked pixel of a mean band before the response is encoded: computePixels'
#: NPY output has no mask and returns masked pixels as 0 (a valid reflectance / dB), so every
#: value band is unmasked with this out-of-range value and decoded back to NaN per band.
NODATA_FILL = -32768.0
#: Scene property that identifies one S2 datatake (all MGRS granules of one pass).
S2_DATATAKE = "DATATAKE_IDENTIFIER"
#: Property set on S1 scenes: relative orbit + UTC date (the slices of one pass).
S1_PASS_KEY = "fusu_orbit_day"
_CLEAR = "clear"

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
    if recipe.s2_mask == "scl":  # the L2A bands carry their own cloud layer: nothing to join
        return s2
    if recipe.s2_mask == "cloud_score_plus":
        cs = ee.ImageCollection(CLOUD_SCORE_PLUS).filterBounds(region).filterDate(start, end)
        return _join_first(ee, s2, cs, "cloud_score_plus")
    probs = ee.ImageCollection(S2_CLOUD_PROB).filterBounds(region).filterDate(start, end)
    return _join_first(ee, s2, probs, "s2cloudless")


def _placeholder(ee: Any, bands: tuple[str, ...], values_dtype: str) -> Any:
    """A fully masked image with ``bands`` (values as ``values_dtype``) plus a uint8 ``clear``
    band: merged into a masked collection so that its mean keeps its bands even when no scene
    is left (an empty collection's mean has no bands, and Earth Engine then fails the request
    with HTTP 400 "If one image has no bands, the other must also have no bands"). Masked, it
    adds nothing to the mean or the count."""
    img = ee.Image.constant([0] * len(bands)).rename(list(bands))
    img = img.toUint16() if values_dtype == "uint16" else img.toFloat()
    clear = ee.Image.constant(0).toUint8().rename(_CLEAR)
    return img.addBands(clear).updateMask(ee.Image.constant(0))


def _no_observation_s2(ee: Any) -> Any:
    """The S2 placeholder: 12 masked DN bands (uint16) + ``clear``."""
    return _placeholder(ee, S2_BANDS, "uint16")


def one_per(ee: Any, masked: Any, key: str) -> Any:
    """One image per distinct value of property ``key``: the images sharing it (the
    overlapping MGRS granules of one S2 datatake, the slices of one S1 pass) are mosaicked,
    so an overlap pixel is one observation, not two, in the mean and in the count. Masks are
    per granule (applied before), so a pixel cloudy in one granule's mask and clear in the
    other's takes the clear one."""
    keys = masked.aggregate_array(key).distinct()
    return ee.ImageCollection(keys.map(
        lambda k: masked.filter(ee.Filter.eq(key, k)).mosaic().set(key, k)))


def _edge_mask(img: Any) -> Any:
    """The S2 scene-edge mask the catalogue recommends: pixels where B8A and B9 have data
    (at granule edges the bands' footprints differ and the shorter ones are masked)."""
    return img.select("B8A").mask().And(img.select("B9").mask())


def s2_collection(ee: Any, region: Any, month: str, recipe: Recipe, product: str) -> Any:
    """Masked S2 observations of the month: one image per datatake (:func:`one_per`), bands
    S2_BANDS as DN (uint16) with each band's own mask, clouds and scene edges masked, plus a
    uint8 ``clear`` band (1 where the observation counts); plus one fully masked placeholder
    (never band-less; see :func:`_placeholder`)."""
    joined = s2_joined(ee, region, month, recipe, product)
    if recipe.s2_mask == "scl":
        if product != "L2A":
            raise SourceError(f"{month}: s2_mask 'scl' needs L2A (L1C has no SCL band)")
        classes = [int(c) for c in recipe.scl_mask_classes]

        def bad_of(img: Any) -> Any:
            return img.select("SCL").remap(classes, [1] * len(classes), 0)

    elif recipe.s2_mask == "cloud_score_plus":
        threshold = float(recipe.cloud_score_plus_threshold)

        def bad_of(img: Any) -> Any:
            return ee.Image(img.get("cloud_score_plus")).select("cs").lt(threshold)

    else:
        threshold_pct = int(recipe.cloud_probability_threshold)
        avg, dil = int(recipe.cloud_average_over), int(recipe.cloud_dilation_size)
        shadow = bool(recipe.shadow_mask)
        has_scl = product == "L2A"

        def bad_of(img: Any) -> Any:
            prob = ee.Image(img.get("s2cloudless")).select("probability")
            if avg > 0:  # s2cloudless average_over: mean over a disk (request grid px)
                prob = prob.convolve(ee.Kernel.circle(avg, "pixels", True))
            bad = prob.gt(threshold_pct)
            if dil > 0:  # s2cloudless dilation_size
                bad = bad.focalMax(dil, "circle", "pixels")
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
            return bad

    bilinear = recipe.s2_resampling == "bilinear"

    def mask(img: Any) -> Any:
        clear = bad_of(img).Not().And(_edge_mask(img))
        values = img.select(list(S2_BANDS))
        if bilinear:  # per granule: resample() has no effect on a mosaic or composite
            values = values.resample("bilinear")
        flag = clear.selfMask().toUint8().rename(_CLEAR)
        return ee.Image(values.addBands(flag).updateMask(clear)
                        .copyProperties(img, [S2_DATATAKE]))

    observations = one_per(ee, joined.map(mask), S2_DATATAKE)
    return observations.merge(ee.ImageCollection([_no_observation_s2(ee)]))


def s2_image(ee: Any, region: Any, month: str, recipe: Recipe, product: str) -> Any:
    """S2 mean reflectance (float32, 12 bands; :data:`NODATA_FILL` where a band has no clear
    observation) + ``s2_count`` (uint8 clear datatakes)."""
    masked = s2_collection(ee, region, month, recipe, product)
    mean = (masked.select(list(S2_BANDS)).mean().divide(10000).toFloat()
            .unmask(NODATA_FILL, False).rename(list(S2_BANDS)))
    count = masked.select(_CLEAR).count().unmask(0).min(255).toUint8().rename(S2_COUNT)
    return mean.addBands(count)


def s1_collection(ee: Any, region: Any, month: str, recipe: Recipe) -> Any:
    """S1 GRD IW scenes of the month with VV or VH (either alone is kept), optional orbit-pass
    filter: ``COPERNICUS/S1_GRD_FLOAT`` (linear power) for the linear mean, else
    ``COPERNICUS/S1_GRD`` (dB)."""
    start, end = month_bounds(month)
    coll_id = S1_GRD_FLOAT if recipe.s1_mean == "linear" else S1_GRD
    s1 = (
        ee.ImageCollection(coll_id)
        .filterBounds(region)
        .filterDate(start, end)
        .filter(ee.Filter.eq("instrumentMode", "IW"))
        .filter(ee.Filter.Or(
            ee.Filter.listContains("transmitterReceiverPolarisation", "VV"),
            ee.Filter.listContains("transmitterReceiverPolarisation", "VH"),
        ))
    )
    if recipe.s1_orbit_pass:
        s1 = s1.filter(ee.Filter.eq("orbitProperties_pass", recipe.s1_orbit_pass))
    return s1


def s1_observations(ee: Any, region: Any, month: str, recipe: Recipe) -> Any:
    """One image per pass (platform + absolute orbit, :func:`one_per`), bands VV and VH each with
    its own mask (a VV-only scene gives VV and a masked VH) + ``clear`` (any band valid)."""
    base = _placeholder(ee, S1_BANDS, "float").select(list(S1_BANDS))

    def both(img: Any) -> Any:
        pols = img.select("V[VH]").toFloat()
        vals = base.addBands(pols, None, True).select(list(S1_BANDS))
        flag = img.select("V[VH]").mask().reduce(ee.Reducer.max()).selfMask().toUint8()
        # one pass = one satellite's absolute orbit: its slices share platform_number and
        # orbitNumber_start, also across 00:00 UTC (a UTC-day key split such a pass in two)
        key = (ee.String(img.get("platform_number")).cat("_")
               .cat(ee.Number(img.get("orbitNumber_start")).format("%d")))
        return vals.addBands(flag.rename(_CLEAR)).set(S1_PASS_KEY, key)

    observations = one_per(ee, s1_collection(ee, region, month, recipe).map(both), S1_PASS_KEY)
    return observations.merge(ee.ImageCollection([_placeholder(ee, S1_BANDS, "float")]))


def s1_image(ee: Any, region: Any, month: str, recipe: Recipe) -> Any:
    """S1 mean backscatter (float32 dB, VV, VH; :data:`NODATA_FILL` where a band has no
    observation) + ``s1_count`` (uint8 passes). Linear mean: the mean of linear power
    (S1_GRD_FLOAT) then 10*log10; ``db``: the plain mean of dB (S1_GRD)."""
    obs = s1_observations(ee, region, month, recipe)
    mean = obs.select(list(S1_BANDS)).mean()
    if recipe.s1_mean == "linear":
        mean = mean.log10().multiply(10)
    mean = mean.toFloat().unmask(NODATA_FILL, False).rename(list(S1_BANDS))
    count = obs.select(_CLEAR).count().unmask(0).min(255).toUint8().rename(S1_COUNT)
    return mean.addBands(count)


def l1c_only(ee: Any, region: Any, month: str) -> Any:
    """The month's L1C granules without an L2A counterpart (no S2_SR_HARMONIZED image with the
    same ``system:index``: L2A coverage of 2017-2018 is not global). In an L2A month they are
    not composited (one product per month) and are counted skips (``other_product``), as the
    scene sources record them."""
    start, end = month_bounds(month)
    l1c = ee.ImageCollection(S2_L1C).filterBounds(region).filterDate(start, end)
    l2a = ee.ImageCollection(S2_L2A).filterBounds(region).filterDate(start, end)
    same = ee.Filter.equals(leftField="system:index", rightField="system:index")
    return ee.Join.inverted().apply(l1c, l2a, same)


def scene_counts_expr(
    ee: Any, grid: AoiGrid, month: str, recipe: Recipe
) -> Any:
    """ee.Dictionary {L2A, L1C, L1C_only, S1} scene counts of the month over the AOI (one
    value:compute).

    S2 counts are of scenes with a cloud layer (:func:`s2_joined`): a month whose L2A scenes
    all lack one falls back to L1C (if allowed) instead of compositing nothing. ``L1C_only``
    (:func:`l1c_only`) counts the skips of an L2A month.
    """
    region = _region(ee, grid)
    return ee.Dictionary(
        {
            "L2A": s2_joined(ee, region, month, recipe, "L2A").size(),
            "L1C": s2_joined(ee, region, month, recipe, "L1C").size(),
            "L1C_only": l1c_only(ee, region, month).size(),
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


