"""Open-data Sentinel source: STAC APIs (pystac-client) and static STAC catalogues (pystac) of
Cloud-Optimized GeoTIFFs, composited with exactly the local source's recipe.

Per (AOI, month) the source searches each collection of the provider profile
(:mod:`pipeline.sentinel.sources.stac_profiles`) once over the AOI grid's bounding box (WGS84)
and the calendar month (paging through every result page), and turns the items into scenes:

* an L2A item -> an S2 scene with its band assets (``raster:bands`` scale checked to be 1e-4;
  the processing-baseline >= 04.00 offset of -1000 DN applied unless the provider says it
  already removed it, ``earthsearch:boa_offset_applied``), its SCL asset, and the L1C assets of
  the matching L1C item when the provider has L1C (its ``derived_from`` link, the same id
  with ``_L1C`` for ``_L2A``, or the same acquisition): those
  feed s2cloudless (``sentinel.s2_mask: s2cloudless``); without them the SCL layer masks;
* an L1C item without L2A -> an L1C-only scene (L1C fallback months);
* an S1 item -> an S1 scene (``vv`` / ``vh`` assets, linear power for RTC, orbit direction and
  relative orbit from the ``sat`` extension).

(The item -> scene conversion is pure and lives in :mod:`pipeline.sentinel.sources.stac_items`.)

Items are grouped into observations by ``s2:datatake_id`` (S2) and pass (S1: one relative orbit,
slices less than 10 minutes apart, :func:`~pipeline.sentinel.compositor.s1_passes`),
so the overlapping MGRS granules of one datatake count once. Blocks are then read with rasterio
``WarpedVRT`` onto the exact AOI-grid window (GDAL reads only the COG tiles the window
overlaps, with HTTP range requests) and composited by
:class:`pipeline.sentinel.compositor.Compositor`: one compositor for every scene provider.

Faults: searches are retried (429, 5xx, timeouts) a bounded number of times with backoff; COG
reads are retried by GDAL (``GDAL_HTTP_MAX_RETRY``); a 403/404 asset or a truncated COG raises
:class:`~pipeline.errors.SourceError` naming the item, the asset and the fix; an item missing a
band asset is a recorded skip (``meta["skipped_items"]``, named in the month summary); an empty
search is recorded (``meta["empty_searches"]``) and logged, never a silent empty month.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import logging
import threading
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np

from pipeline.errors import SourceError
from pipeline.grid import AoiGrid
from pipeline.io.scenes import (
    S3_KEYS_HINT,
    S1Scene,
    S2Scene,
    gdal_http_env,
    read_coarsest,
    s3_credentials_found,
    vsis3_path,
)
from pipeline.io.stac_catalog import (
    RetryCounter,
    open_stac_api,
    read_static_items,
    search_item_pages,
    stac_io,
    static_stac_io,
)
from pipeline.parallel import ordered_map
from pipeline.sentinel.compositor import Compositor, listing_key
from pipeline.sentinel.model import Block, BlockResult, Recipe
from pipeline.sentinel.sources.stac_items import (
    BASELINE_OFFSET_DN,
    OFFSET_CHECK_BAND,
    QUERY_OPS,
    bbox_overlaps,
    dn_shows_offset_removed,
    href_checker,
    item_time,
    matches_query,
    month_window,
    s1_scenes_from_items,
    s2_scenes_from_items,
)
from pipeline.sentinel.sources.stac_profiles import DEFAULT_URLS, PROFILES

log = logging.getLogger(__name__)

#: Calibrated S1 collection a static catalogue may hold whatever the profile (linear gamma0,
#: ``vv`` / ``vh`` assets: Planetary Computer's layout).
STATIC_S1 = "sentinel-1-rtc"


class StacCatalog:
    """:class:`~pipeline.sentinel.compositor.SceneProvider` of a STAC API or a static STAC
    catalogue of COGs (see the module docstring). Thread-safe.

    Args:
        catalog: STAC API root URL, or a static catalogue (``catalog.json`` path or URL, or a
            folder holding one); None = the profile's public API.
        profile: provider profile name (:data:`~pipeline.sentinel.sources.stac_profiles.PROFILES`).
        collections: overrides ``{"s2_l2a": id, "s2_l1c": id, "s1": id}`` ("" = none).
        max_retries, backoff_base_s, timeout_s: search retries and per-request timeout.
        signer: href -> signed href (default: Planetary Computer signing for that profile).
        max_items: refuse a month with more items than this per collection (a wrong bbox).
        item_concurrency: scenes of one block read at once (threads; their HTTP round trips
            overlap). Results are composited in order, so the bytes do not depend on it.
        verify_offsets: check the pixels of items whose offset flag the profile distrusts
            (:meth:`_verify_offsets`).
        allow_hosts: hosts asset hrefs may name besides public ones and the catalogue's own
            (:func:`~pipeline.sentinel.sources.stac_items.href_checker`).
        s3_endpoint: where ``s3://`` assets are read (None = the profile's, CDSE's
            ``eodata``; "" = AWS): through ``/vsis3/`` with the user's keys.
    """

    name = "stac"
    #: Earth Search's L1C is requester-pays: without AWS credentials its reads are refused, and
    #: the L2A scenes then fall back to their SCL layer (recorded in ``s2_cloud_layers`` and
    #: ``meta["l1c_refused"]``) instead of failing the month.
    scl_when_l1c_refused = True

    def __init__(
        self,
        catalog: str | Path | None = None,
        profile: str = "earth-search",
        collections: dict[str, str | None] | None = None,
        max_retries: int = 4,
        backoff_base_s: float = 1.0,
        timeout_s: float = 60.0,
        signer: Callable[[str], str] | None = None,
        s1_signer: Callable[[str], str] | None = None,
        max_items: int = 5000,
        s2_query: dict[str, Any] | None = None,
        item_concurrency: int = 4,
        verify_offsets: bool = True,
        allow_hosts: tuple[str, ...] = (),
        s1_catalog: str | None = None,
        s3_endpoint: str | None = None,
    ) -> None:
        if profile not in PROFILES:
            raise SourceError(f"unknown STAC profile {profile!r}: use one of {sorted(PROFILES)}")
        self.profile = PROFILES[profile]
        loc = str(catalog) if catalog else DEFAULT_URLS[profile]
        if "://" not in loc and Path(loc).is_dir():
            loc = str(Path(loc) / "catalog.json")
        self.catalog = loc
        self.static = loc.endswith(".json")
        if self.static and "://" not in loc and not Path(loc).is_file():
            raise SourceError(
                f"static STAC catalogue {loc} does not exist: point sentinel.stac.url (or the "
                "AOI's sentinel_archive) at a catalog.json, or at a STAC API root URL"
            )
        cols = {"s2_l2a": self.profile.s2_l2a, "s2_l1c": self.profile.s2_l1c,
                "s1": self.profile.s1}
        cols.update({k: v for k, v in (collections or {}).items() if v is not None})
        self.collections = cols
        self._user_s1 = (collections or {}).get("s1")
        #: S1 from another provider's API when this one has no calibrated S1 (Earth Search):
        #: Planetary Computer's sentinel-1-rtc by default (``sentinel.stac.s1_catalog``)
        self.s1_catalog: StacCatalog | None = None
        if s1_catalog and not self.static and not cols.get("s1") and self._user_s1 is None:
            url = (DEFAULT_URLS["planetary-computer"] if s1_catalog == "planetary-computer"
                   else s1_catalog)
            self.s1_catalog = StacCatalog(
                url, profile="planetary-computer",
                collections={"s2_l2a": "", "s2_l1c": "", "s1": PROFILES["planetary-computer"].s1},
                max_retries=max_retries, backoff_base_s=backoff_base_s, timeout_s=timeout_s,
                signer=s1_signer, max_items=max_items, allow_hosts=allow_hosts,
            )
        self.max_retries = int(max_retries)
        self.backoff_base_s = float(backoff_base_s)
        self.timeout_s = float(timeout_s)
        self.max_items = int(max_items)
        self.item_concurrency = max(1, int(item_concurrency))
        if self.profile.max_connections:  # the provider's per-account connection cap
            self.item_concurrency = min(self.item_concurrency, self.profile.max_connections)
        self.verify_offsets = bool(verify_offsets)
        self._offset_fixed: dict[str, list[str]] = {}
        self.offset_checks = 0  # items whose offset flag was checked against their pixels
        self.s2_query = dict(s2_query or {})
        bad = [op for cond in self.s2_query.values() if isinstance(cond, dict)
               for op in cond if op not in QUERY_OPS]
        if bad:
            raise SourceError(f"sentinel.stac.s2_query: unknown operators {bad}; use "
                              f"{sorted(QUERY_OPS)}")
        self.s3_endpoint = self.profile.s3_endpoint if s3_endpoint is None else s3_endpoint
        signer_ = signer or (_pc_signer() if self.profile.sign else (lambda h: h))
        check = href_checker(self.catalog, self.profile.cloud_schemes, tuple(allow_hosts))
        # the policy judges the catalogue's href, before any signing; s3:// assets of another
        # endpoint than AWS's are read through /vsis3/ (rasterio would send them to AWS)
        to_read: Callable[[str], str] = vsis3_path if self.s3_endpoint else (lambda h: h)
        self._sign: Callable[[str], str] = lambda h: to_read(signer_(check(h)))
        self._client: Any = None
        self._static_items: list[dict[str, Any]] | None = None
        self._search_lock = threading.Lock()
        self._skipped: dict[str, list[dict[str, str]]] = {}
        self._empty: dict[str, list[str]] = {}
        self.search_requests = 0
        #: HTTP retries of searches and catalogue reads (urllib3's, counted), and per month
        self.retries = RetryCounter()
        self._month_retries: dict[str, int] = {}
        self._lock = threading.Lock()
        #: month listings handed over by the job (dask workers never search)
        self._preloaded: dict[str, MonthListing] = {}

    # ---- listing

    def list_s2(self, month: str, grid: AoiGrid) -> list[S2Scene]:
        """The month's S2 scenes: L2A items paired with their L1C, or L1C alone (one search
        per collection; a preloaded listing instead on a dask worker)."""
        if month in self._preloaded:
            return list(self._preloaded[month].s2)
        skipped = self._skipped.setdefault(month, [])
        l2a = self._search("s2_l2a", month, grid)
        l1c = self._search("s2_l1c", month, grid)
        scenes = s2_scenes_from_items(l2a, l1c, self.profile, self._sign, skipped)
        return self._verify_offsets(month, scenes)

    def _verify_offsets(self, month: str, scenes: list[S2Scene]) -> list[S2Scene]:
        """Scenes whose provider flag says the -1000 DN offset is still in the data but whose
        pixels show it was removed get offset 0 (Earth Search, whose
        ``earthsearch:boa_offset_applied`` is ``false`` on some harmonised COGs: its issues
        #66 and #71, cirrus-earth-search #33). One read of the coarsest overview of
        :data:`OFFSET_CHECK_BAND` per such item; corrected items are recorded
        (``meta["offset_corrected"]``) and logged."""
        if not (self.verify_offsets and self.profile.verify_offset_flag):
            return scenes
        todo = [i for i, sc in enumerate(scenes)
                if "L2A" in sc.products and sc.offsets.get("L2A") == BASELINE_OFFSET_DN]
        fixed = self._offset_fixed.setdefault(month, [])

        def check(i: int) -> bool:
            dn = read_coarsest(scenes[i].file("L2A", OFFSET_CHECK_BAND))
            return dn is not None and dn_shows_offset_removed(dn)

        out = list(scenes)
        for i, removed in zip(todo, ordered_map(check, todo, self.item_concurrency,
                                                self.read_env), strict=True):
            if removed:
                sc = out[i]
                log.warning("STAC item %s: %s is false but its %s pixels show the offset was "
                            "already removed: read with offset 0", sc.id,
                            self.profile.offset_applied_property, OFFSET_CHECK_BAND)
                out[i] = dataclasses.replace(sc, offsets={**sc.offsets, "L2A": 0.0})
                fixed.append(sc.id)
        self.offset_checks += len(todo)
        return out

    def list_s1(self, month: str, grid: AoiGrid) -> list[S1Scene]:
        """The month's S1 scenes (calibrated collections only)."""
        if month in self._preloaded:
            return list(self._preloaded[month].s1)
        skipped = self._skipped.setdefault(month, [])
        if self.s1_catalog is not None:
            scenes = self.s1_catalog.list_s1(month, grid)
            other = self.s1_catalog.month_meta(month)
            skipped.extend(x for x in other["skipped_items"] if x not in skipped)
            empty = self._empty.setdefault(month, [])
            empty.extend(c for c in other["empty_searches"] if c not in empty)
            self._month_retries[month] = (self._month_retries.get(month, 0)
                                          + int(other["search_retries"]))
            return scenes
        return s1_scenes_from_items(self._search("s1", month, grid), self.profile, self._sign,
                                    skipped)

    def _search(self, which: str, month: str, grid: AoiGrid | None) -> list[dict[str, Any]]:
        coll = self.collections.get(which) or ""
        # a static catalogue may add calibrated S1 to a provider that has none (the demo's
        # holds Earth Search's S2 and Planetary Computer's sentinel-1-rtc layout)
        if (not coll and which == "s1" and self.static and self._user_s1 is None
                and any(it.get("collection") == STATIC_S1 for it in self._static())):
            coll = STATIC_S1
        if not coll:
            return []
        if grid is None:
            raise SourceError("the STAC source searches around an AOI grid: none was given")
        bbox = grid_bbox_wgs84(grid)
        start, end = month_window(month)
        where = f"STAC {self.catalog}, collection {coll}, month {month}"
        query = self.s2_query if which.startswith("s2") else {}
        with self._search_lock:
            before = self.retries.n
            try:
                items = self._searching(lambda: self._query(coll, bbox, start, end, query),
                                        where)
            finally:
                self._month_retries[month] = (self._month_retries.get(month, 0)
                                              + self.retries.n - before)
        if len(items) > self.max_items:
            raise SourceError(
                f"{where}: {len(items)} items (more than sentinel.stac.max_items = "
                f"{self.max_items}); check the AOI bounds"
            )
        if not items:
            self._empty.setdefault(month, []).append(coll)
            log.warning("%s: the search over %s found no item", where,
                        [round(v, 4) for v in bbox])
        return items

    def _query(self, coll: str, bbox: tuple[float, float, float, float], start: dt.datetime,
               end: dt.datetime, query: dict[str, Any]) -> list[dict[str, Any]]:
        if self.static:
            return [it for it in self._static() if it.get("collection") == coll
                    and bbox_overlaps(it.get("bbox"), bbox)
                    and start <= item_time(it) < end
                    and all(matches_query(it.get("properties", {}).get(k), c)
                            for k, c in query.items())]
        client = self._api()
        # STAC intervals are closed: ask for [start, end] and keep [start, end) here, so an
        # item sensed in a month's last second is in that month and one at the next month's
        # first instant only in the next
        stamp = f"{start:%Y-%m-%dT%H:%M:%SZ}/{end:%Y-%m-%dT%H:%M:%SZ}"
        out: list[dict[str, Any]] = []
        for page in search_item_pages(client, collections=[coll], bbox=list(bbox),
                                      datetime=stamp, limit=100, query=query or None):
            self.search_requests += 1
            out.extend(it for it in page if start <= item_time(it) < end)
        return out

    def preflight(self) -> None:
        """One cheap check, before a build starts, that this catalogue can be read: the
        signer exists (checked when the source was made), a static catalogue's items load,
        an API's landing page answers and names every configured collection.

        Raises:
            SourceError: naming the catalogue (and the host it could not reach) and the fix.
        """
        if self.static:
            self._static()
        else:
            self._preflight_api()
            if self.s3_endpoint and not s3_credentials_found():
                raise SourceError(
                    f"profile {self.profile.name!r} reads its assets from the S3 endpoint "
                    f"{self.s3_endpoint}, and no S3 keys were found: {S3_KEYS_HINT}, or use "
                    "the default open-data profile (sentinel.stac.profile: earth-search), which "
                    "needs no account")
        if self.s1_catalog is not None:
            self.s1_catalog.preflight()

    def _preflight_api(self) -> None:
        client = self._searching(self._api, f"STAC API {self.catalog}")
        for coll in sorted({c for c in self.collections.values() if c}):
            try:
                found = self._searching(lambda c=coll: client.get_collection(c),  # type: ignore[misc]
                                        f"STAC API {self.catalog}, collection {coll}")
            except SourceError as exc:
                if "HTTP 404" not in str(exc) and "not found" not in str(exc).lower():
                    raise
                found = None
            if found is None:
                raise SourceError(
                    f"STAC API {self.catalog} has no collection {coll!r}: check "
                    "sentinel.stac.profile and the *_collection settings (docs/sources.md)"
                ) from None

    def _api(self) -> Any:
        if self._client is None:
            io = stac_io(self.timeout_s, self.max_retries, self.backoff_base_s, self.retries)
            self._client = open_stac_api(self.catalog, io)
            self.search_requests += 1
        return self._client

    def _static(self) -> list[dict[str, Any]]:
        if self._static_items is None:
            self._static_items = self._searching(
                lambda: read_static_items(self.catalog, static_stac_io(
                    self.timeout_s, self.max_retries, self.backoff_base_s, self.retries)),
                f"static STAC catalogue {self.catalog}")
        return self._static_items

    def _searching(self, fn: Callable[[], Any], where: str) -> Any:
        """``fn()`` (a search or catalogue read; HTTP retries are urllib3's, see
        :func:`pipeline.io.stac_catalog.http_retry`) with its errors turned into one
        SourceError that says what happened and how many retries were made."""
        before = self.retries.n
        try:
            return fn()
        except SourceError:
            raise
        except Exception as exc:  # network / HTTP / JSON errors of the clients
            n = self.retries.n - before
            status = _status_of(exc)
            if isinstance(exc, ValueError) and status is None:  # JSON / STAC parse errors
                hint = ("the answer is not valid STAC JSON: check that the URL is a STAC API "
                        "root or a catalog.json")
            elif status is not None and 400 <= status < 500 and status != 429:
                hint = (f"the server answered HTTP {status}, which is not retried: check the "
                        "URL, the collection ids and the credentials")
            elif status is None and _unreachable(exc):
                host = urllib.parse.urlsplit(self.catalog).netloc or self.catalog
                hint = (f"the host {host} could not be reached (no network, a proxy, or a "
                        "wrong host name): check the URL and your connection")
            else:
                hint = "the server kept failing; rerun later (finished blocks are kept)"
            raise SourceError(f"{where}: failed after {n} retries ({type(exc).__name__}: "
                              f"{exc}); {hint}") from None

    # ---- blocks

    def read_env(self) -> contextlib.AbstractContextManager[Any]:
        """GDAL's HTTP settings (retries, backoff, timeouts), entered in every read thread."""
        return cast(contextlib.AbstractContextManager[Any],
                    gdal_http_env(self.max_retries, self.backoff_base_s, self.timeout_s,
                                  self.s3_endpoint))

    def month_meta(self, month: str) -> dict[str, Any]:
        """What the month's listing skipped, found empty or corrected (the block meta and the
        month summary name them)."""
        return {"skipped_items": list(self._skipped.get(month, [])),
                "empty_searches": list(self._empty.get(month, [])),
                "offset_corrected": list(self._offset_fixed.get(month, [])),
                "search_retries": int(self._month_retries.get(month, 0))}

    def close(self) -> None:
        """Nothing held open between searches (pystac-client opens a session per client)."""

    # ---- dask workers: search once in the job, ship the month's scenes

    def month_listing(self, month: str, grid: AoiGrid) -> MonthListing:
        """The month's searches, done here (once per AOI-month), as a picklable listing that
        :class:`OnWorkers` hands to every worker."""
        s2 = tuple(self.list_s2(month, grid))
        s1 = tuple(self.list_s1(month, grid))
        return MonthListing(month, s2, s1, tuple(self._skipped.get(month, [])),
                            tuple(self._empty.get(month, [])),
                            tuple(self._offset_fixed.get(month, [])))

    def preload(self, listing: MonthListing) -> None:
        """Use ``listing`` for its month instead of searching (a dask worker's source)."""
        with self._lock:
            self._preloaded[listing.month] = listing
            self._skipped[listing.month] = list(listing.skipped)
            self._empty[listing.month] = list(listing.empty)
            self._offset_fixed[listing.month] = list(listing.offset_corrected)


@dataclass(frozen=True)
class MonthListing:
    """One AOI-month's STAC search results: the scenes (asset hrefs already signed) and what
    was skipped or found empty."""

    month: str
    s2: tuple[S2Scene, ...]
    s1: tuple[S1Scene, ...]
    skipped: tuple[dict[str, str], ...] = ()
    empty: tuple[str, ...] = ()
    offset_corrected: tuple[str, ...] = ()


def stac_source(catalog: str | Path | None = None, **kwargs: Any) -> Compositor:
    """The ``stac`` source: the compositor over ``StacCatalog(catalog, **kwargs)``."""
    return Compositor(StacCatalog(catalog, **kwargs))


def build_stac_source(kwargs: tuple[tuple[str, Any], ...]) -> Compositor:
    """``stac_source(**dict(kwargs))``: the per-process factory of :class:`OnWorkers`."""
    return stac_source(**dict(kwargs))


@dataclass(frozen=True)
class OnWorkers:
    """A picklable stand-in for the ``stac`` source whose blocks run on dask workers.

    Each worker process builds one source from ``source`` (a
    :class:`~pipeline.parallel.PerProcess` of :func:`build_stac_source`, shared by every
    month) and is handed the month's ``listing``, so workers never search: the job searched
    once (:meth:`StacCatalog.month_listing`).
    """

    source: Any  # PerProcess of build_stac_source
    listing: MonthListing
    name: str = "stac"

    def fetch_block(
        self, aoi: str, grid: AoiGrid, block: Block, month: str, recipe: Recipe,
        cover: np.ndarray | None = None,
    ) -> BlockResult:
        src: Compositor = self.source.get()
        cast(StacCatalog, src.provider).preload(self.listing)
        return src.fetch_block(aoi, grid, block, month, recipe, cover)

    def listing_key(self, month: str, grid: AoiGrid) -> str:
        """:func:`~pipeline.sentinel.compositor.listing_key` of the shipped listing."""
        meta = {"skipped_items": list(self.listing.skipped),
                "empty_searches": list(self.listing.empty)}
        return listing_key(self.listing.s2, self.listing.s1, meta)

    def close(self) -> None:
        self.source.close()


def grid_bbox_wgs84(grid: AoiGrid) -> tuple[float, float, float, float]:
    """The AOI grid's bounds as a WGS84 (lon/lat) bbox, densified edges."""
    from pyproj import Transformer

    minx, miny, maxx, maxy = grid.bounds
    tr = Transformer.from_crs(grid.crs, "EPSG:4326", always_xy=True)
    return tuple(float(v) for v in tr.transform_bounds(minx, miny, maxx, maxy, densify_pts=21))  # type: ignore[return-value]


def _status_of(exc: BaseException) -> int | None:
    """The HTTP status of a client error (pystac-client ``APIError.status_code``, requests'
    ``response.status_code``, urllib's ``HTTPError.code``); None for transport errors."""
    for e in (exc, exc.__cause__, exc.__context__):
        for attr in ("status_code", "code", "status"):
            v = getattr(e, attr, None)
            if isinstance(v, int) and 100 <= v < 600:
                return v
        resp = getattr(e, "response", None)
        code = getattr(resp, "status_code", None)
        if isinstance(code, int):
            return code
    return None


def _unreachable(exc: BaseException) -> bool:
    """True when ``exc`` (or what it wraps) says the host could not be reached at all: DNS
    failure, connection refused, no route."""
    text = " ".join(f"{type(e).__name__}: {e}" for e in (exc, exc.__cause__, exc.__context__)
                    if e is not None)
    return any(k in text for k in ("NameResolutionError", "Failed to resolve",
                                   "Name or service not known", "nodename nor servname",
                                   "Temporary failure in name resolution",
                                   "Connection refused", "No route to host",
                                   "Network is unreachable"))


def _pc_signer() -> Callable[[str], str]:
    """Planetary Computer URL signing (its ``planetary-computer`` package)."""
    try:
        import planetary_computer
    except ImportError:
        raise SourceError(
            "the planetary-computer profile needs signed asset URLs: pip install "
            "planetary-computer (or pass a signer)"
        ) from None
    return lambda href: str(planetary_computer.sign(href))
