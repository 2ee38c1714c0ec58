"""Google Earth Engine Sentinel source (the only module that imports ``ee``, lazily).

Per (AOI, month) the source asks Earth Engine once (``value:compute``, cached) how many L2A,
L1C and S1 scenes touch the AOI, which decides the month's S2 product level (L2A, else L1C if
``recipe.allow_l1c_fallback``, else none). Per (block, month) it then sends ONE
``computePixels`` request whose image stacks the S2 composite and the S1 composite:

    B1..B9, B8A, B11, B12   float32 reflectance (DN / 10000), mean of the month's clear scenes
    s2_count                uint8 number of clear S2 observations
    VV, VH                  float32 dB (mean in linear power, back to dB; or plain dB mean)
    s1_count                uint8 number of S1 observations

on the block's exact window of the AOI grid: ``grid = {dimensions, affineTransform, crsCode}``
(never region + scale), ``fileFormat = NPY``. A sensor without scenes in the month is left out
of the request (NaN values, zero counts); a month with neither sends no request at all.

Recipe (see :class:`pipeline.sources.base.Recipe`):
* S2: ``COPERNICUS/S2_SR_HARMONIZED`` (L1C fallback ``COPERNICUS/S2_HARMONIZED``) joined with
  ``COPERNICUS/S2_CLOUD_PROBABILITY`` on ``system:index`` (``ee.Join.saveFirst`` +
  ``ee.Filter.equals``); masked where probability > threshold; optional cloud-shadow mask (dark
  NIR pixels inside clouds projected along the solar azimuth, as in the s2cloudless GEE
  tutorial); or Cloud Score+ (``GOOGLE/CLOUD_SCORE_PLUS/V1/S2_HARMONIZED``, band ``cs``, clear
  where cs >= threshold), joined the same way.
* S1: ``COPERNICUS/S1_GRD``, IW mode, VV and VH present, optional ``orbitProperties_pass``.

Reliability: the client's own retries are disabled (``ee.data.setMaxRetries(0)``) so this
module is the single retry policy: capped exponential backoff with jitter on 429, 5xx,
timeouts, dropped connections and truncated/undecodable bodies; never on other 4xx. "memory
limit exceeded" / "Total request size" -> the block is split (:meth:`Block.split`) and the
halves are stitched. A persisting quota error -> :class:`QuotaExhaustedError` (resumable: the
driver's ledger keeps finished blocks).

Environment: project from ``sentinel.gee.project`` / ``$EE_PROJECT`` /
``$GOOGLE_CLOUD_PROJECT``; credentials from a service-account key
(``$EE_SERVICE_ACCOUNT_KEY`` / ``$GOOGLE_APPLICATION_CREDENTIALS``) or the user's
``earthengine authenticate``; ``$EE_API_URL`` overrides the API endpoint (a loopback URL, e.g. a
local fake server, needs no credentials). Secrets are never logged.
"""

from __future__ import annotations

import datetime as dt
import io
import ipaddress
import logging
import math
import os
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

import numpy as np

from pipeline.errors import CredentialsError, QuotaExhaustedError, SourceError
from pipeline.grid import AoiGrid
from pipeline.sources.base import S1_BANDS, S2_BANDS, Block, BlockResult, Recipe

log = logging.getLogger(__name__)

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
AUTH_HELP = (
    "Authenticate once with `earthengine authenticate` (then set sentinel.gee.project or "
    "$EE_PROJECT to your Earth Engine-enabled Cloud project), or point $EE_SERVICE_ACCOUNT_KEY "
    "(or $GOOGLE_APPLICATION_CREDENTIALS) at a service-account JSON key and set $EE_PROJECT. "
    "To build without Earth Engine use the offline source: --config sentinel='{source: local}' "
    "(sentinel.source: local in the config)."
)
#: Errors that a smaller request avoids: split the block instead of retrying it.
_SPLIT_MARKERS = (
    "memory limit exceeded",
    "must be less than or equal to",
    "too large",
    "computation timed out",
)
_QUOTA_MARKERS = ("quota", "exhausted")


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


