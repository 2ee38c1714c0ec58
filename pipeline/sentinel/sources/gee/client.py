"""The Earth Engine client side: credentials, request classification and retries, and
:class:`GeeSource` (``ee`` is imported lazily, only here).
"""

from __future__ import annotations

import logging
import os
import random
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from pipeline.errors import CredentialsError, QuotaExhaustedError, SourceError
from pipeline.grid import AoiGrid
from pipeline.sentinel.model import Block, BlockResult, Recipe, month_product
from pipeline.sentinel.sources.gee.auth import AUTH_HELP, resolve_credentials, resolve_project
from pipeline.sentinel.sources.gee.decode import decode_npy, to_block_result
from pipeline.sentinel.sources.gee.recipe import (
    block_grid,
    block_image,
    scene_counts_expr,
)

log = logging.getLogger(__name__)

#: Errors that a smaller request avoids: split the block instead of retrying it.
_SPLIT_MARKERS = (
    "memory limit exceeded",
    "must be less than or equal to",
    "too large",
    "computation timed out",
)
#: Rate and concurrency limits (HTTP 429): transient, retried with backoff, never the end of
#: the month job's quota ("Quota exceeded for quota metric 'Number of read requests' and limit
#: 'Number of read requests per minute per user'", "Too many concurrent aggregations.").
_RATE_MARKERS = ("per minute", "per second", "concurrent", "too many requests", "rate limit",
                 "too many")
#: Quotas that do not come back within the job (daily / monthly compute, custom quotas): stop
#: now, keep finished blocks, resume later.
_EXHAUSTED_MARKERS = ("per day", "daily", "per month", "monthly", "custom quota", "eecu",
                      "compute quota", "earth engine quota")



# --------------------------------------------------------------------------- environment


_INIT_LOCK = threading.Lock()

#: Response header by which Earth Engine reports a noncommercial project's quota state. Over
#: quota, responses stay HTTP 200 but carry ``parallelism_restricted=true`` ("restricted mode");
#: earthengine-api >= 1.7.19 only warns about it.
QUOTA_STATUS_HEADER = "x-earth-engine-quota-status"
_RESTRICTED_FLAG = "parallelism_restricted=true"
_restricted_lock = threading.Lock()
#: Responses seen in this process with the restricted-mode flag (a source compares it with the
#: value at its creation).
_restricted_seen = 0


def _restricted_count() -> int:
    with _restricted_lock:
        return _restricted_seen


def _install_quota_status_hook(ee: Any) -> None:
    """Count restricted-mode responses (every Cloud API response passes through
    ``ee.data._handle_response_headers``; it is looked up when ``ee.Initialize`` builds the API
    resource, so this must run before it). Idempotent; the client's own warning is kept."""
    data = ee.data
    orig = getattr(data, "_handle_response_headers", None)
    if orig is None:
        log.warning("this earthengine-api has no response-header hook: Earth Engine's restricted "
                    "mode (noncommercial quota exceeded) cannot be detected; upgrade "
                    "earthengine-api")
        return
    if getattr(orig, "_fusu_quota_hook", False):
        return

    def inspect(response: Any) -> None:
        global _restricted_seen
        try:
            status = str(response.get(QUOTA_STATUS_HEADER, "") or "")
        except AttributeError:
            status = ""
        if _RESTRICTED_FLAG in status.replace(" ", "").lower():
            with _restricted_lock:
                _restricted_seen += 1
        orig(response)

    inspect._fusu_quota_hook = True  # type: ignore[attr-defined]
    data._handle_response_headers = inspect


# --------------------------------------------------------------------------- workload tags


_TAG_BAD = re.compile(r"[^a-z0-9._-]+")
#: computeValue takes no per-call tag: its tag goes through the client's process-wide one,
#: set for the duration of one call under this lock (computePixels carries its own in the body).
_TAG_LOCK = threading.Lock()


