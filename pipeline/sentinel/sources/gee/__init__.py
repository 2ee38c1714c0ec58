"""Google Earth Engine Sentinel source (the only module that imports ``ee``, lazily).

Per (AOI, month) the source asks Earth Engine once (``value:compute``, cached) how many L2A,
L1C and S1 scenes touch the AOI, which decides the month's S2 product level (L2A, else L1C if
``recipe.allow_l1c_fallback``, else none). Per (block, month) it then sends ONE
``computePixels`` request whose image stacks the S2 composite and the S1 composite:

    B1..B9, B8A, B11, B12   float32 reflectance (DN / 10000), mean of the month's clear scenes
    s2_count                uint8 number of clear S2 observations (datatakes)
    VV, VH                  float32 dB (mean in linear power, back to dB; or plain dB mean)
    s1_count                uint8 number of S1 observations (passes)

on the block's exact window of the AOI grid: ``grid = {dimensions, affineTransform, crsCode}``
(never region + scale), ``fileFormat = NPY``. A sensor without scenes in the month is left out
of the request (NaN values, zero counts); a month with neither sends no request at all.

Recipe (see :class:`pipeline.sentinel.model.Recipe`):
* S2: ``COPERNICUS/S2_SR_HARMONIZED`` (L1C fallback ``COPERNICUS/S2_HARMONIZED``) joined with
  ``COPERNICUS/S2_CLOUD_PROBABILITY`` on ``system:index`` (``ee.Join.saveFirst`` +
  ``ee.Filter.equals``); masked where probability > threshold; optional cloud-shadow mask (dark
  NIR pixels inside clouds projected along the solar azimuth, as in the s2cloudless GEE
  tutorial); or Cloud Score+ (``GOOGLE/CLOUD_SCORE_PLUS/V1/S2_HARMONIZED``, band ``cs``, clear
  where cs >= threshold), joined the same way. The catalogue's scene-edge mask (B8A and B9
  masks) is applied to every band. The inner join drops scenes without a cloud layer, so the
  scene count counts joined scenes (it decides L2A / L1C / none), and a fully masked 12-band
  placeholder is merged into the masked collection: the composite never loses its bands
  (Earth Engine fails a band-less composite with HTTP 400).
* One observation per S2 datatake (``DATATAKE_IDENTIFIER``) and per S1 relative orbit + UTC
  day: the overlapping granules / slices of one pass are mosaicked (after masking, per
  granule) before the mean and the count, so an overlap pixel is not counted twice.
* S1: ``COPERNICUS/S1_GRD_FLOAT`` (linear power; mean, then 10*log10) or, for
  ``s1_mean: db``, ``COPERNICUS/S1_GRD`` (plain dB mean); IW mode; a scene with VV or VH is
  used (a VV-only scene gives VV and leaves VH to the others); optional
  ``orbitProperties_pass``.
* Per-band validity: computePixels' NPY output returns masked pixels as 0, so every value band
  is unmasked with ``NODATA_FILL`` (-32768) on the server and decoded to NaN per band; a pixel
  masked in one band (B1, B9, VH) keeps its other bands.
* Every request carries the workload tag ``fusu-<aoi>-<YYYY-MM>`` (EECU usage per AOI-month
  in Cloud Monitoring).

Reliability: the client's own retries are disabled (``ee.data.setMaxRetries(0)``) so this
module is the single retry policy: capped exponential backoff with jitter on 429, 5xx,
timeouts, dropped connections and truncated/undecodable bodies; never on other 4xx. "memory
limit exceeded" / "Total request size" -> the block is split (:meth:`Block.split`) and the
halves are stitched. A daily / custom compute quota, or a response in restricted mode (header
``x-earth-engine-quota-status: parallelism_restricted=true``) -> :class:`QuotaExhaustedError`
(resumable: the driver's ledger keeps finished blocks).

Environment: project from ``sentinel.gee.project`` / ``$EE_PROJECT`` /
``$GOOGLE_CLOUD_PROJECT``; credentials from a service-account key
(``$EE_SERVICE_ACCOUNT_KEY`` / ``$GOOGLE_APPLICATION_CREDENTIALS``) or the user's
``earthengine authenticate``; ``$EE_API_URL`` overrides the API endpoint (a loopback URL, e.g. a
local fake server, needs no credentials). Secrets are never logged.
"""

from pipeline.sentinel.sources.gee.client import (
    AUTH_HELP,
    GeeSource,
    resolve_credentials,
    resolve_project,
)
from pipeline.sentinel.sources.gee.decode import decode_npy, to_block_result
from pipeline.sentinel.sources.gee.recipe import (
    CLOUD_SCORE_PLUS,
    RESPONSE_BANDS,
    S1_COUNT,
    S1_GRD,
    S1_GRD_FLOAT,
    S2_CLOUD_PROB,
    S2_COUNT,
    S2_L1C,
    S2_L2A,
    block_grid,
    block_image,
    month_bounds,
    s1_image,
    s2_image,
    scene_counts_expr,
)

__all__ = [
    "AUTH_HELP", "CLOUD_SCORE_PLUS", "RESPONSE_BANDS", "S1_COUNT", "S1_GRD", "S1_GRD_FLOAT",
    "S2_CLOUD_PROB",
    "S2_COUNT", "S2_L1C", "S2_L2A", "GeeSource", "block_grid", "block_image", "decode_npy",
    "month_bounds", "resolve_credentials", "resolve_project", "s1_image", "s2_image",
    "scene_counts_expr", "to_block_result",
]