def s2_collection(ee: Any, region: Any, month: str, recipe: Recipe, product: str) -> Any:
    """Masked S2 collection of the month: bands S2_BANDS as DN (uint16), clouds masked."""
    start, end = month_bounds(month)
    coll_id = S2_L2A if product == "L2A" else S2_L1C
    s2 = ee.ImageCollection(coll_id).filterBounds(region).filterDate(start, end)
    if recipe.s2_mask == "cloud_score_plus":
        cs = ee.ImageCollection(CLOUD_SCORE_PLUS).filterBounds(region).filterDate(start, end)
        joined = _join_first(ee, s2, cs, "cloud_score_plus")
        threshold = float(recipe.cloud_score_plus_threshold)

        def mask(img: Any) -> Any:
            clear = ee.Image(img.get("cloud_score_plus")).select("cs").gte(threshold)
            return img.select(list(S2_BANDS)).updateMask(clear)

    else:
        probs = ee.ImageCollection(S2_CLOUD_PROB).filterBounds(region).filterDate(start, end)
        joined = _join_first(ee, s2, probs, "s2cloudless")
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
    return masked


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
    """ee.Dictionary {L2A, L1C, S1} scene counts of the month over the AOI (one value:compute)."""
    start, end = month_bounds(month)
    region = _region(ee, grid)
    return ee.Dictionary(
        {
            "L2A": ee.ImageCollection(S2_L2A).filterBounds(region).filterDate(start, end).size(),
            "L1C": ee.ImageCollection(S2_L1C).filterBounds(region).filterDate(start, end).size(),
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


# --------------------------------------------------------------------------- decoding


def decode_npy(data: bytes, bands: list[str], height: int, width: int) -> dict[str, np.ndarray]:
    """Decode a computePixels NPY body into {band: (height, width) float64 array}.

    Tolerant of: structured arrays (one field per band) of any numeric dtypes; numpy masked
    fields (``<band>_mask`` fields or a mask encoded as NaN); plain (h, w, nbands) or
    (nbands, h, w) arrays in ``bands`` order. Masked values become NaN.

    Raises:
        ValueError: truncated or undecodable body, or wrong shape / missing band.
    """
    arr = np.load(io.BytesIO(data), allow_pickle=False)
    out: dict[str, np.ndarray] = {}
    if arr.dtype.names:
        if arr.shape != (height, width):
            raise ValueError(f"response shape {arr.shape} != {(height, width)}")
        names = set(arr.dtype.names)
        for b in bands:
            if b not in names:
                raise ValueError(f"band {b!r} missing from response fields {sorted(names)}")
            v = np.asarray(arr[b], dtype=np.float64)
            if f"{b}_mask" in names:
                v = np.where(np.asarray(arr[f"{b}_mask"]) != 0, v, np.nan)
            out[b] = v
        return out
    if arr.ndim == 3 and arr.shape == (height, width, len(bands)):
        return {b: arr[..., i].astype(np.float64) for i, b in enumerate(bands)}
    if arr.ndim == 3 and arr.shape == (len(bands), height, width):
        return {b: arr[i].astype(np.float64) for i, b in enumerate(bands)}
    raise ValueError(f"unexpected response array dtype {arr.dtype} shape {arr.shape}")


def to_block_result(
    fields: dict[str, np.ndarray], height: int, width: int
) -> BlockResult:
    """Turn decoded fields into a BlockResult; values count as data only where count > 0."""
    res = BlockResult.empty(height, width)
    if S2_COUNT in fields:
        cnt = np.nan_to_num(fields[S2_COUNT], nan=0.0)
        res.s2_count = np.clip(cnt, 0, 255).astype(np.uint8)
        ok = res.s2_count > 0
        for i, b in enumerate(S2_BANDS):
            res.s2[i] = np.where(ok, fields[b], np.nan).astype(np.float32)
    if S1_COUNT in fields:
        cnt = np.nan_to_num(fields[S1_COUNT], nan=0.0)
        res.s1_count = np.clip(cnt, 0, 255).astype(np.uint8)
        ok = res.s1_count > 0
        for i, b in enumerate(S1_BANDS):
            res.s1[i] = np.where(ok, fields[b], np.nan).astype(np.float32)
    return res


# --------------------------------------------------------------------------- environment


def _is_loopback_url(url: str | None) -> bool:
    if not url:
        return False
    host = urlparse(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def resolve_project(configured: str | None) -> str | None:
    """Project id: config value, else $EE_PROJECT, else $GOOGLE_CLOUD_PROJECT (else None)."""
    return configured or os.environ.get("EE_PROJECT") or os.environ.get("GOOGLE_CLOUD_PROJECT")


def resolve_credentials(ee: Any, api_url: str | None) -> tuple[Any, str | None]:
    """(credentials, project from the key or None) from the environment.

    Order: service-account key ($EE_SERVICE_ACCOUNT_KEY, $GOOGLE_APPLICATION_CREDENTIALS),
    anonymous for a loopback ``api_url`` (local fake / proxy), else the persistent credentials
    of ``earthengine authenticate`` (or application-default credentials).

    Raises:
        CredentialsError: nothing usable found (message says how to authenticate).
    """
    for var in ("EE_SERVICE_ACCOUNT_KEY", "GOOGLE_APPLICATION_CREDENTIALS"):
        path = os.environ.get(var)
        if not path:
            continue
        if not os.path.isfile(path):
            raise CredentialsError(
                f"${var} points to {path!r}, which is not a file: fix the path to your "
                f"service-account JSON key. {AUTH_HELP}"
            )
        try:
            import json

            with open(path) as f:
                key_project = json.load(f).get("project_id")
            creds = ee.ServiceAccountCredentials(None, key_file=path)
        except Exception as exc:  # never echo key contents
            raise CredentialsError(
                f"${var} ({path}) is not a valid service-account key ({type(exc).__name__}). "
                f"{AUTH_HELP}"
            ) from None
        return creds, key_project
    if _is_loopback_url(api_url):
        from google.auth.credentials import AnonymousCredentials

        return AnonymousCredentials(), None
    try:
        return ee.data.get_persistent_credentials(), None
    except Exception:  # EEException / google.auth errors
        raise CredentialsError(f"no Earth Engine credentials found. {AUTH_HELP}") from None


_INIT_LOCK = threading.Lock()


# --------------------------------------------------------------------------- the source


class _FetchError(Exception):
    """Classified failure of one request."""

    def __init__(self, kind: str, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.kind = kind  # retry | split | quota | fatal
        self.status = status


@dataclass
class _Counters:
    requests: int = 0
    bytes: int = 0
    retries: int = 0
    pixels: int = 0
    splits: int = 0
    size_queries: int = 0

    def add(self, other: _Counters) -> None:
        for k in self.__dataclass_fields__:
            setattr(self, k, getattr(self, k) + getattr(other, k))

    def as_dict(self) -> dict[str, int]:
        return {k: int(getattr(self, k)) for k in self.__dataclass_fields__}


class GeeSource:
    """Sentinel composites from Earth Engine on exact AOI-grid blocks (thread-safe).

    Args:
        project: Earth Engine Cloud project id (None: from the environment / credentials).
        api_url: API base URL (None: ``$EE_API_URL`` or the client's default endpoint).
        credentials: credentials object; None = resolve from the environment
            (:func:`resolve_credentials`).
        max_retries: retries per request for transient errors (429, 5xx, timeouts, bad bodies).
        backoff_base_s, backoff_max_s: backoff ``min(max, base * 2**attempt)`` x jitter [0.5, 1].
        timeout_s: per-request HTTP timeout.
        sleep: injectable sleep (tests).
        seed: jitter RNG seed.

    Raises:
        CredentialsError: no project or credentials (message says how to authenticate or use
            ``sentinel.source: local``).
    """

    name = "gee"

    def __init__(
        self,
        project: str | None = None,
        api_url: str | None = None,
        credentials: Any = None,
        max_retries: int = 6,
        backoff_base_s: float = 1.0,
        backoff_max_s: float = 60.0,
        timeout_s: float = 300.0,
        sleep: Callable[[float], None] = time.sleep,
        seed: int | None = None,
    ) -> None:
        self.max_retries = int(max_retries)
        self.backoff_base_s = float(backoff_base_s)
        self.backoff_max_s = float(backoff_max_s)
        self.timeout_s = float(timeout_s)
        self._sleep = sleep
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._counters = _Counters()
        self._scene_cache: dict[tuple[str, str, Recipe], dict[str, int]] = {}
        self._key_locks: dict[tuple[str, str, Recipe], threading.Lock] = {}
        self.api_url = api_url or os.environ.get("EE_API_URL") or None
        self.project = resolve_project(project)
        self._ee = self._initialize(credentials)

    @classmethod
    def from_config(cls, cfg: Any, **overrides: Any) -> GeeSource:
        """Build from :class:`pipeline.config.SentinelConfig` (or its dict form)."""
        d = cfg if isinstance(cfg, dict) else cfg.model_dump()
        g = d.get("gee", {}) or {}
        kw: dict[str, Any] = {
            "project": g.get("project"),
            "max_retries": g.get("max_retries", 6),
            "backoff_base_s": g.get("backoff_base_s", 1.0),
            "backoff_max_s": g.get("backoff_max_s", 60.0),
            "timeout_s": g.get("timeout_s", 300.0),
        }
        kw.update(overrides)
        return cls(**kw)

    def _initialize(self, credentials: Any) -> Any:
        try:
            import ee
        except ImportError:
            raise CredentialsError(
                "the earthengine-api package is not installed: pip install earthengine-api, or "
                "use sentinel.source: local"
            ) from None
        key_project = None
        if credentials is None:
            credentials, key_project = resolve_credentials(ee, self.api_url)
        project = self.project or key_project or getattr(credentials, "quota_project_id", None)
        if not project:
            raise CredentialsError(
                "no Earth Engine project configured: set sentinel.gee.project in the config or "
                f"$EE_PROJECT. {AUTH_HELP}"
            )
        self.project = project
        with _INIT_LOCK:
            try:
                kwargs: dict[str, Any] = {"credentials": credentials, "project": project}
                if self.api_url:
                    kwargs["url"] = self.api_url
                ee.Initialize(**kwargs)
                ee.data.setDeadline(int(self.timeout_s * 1000))
                # this module is the single retry policy (the client would retry 429/5xx with
                # uncapped sleeps of up to 2**n s and hide the status code)
                ee.data.setMaxRetries(0)
            except CredentialsError:
                raise
            except Exception as exc:  # any client or transport error
                raise CredentialsError(
                    f"Earth Engine initialisation failed for project {project!r} "
                    f"({type(exc).__name__}: {_short(exc)}). {AUTH_HELP}"
                ) from None
        log.info("Earth Engine initialised (project %s, endpoint %s)", project,
                 self.api_url or "default")
        return ee

    # ---- public API

    @property
    def stats(self) -> dict[str, int]:
        """Totals since creation: requests, bytes, retries, pixels, splits, size_queries."""
        with self._lock:
            return self._counters.as_dict()

    def scene_counts(self, aoi: str, grid: AoiGrid, month: str, recipe: Recipe) -> dict[str, int]:
        """{L2A, L1C, S1} scene counts over the AOI in ``month`` (one cached value:compute)."""
        key = (aoi, month, recipe)
        with self._lock:
            if key in self._scene_cache:
                return self._scene_cache[key]
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        with key_lock:  # single flight: concurrent blocks of a new month ask once
            with self._lock:
                if key in self._scene_cache:
                    return self._scene_cache[key]
            ctr = _Counters()
            expr = scene_counts_expr(self._ee, grid, month, recipe)
            try:
                result = self._with_retries(
                    lambda: self._ee.data.computeValue(expr), ctr,
                    f"AOI {aoi}, month {month}, scene counts",
                )
            finally:
                with self._lock:
                    self._counters.add(ctr)
            counts = {k: int((result or {}).get(k, 0) or 0) for k in ("L2A", "L1C", "S1")}
            with self._lock:
                self._counters.size_queries += 1
                self._scene_cache[key] = counts
            return counts

    def s2_product(self, aoi: str, grid: AoiGrid, month: str, recipe: Recipe) -> str | None:
        """'L2A', 'L1C' (fallback) or None for the month (cached per AOI and month)."""
        c = self.scene_counts(aoi, grid, month, recipe)
        if c["L2A"] > 0:
            return "L2A"
        if recipe.allow_l1c_fallback and c["L1C"] > 0:
            return "L1C"
        return None

    def fetch_block(
        self, aoi: str, grid: AoiGrid, block: Block, month: str, recipe: Recipe
    ) -> BlockResult:
        """Composites of ``month`` on ``block`` (see module doc). Thread-safe.

        Raises:
            QuotaExhaustedError: quota exhausted (rerun later; finished blocks are kept).
            SourceError: a non-retryable or persisting error (names AOI, month, block).
        """
        counts = self.scene_counts(aoi, grid, month, recipe)
        product = self.s2_product(aoi, grid, month, recipe)
        with_s1 = counts["S1"] > 0
        ctr = _Counters()
        if product is None and not with_s1:
            res = BlockResult.empty(block.height, block.width)
        else:
            res = self._fetch(aoi, grid, block, month, recipe, product, with_s1, ctr, 0)
        res.meta = {
            "s2_product": product,
            "s2_scenes": counts["L2A"] if product == "L2A" else counts["L1C"] if product else 0,
            "s1_scenes": counts["S1"],
            **ctr.as_dict(),
        }
        with self._lock:
            self._counters.add(ctr)
        return res

    def close(self) -> None:
        """Nothing to release (the ee client keeps one shared HTTP session)."""

    # ---- internals

    def _fetch(
        self, aoi: str, grid: AoiGrid, block: Block, month: str, recipe: Recipe,
        product: str | None, with_s1: bool, ctr: _Counters, depth: int,
    ) -> BlockResult:
        ee = self._ee
        image, bands = block_image(ee, grid, block, month, recipe, product, with_s1)
        params = {
            "expression": image,
            "fileFormat": "NPY",
            "bandIds": bands,
            "grid": block_grid(grid, block),
        }
        where = f"AOI {aoi}, month {month}, block {block.id}"

        def call() -> dict[str, np.ndarray]:
            data = ee.data.computePixels(params)
            if not isinstance(data, bytes | bytearray):
                raise _FetchError("retry", f"unexpected response type {type(data).__name__}")
            ctr.bytes += len(data)
            try:
                return decode_npy(bytes(data), bands, block.height, block.width)
            except Exception as exc:  # truncated / garbled body
                raise _FetchError("retry", f"undecodable response ({_short(exc)})") from None

        try:
            fields = self._with_retries(call, ctr, where)
        except _FetchError as err:
            if err.kind != "split":
                raise
            parts = block.split()
            if len(parts) == 1 or depth >= 12:
                raise SourceError(
                    f"{where}: Earth Engine refuses even a {block.height}x{block.width} px "
                    f"request ({err}); simplify the recipe (shadow_mask: false)"
                ) from None
            log.info("%s: too large (%s), splitting into %d", where, err, len(parts))
            ctr.splits += 1
            res = BlockResult.empty(block.height, block.width)
            for p in parts:
                sub = self._fetch(aoi, grid, p, month, recipe, product, with_s1, ctr, depth + 1)
                r, c = p.row0 - block.row0, p.col0 - block.col0
                sl = (slice(r, r + p.height), slice(c, c + p.width))
                res.s2[(slice(None), *sl)] = sub.s2
                res.s1[(slice(None), *sl)] = sub.s1
                res.s2_count[sl] = sub.s2_count
                res.s1_count[sl] = sub.s1_count
            return res
        ctr.pixels += block.n_pixels
        return to_block_result(fields, block.height, block.width)

    def _classify(self, exc: BaseException) -> _FetchError:
        if isinstance(exc, _FetchError):
            return exc
        msg = _short(exc)
        low = msg.lower()
        if isinstance(exc, TimeoutError | ConnectionError | OSError):
            return _FetchError("retry", f"{type(exc).__name__}: {msg}")
        status = None
        ctx = exc.__context__ or exc.__cause__
        resp = getattr(ctx, "resp", None)
        if resp is not None:
            try:
                status = int(resp.status)
            except (TypeError, ValueError):
                status = None
        if "earth engine quota" in low:
            return _FetchError("quota", msg, status)
        if any(m in low for m in _SPLIT_MARKERS):
            return _FetchError("split", msg, status)
        if status in (401, 403) and "quota" not in low:
            return _FetchError("auth", msg, status)
        if status == 429 or (status is None and ("too many" in low or "rate limit" in low)):
            return _FetchError("retry", msg, 429)
        if status is not None and status >= 500:
            return _FetchError("retry", msg, status)
        if status is None and any(m in low for m in ("internal error", "unavailable", "timed out",
                                                     "deadline", "backend error")):
            return _FetchError("retry", msg, status)
        return _FetchError("fatal", msg, status)

    def _with_retries(self, fn: Callable[[], Any], ctr: _Counters, where: str) -> Any:
        attempt = 0
        while True:
            ctr.requests += 1
            try:
                return fn()
            except Exception as exc:  # classified below
                err = self._classify(exc)
            if err.kind == "quota":
                raise QuotaExhaustedError(
                    f"{where}: Earth Engine quota exhausted ({err}). Finished blocks are kept; "
                    "rerun the same command later (or raise the project's quota) to resume."
                ) from None
            if err.kind == "split":
                raise err
            if err.kind == "auth":
                raise CredentialsError(
                    f"{where}: Earth Engine refused the credentials or project {self.project!r} "
                    f"(HTTP {err.status}: {err}). {AUTH_HELP}"
                ) from None
            if err.kind == "fatal":
                raise SourceError(
                    f"{where}: Earth Engine rejected the request ({err}); check the recipe "
                    "settings in config sentinel.* and the project's Earth Engine access"
                ) from None
            if attempt >= self.max_retries:
                low = str(err).lower()
                if err.status == 429 and any(m in low for m in _QUOTA_MARKERS):
                    raise QuotaExhaustedError(
                        f"{where}: Earth Engine quota exhausted after {attempt} retries ({err}). "
                        "Finished blocks are kept; rerun later to resume, or lower "
                        "sentinel.gee.concurrency."
                    ) from None
                raise SourceError(
                    f"{where}: still failing after {attempt} retries ({err}); rerun to resume "
                    "(finished blocks are kept) or raise sentinel.gee.max_retries"
                ) from None
            delay = min(self.backoff_max_s, self.backoff_base_s * 2**attempt)
            with self._lock:
                delay *= 0.5 + 0.5 * self._rng.random()
            attempt += 1
            ctr.retries += 1
            log.warning("%s: %s; retry %d/%d in %.1fs", where, err, attempt, self.max_retries,
                        delay)
            self._sleep(delay)


def _short(exc: BaseException, n: int = 300) -> str:
    s = str(exc).strip().replace("\n", " ")
    return s if len(s) <= n else s[: n - 3] + "..."