def workload_tag(aoi: str, month: str) -> str:
    """Earth Engine workload tag of one AOI-month, e.g. ``fusu-xian-2019-02``.

    Earth Engine's rule: 1-63 characters, alphanumerics at both ends, ``-`` ``_`` ``.`` and
    alphanumerics between. Every request of the AOI-month carries it, so Cloud Monitoring's
    EECU usage per tag (metric ``earthengine.googleapis.com/project/cpu/usage_time``, label
    ``workload_tag``) shows what each AOI-month cost and calibrates the plan's estimate.
    """
    body = _TAG_BAD.sub("-", f"{aoi}-{month}".lower())
    tag = f"fusu-{body}"[:63].strip("-_.")
    return tag or "fusu"


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
        timeout_s: per-request HTTP timeout; longer than Earth Engine's own 300 s computation
            limit, so a slow block gets the server's "Computation timed out." (and is split)
            rather than a client timeout.
        min_block_px: never split a block below this side (px).
        max_split_depth: halvings per block at most (a persistent "too large" or timeout
            fails after ``max_split_depth + 1`` serial requests instead of going down to
            single pixels).
        restricted_mode: what to do once Earth Engine answers in restricted mode (the
            project's noncommercial quota is used up; Earth Engine then slows the project
            down rather than refusing it): ``stop`` ends the month job resumably (finished
            blocks kept); ``continue`` goes on one request at a time.
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
        timeout_s: float = 330.0,
        sleep: Callable[[float], None] = time.sleep,
        seed: int | None = None,
        min_block_px: int = 32,
        max_split_depth: int = 3,
        restricted_mode: str = "stop",
    ) -> None:
        if restricted_mode not in ("stop", "continue"):
            raise SourceError(f"sentinel.gee.restricted_mode {restricted_mode!r}: use 'stop' or "
                              "'continue'")
        self.restricted_mode = restricted_mode
        #: one request at a time once the project is restricted and the policy is "continue"
        self._restricted_gate = threading.Semaphore(1)
        self._restricted_warned = False
        self.max_retries = int(max_retries)
        self.min_block_px = int(min_block_px)
        self.max_split_depth = int(max_split_depth)
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
        self._restricted_base = _restricted_count()
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
            "timeout_s": g.get("timeout_s", 330.0),
            "min_block_px": g.get("min_block_px", 32),
            "max_split_depth": g.get("max_split_depth", 3),
            "restricted_mode": g.get("restricted_mode", "stop"),
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
            _install_quota_status_hook(ee)
            try:
                kwargs: dict[str, Any] = {"credentials": credentials, "project": project}
                if self.api_url:
                    kwargs["url"] = self.api_url
                _initialize_within(ee, kwargs, self.timeout_s)
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
        """{L2A, L1C, L1C_only, S1} scene counts over the AOI in ``month`` (one cached
        value:compute; see :func:`~pipeline.sentinel.sources.gee.recipe.scene_counts_expr`)."""
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
            tag = workload_tag(aoi, month)

            def count() -> Any:
                with _TAG_LOCK, self._ee.data.workloadTagContext(tag):
                    return self._ee.data.computeValue(expr)

            try:
                result = self._with_retries(
                    count, ctr,
                    f"AOI {aoi}, month {month}, scene counts",
                )
            except _FetchError as err:  # "too large" / timed out: nothing smaller to ask
                raise SourceError(
                    f"AOI {aoi}, month {month}: Earth Engine could not count the month's scenes "
                    f"({err}); the AOI may be too large for one query: split it into several "
                    "AOI files"
                ) from None
            finally:
                with self._lock:
                    self._counters.add(ctr)
            counts = {k: int((result or {}).get(k, 0) or 0)
                      for k in ("L2A", "L1C", "L1C_only", "S1")}
            with self._lock:
                self._counters.size_queries += 1
                self._scene_cache[key] = counts
            return counts

    def s2_product(self, aoi: str, grid: AoiGrid, month: str, recipe: Recipe) -> str | None:
        """'L2A', 'L1C' (fallback) or None for the month: the shared product policy
        (:func:`~pipeline.sentinel.model.month_product`) over the server's counts of scenes
        with a cloud layer (cached per AOI and month)."""
        return month_product(recipe, self.scene_counts(aoi, grid, month, recipe))

    def fetch_block(
        self, aoi: str, grid: AoiGrid, block: Block, month: str, recipe: Recipe,
        cover: np.ndarray | None = None,
    ) -> BlockResult:
        """Composites of ``month`` on ``block`` (see module doc). Thread-safe. Earth Engine
        computes the whole block whatever ``cover`` says (a request is a rectangle; the
        caller drops the pixels outside the cover).

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
        # skips as the scene sources count them: L1C-only granules of an L2A month, or every
        # L1C granule of a month without a product (no allow_l1c_fallback)
        other = counts["L1C_only"] if product == "L2A" else counts["L1C"] if product is None else 0
        res.meta = {
            "s2_product": product,
            "s2_scenes": counts["L2A"] if product == "L2A" else counts["L1C"] if product else 0,
            "s2_scenes_skipped": {"other_product": other, "no_cloud_layer": 0},
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
            "workloadTag": workload_tag(aoi, month),
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
            too_small = min(min(p.width, p.height) for p in parts) < self.min_block_px
            if len(parts) == 1 or too_small or depth >= self.max_split_depth:
                raise SourceError(
                    f"{where}: Earth Engine refuses even a {block.height}x{block.width} px "
                    f"request after {depth} split(s) ({err}); simplify the recipe (shadow_mask: "
                    "false), lower sentinel.block_size_px, or retry later if the servers are "
                    "busy (finished blocks are kept)"
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
        if type(exc).__name__ == "RefreshError" or any(
                m in low for m in ("invalid_grant", "invalid_scope", "token has been expired")):
            # google.auth could not refresh the token: expired / revoked credentials (a
            # request error status never arrives), not a problem of the recipe
            return _FetchError("auth", msg, 401)
        if isinstance(exc, TimeoutError) or ("timed out" in low and isinstance(exc, OSError)):
            return _FetchError("timeout", f"{type(exc).__name__}: {msg}")
        if isinstance(exc, ConnectionError | OSError):
            return _FetchError("retry", f"{type(exc).__name__}: {msg}")
        status = None
        ctx = exc.__context__ or exc.__cause__
        resp = getattr(ctx, "resp", None)
        if resp is not None:
            try:
                status = int(resp.status)
            except (TypeError, ValueError):
                status = None
        quota_like = "quota" in low or status == 429
        if quota_like and any(m in low for m in _EXHAUSTED_MARKERS):
            return _FetchError("quota", msg, status)
        if any(m in low for m in _SPLIT_MARKERS):
            return _FetchError("split", msg, status)
        if status == 429 or any(m in low for m in _RATE_MARKERS) or (
                "quota exceeded" in low and status in (None, 403)):
            return _FetchError("retry", msg, 429)
        if status in (401, 403):
            return _FetchError("auth", msg, status)
        if status is not None and status >= 500:
            return _FetchError("retry", msg, status)
        if status is None and any(m in low for m in ("internal error", "unavailable", "timed out",
                                                     "deadline", "backend error")):
            return _FetchError("retry", msg, status)
        return _FetchError("fatal", msg, status)

    def _check_restricted(self, where: str) -> bool:
        """What to do before the next request once Earth Engine has answered in restricted
        mode. ``stop`` (the default): requests already in flight finish and their blocks are
        stored (their answers are valid); no new request starts, so the job ends with the
        resumable quota error. ``continue``: returns True, and the request runs one at a time
        (Earth Engine serves restricted projects, slowly). False while not restricted."""
        if _restricted_count() <= self._restricted_base:
            return False
        if self.restricted_mode == "continue":
            with self._lock:
                warn, self._restricted_warned = not self._restricted_warned, True
            if warn:
                log.warning("%s: Earth Engine put project %r in restricted mode (its "
                            "noncommercial quota is used up): continuing one request at a time "
                            "(sentinel.gee.restricted_mode: continue)", where, self.project)
            return True
        raise QuotaExhaustedError(
            f"{where}: Earth Engine put project {self.project!r} in restricted mode "
            f"(response header {QUOTA_STATUS_HEADER}: {_RESTRICTED_FLAG}): its noncommercial "
            "compute quota is used up. Finished blocks are kept; rerun the same command "
            "after the quota resets (or move the project to a paid tier) to resume. See "
            "https://developers.google.com/earth-engine/guides/noncommercial_tiers; or set "
            "sentinel.gee.restricted_mode: continue to go on slowly"
        )

    def _with_retries(self, fn: Callable[[], Any], ctr: _Counters, where: str) -> Any:
        attempt = timeouts = 0
        while True:
            serial = self._check_restricted(where)
            ctr.requests += 1
            try:
                if serial:
                    with self._restricted_gate:
                        return fn()
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
            if err.kind == "timeout":
                # the client gave up waiting: once may be the network; twice, the block is too
                # heavy to compute in time -> smaller requests, not the same one again
                timeouts += 1
                if timeouts >= 2:
                    raise _FetchError("split", f"timed out twice ({err})", err.status)
                err = _FetchError("retry", str(err), err.status)
            if err.kind == "auth":
                hint = ""
                if "invalid_grant" in str(err).lower() or "expired" in str(err).lower():
                    hint = ("The credentials have expired or were revoked: run `.venv/bin/"
                            "earthengine authenticate` again (or `gcloud auth application-"
                            "default login`), or check that the service-account key still "
                            "exists and is enabled. ")
                raise CredentialsError(
                    f"{where}: Earth Engine refused the credentials or project {self.project!r} "
                    f"(HTTP {err.status}: {err}). {hint}{AUTH_HELP}"
                ) from None
            if err.kind == "fatal":
                raise SourceError(
                    f"{where}: Earth Engine rejected the request ({err}); check the recipe "
                    "settings in config sentinel.* and the project's Earth Engine access"
                ) from None
            if attempt >= self.max_retries:
                if err.status == 429:
                    raise SourceError(
                        f"{where}: Earth Engine kept answering 'too many requests' after "
                        f"{attempt} retries ({err}); lower sentinel.gee.concurrency (or "
                        "--resources gee=N) and rerun: finished blocks are kept"
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


def _initialize_within(ee: Any, kwargs: dict[str, Any], timeout_s: float) -> None:
    """``ee.Initialize(**kwargs)`` bounded by ``timeout_s``: its own requests (the discovery
    document) have no deadline, so an Earth Engine that does not answer would hang the job.
    Runs in a daemon thread; its exception is re-raised here.

    Raises:
        TimeoutError: no answer within ``timeout_s``.
    """
    box: dict[str, BaseException] = {}

    def run() -> None:
        try:
            ee.Initialize(**kwargs)
        except BaseException as exc:  # handed to the caller
            box["error"] = exc

    t = threading.Thread(target=run, name="ee-initialize", daemon=True)
    t.start()
    t.join(timeout_s)
    if t.is_alive():
        raise TimeoutError(f"Earth Engine did not answer within {timeout_s:g} s")
    if "error" in box:
        raise box["error"]


def _short(exc: BaseException, n: int = 300) -> str:
    s = str(exc).strip().replace("\n", " ")
    return s if len(s) <= n else s[: n - 3] + "..."
