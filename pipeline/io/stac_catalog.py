"""STAC catalogues: save a pystac Collection self-contained under a folder (atomic swap)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pipeline.errors import ConfigError
from pipeline.io.atomic import atomic_path


def locate_catalogue(url: str | None, archive: str | None, where: str) -> str | None:
    """The one rule for where a ``stac`` build's catalogue is: ``sentinel.stac.url`` when set;
    else the scene archive setting when it is a ``.json`` file or a URL, or a folder holding a
    ``catalog.json`` (the demo writes one); else None (the profile's public API).

    Args:
        url: ``sentinel.stac.url``.
        archive: the AOI's ``sentinel_archive`` (or ``expand.sentinel_archive``).
        where: what ``archive`` belongs to, for the message (``"AOI 'demo' (aoi/demo.yaml)"``).

    Raises:
        ConfigError: ``archive`` is a folder without a ``catalog.json``.
    """
    if url:
        return str(url)
    if not archive:
        return None
    arch = str(archive)
    if arch.endswith(".json") or "://" in arch:
        return arch
    cat = Path(arch) / "catalog.json"
    if not cat.is_file():
        raise ConfigError(
            f"{where}: sentinel.source is 'stac' and the scene archive {arch} holds no "
            "catalog.json: point sentinel_archive at a static STAC catalogue, set "
            "sentinel.stac.url (a STAC API or catalogue), remove sentinel_archive to search "
            "the profile's public API, or set sentinel.source: local for a scene-archive folder"
        )
    return str(cat)


def save_stac(catalog: Any, dest: str | Path) -> Path:
    """Save a pystac Catalog/Collection self-contained (relative links) under ``dest``.

    Written into a temporary folder and swapped into place, so a crash leaves the previous
    catalogue intact. Returns the path of the root ``collection.json`` / ``catalog.json``.
    """
    import pystac

    final = Path(dest)
    with atomic_path(final) as tmp:
        catalog.normalize_hrefs(str(tmp))
        catalog.save(catalog_type=pystac.CatalogType.SELF_CONTAINED, dest_href=str(tmp))
    name = "collection.json" if isinstance(catalog, pystac.Collection) else "catalog.json"
    return final / name


# --------------------------------------------------------------------------- scene catalogues

#: Earth Search asset keys of the L1C/L2A band files, and common names (eo:bands).
_ES_ASSET = {
    "B01": "coastal", "B02": "blue", "B03": "green", "B04": "red", "B05": "rededge1",
    "B06": "rededge2", "B07": "rededge3", "B08": "nir", "B8A": "nir08", "B09": "nir09",
    "B10": "cirrus", "B11": "swir16", "B12": "swir22", "SCL": "scl",
}
COG_TYPE = "image/tiff; application=geotiff; profile=cloud-optimized"
_EXTENSIONS = [
    "https://stac-extensions.github.io/eo/v1.1.0/schema.json",
    "https://stac-extensions.github.io/projection/v1.1.0/schema.json",
    "https://stac-extensions.github.io/raster/v1.1.0/schema.json",
    "https://stac-extensions.github.io/view/v1.0.0/schema.json",
    "https://stac-extensions.github.io/mgrs/v1.0.0/schema.json",
    "https://stac-extensions.github.io/grid/v1.0.0/schema.json",
]
_S1_EXTENSIONS = [
    "https://stac-extensions.github.io/sar/v1.0.0/schema.json",
    "https://stac-extensions.github.io/sat/v1.0.0/schema.json",
    "https://stac-extensions.github.io/projection/v1.1.0/schema.json",
    "https://stac-extensions.github.io/raster/v1.1.0/schema.json",
]


def write_scene_catalog(archive: str | Path) -> Path:
    """A static STAC catalogue ``<archive>/catalog.json`` describing a local scene archive in
    real providers' layouts, its assets the archive's own band files (Cloud-Optimized GeoTIFFs,
    relative hrefs):

    * ``sentinel-2-l2a`` / ``sentinel-2-l1c``: Earth Search v1 items (ids
      ``S2A_<tile>_<YYYYMMDD>_<n>_L2A`` / ``_L1C``; asset keys ``coastal`` ... ``swir22``,
      ``cirrus`` (L1C), ``scl``; ``raster:bands`` with scale 0.0001 and the baseline's offset;
      properties ``s2:processing_baseline``, ``s2:datatake_id``, ``earthsearch:boa_offset_applied``,
      ``view:sun_azimuth``, ``view:sun_elevation``, ``proj:epsg``, ``mgrs:*``, ``grid:code``).
      DNs without the -1000 offset get baseline 02.14 (pre-2022 products), DNs with it 04.00.
    * ``sentinel-1-rtc``: Planetary Computer items (assets ``vv`` / ``vh``, linear gamma0;
      ``sat:orbit_state``, ``sat:relative_orbit``, ``sar:*``). Only linear-power scenes are
      listed (dB files are not what that collection serves).

    Returns the catalogue path.
    """
    import pystac

    from pipeline.io.scenes import S1_FILE_BANDS, SCENE_JSON, _read_scene_json

    root = Path(archive)
    cat = pystac.Catalog("scenes", f"Sentinel scenes of {root.name} (Earth Search / Planetary "
                                   "Computer layouts)")
    cols: dict[str, pystac.Collection] = {}

    def collection(cid: str) -> pystac.Collection:
        if cid not in cols:
            ext = pystac.Extent(pystac.SpatialExtent([[-180.0, -90.0, 180.0, 90.0]]),
                                pystac.TemporalExtent([[None, None]]))  # type: ignore[arg-type]
            cols[cid] = pystac.Collection(cid, f"{cid} (local)", ext, license="proprietary")
            cat.add_child(cols[cid])
        return cols[cid]

    seq: dict[str, int] = {}
    for folder in sorted((root / "s2").glob("*")) if (root / "s2").is_dir() else []:
        if not (folder / SCENE_JSON).is_file():
            continue
        meta = _read_scene_json(folder)
        for level in ("L2A", "L1C"):
            if not (folder / level).is_dir():
                continue
            item = _s2_item(root, folder, meta, level, seq)
            collection("sentinel-2-l2a" if level == "L2A" else "sentinel-2-l1c").add_item(item)
    for folder in sorted((root / "s1").glob("*")) if (root / "s1").is_dir() else []:
        if not (folder / SCENE_JSON).is_file():
            continue
        meta = _read_scene_json(folder)
        if str(meta.get("units", "db")).lower() != "linear":
            continue
        pols = [b for b in S1_FILE_BANDS if (folder / f"{b}.tif").is_file()]
        if pols:
            collection("sentinel-1-rtc").add_item(_s1_item(root, folder, meta, pols))
    for c in cols.values():
        c.update_extent_from_items()
    # items go to <archive>/<collection>/<item>/<item>.json, assets stay the archive's files
    # (hrefs relative to each item); the rule's done marker is written after this returns, so
    # an interrupted catalogue is rewritten by the rerun
    cat.normalize_hrefs(str(root))
    cat.make_all_asset_hrefs_relative()
    cat.save(catalog_type=pystac.CatalogType.SELF_CONTAINED)
    return root / "catalog.json"


def _raster_meta(path: Path) -> tuple[list[int], list[float], int, str]:
    import rasterio

    with rasterio.open(path) as src:
        t = src.transform
        return ([src.height, src.width], [t.a, t.b, t.c, t.d, t.e, t.f], int(src.crs.to_epsg()),
                src.dtypes[0])


def _s2_item(root: Path, folder: Path, meta: dict[str, Any], level: str,
             seq: dict[str, int]) -> Any:
    import datetime as dt

    import pystac

    from pipeline.io.scenes import L1C_FILE_BANDS, L2A_FILE_BANDS, NATIVE_RES_M

    t = dt.datetime.fromisoformat(str(meta["time"]).replace("Z", "+00:00"))
    tile = str(meta.get("tile", folder.name.partition("_")[2]))
    sat = str(meta.get("spacecraft", "S2A"))
    day = f"{t:%Y%m%d}"
    key = f"{sat}_{tile}_{day}"
    n = seq.setdefault(f"{key}_{level}", sum(1 for k in seq if k.startswith(key)
                                            and k.endswith(level)))
    offset_dn = float(meta.get("offsets", {}).get(level, 0.0))
    baseline = "04.00" if offset_dn <= -1000 else "02.14"
    props: dict[str, Any] = {
        "platform": f"sentinel-{sat[1:].lower()}", "constellation": "sentinel-2",
        "instruments": ["msi"], "eo:cloud_cover": float(meta.get("cloud_cover_truth", 0.0)) * 100,
        "view:sun_azimuth": float(meta.get("sun_azimuth_deg", 150.0)),
        "view:sun_elevation": 90.0 - float(meta.get("sun_zenith_deg", 30.0)),
        "mgrs:utm_zone": int(tile[:2]) if tile[:2].isdigit() else None,
        "mgrs:latitude_band": tile[2:3], "mgrs:grid_square": tile[3:5],
        "grid:code": f"MGRS-{tile}", "s2:processing_baseline": baseline,
        "s2:product_type": "S2MSI2A" if level == "L2A" else "S2MSI1C",
        "s2:datatake_id": f"G{sat}_{t:%Y%m%dT%H%M%S}_000000_N{baseline.replace('.', '')}",
    }
    if level == "L2A":
        props["earthsearch:boa_offset_applied"] = False
    bands = L2A_FILE_BANDS if level == "L2A" else L1C_FILE_BANDS
    files = [b for b in (*bands, "SCL") if (folder / level / f"{b}.tif").is_file()]
    shape, transform, epsg, _ = _raster_meta(folder / level / "B02.tif")
    props["proj:epsg"] = epsg
    item = pystac.Item(f"{key}_{n}_{level}", None, None, t.replace(tzinfo=None), props,
                       stac_extensions=list(_EXTENSIONS))
    _footprint(item, shape, transform, epsg)
    for b in files:
        p = folder / level / f"{b}.tif"
        shp, tr, _, dtype = _raster_meta(p)
        rb: dict[str, Any] = {"nodata": 0, "data_type": dtype,
                              "spatial_resolution": NATIVE_RES_M[b]}
        if b != "SCL":
            rb.update(bits_per_sample=15, scale=0.0001, offset=offset_dn / 10000.0)
        asset = pystac.Asset(str(p.resolve()), media_type=COG_TYPE,
                             roles=["data"] if b == "SCL" else ["data", "reflectance"],
                             extra_fields={"raster:bands": [rb], "proj:shape": shp,
                                           "proj:transform": tr})
        if b != "SCL":
            asset.extra_fields["eo:bands"] = [{"name": b}]
        item.add_asset(_ES_ASSET[b], asset)
    return item


def _s1_item(root: Path, folder: Path, meta: dict[str, Any], pols: list[str]) -> Any:
    import datetime as dt

    import pystac

    t = dt.datetime.fromisoformat(str(meta["time"]).replace("Z", "+00:00"))
    orbit = str(meta.get("orbit_pass") or "ascending").lower()
    shape, transform, epsg, _ = _raster_meta(folder / f"{pols[0]}.tif")
    rel = meta.get("relative_orbit")
    props: dict[str, Any] = {
        "platform": "SENTINEL-1A", "constellation": "Sentinel-1", "sar:instrument_mode": "IW",
        "sar:frequency_band": "C", "sar:product_type": "GRD", "sar:polarizations": pols,
        "sat:orbit_state": orbit, "proj:epsg": epsg,
    }
    if rel is not None:
        props["sat:relative_orbit"] = int(rel)
    sid = (f"S1A_IW_GRDH_1S{'DV' if len(pols) == 2 else 'SV'}_{t:%Y%m%dT%H%M%S}_"
           f"{t:%Y%m%dT%H%M%S}_000000_000000_rtc")
    item = pystac.Item(sid, None, None, t.replace(tzinfo=None), props,
                       stac_extensions=list(_S1_EXTENSIONS))
    _footprint(item, shape, transform, epsg)
    for b in pols:
        p = folder / f"{b}.tif"
        shp, tr, _, dtype = _raster_meta(p)
        item.add_asset(b.lower(), pystac.Asset(
            str(p.resolve()), media_type=COG_TYPE, roles=["data"],
            extra_fields={"raster:bands": [{"nodata": "nan", "data_type": dtype,
                                            "spatial_resolution": 10}],
                          "proj:shape": shp, "proj:transform": tr}))
    return item


def _footprint(item: Any, shape: list[int], transform: list[float], epsg: int) -> None:
    """Item geometry and bbox (WGS84) from a band's grid."""
    from pyproj import Transformer

    h, w = shape
    a, _, c, _, e, f = transform
    xs = [c, c + a * w, c + a * w, c]
    ys = [f, f, f + e * h, f + e * h]
    tr = Transformer.from_crs(f"EPSG:{epsg}", "EPSG:4326", always_xy=True)
    lon, lat = tr.transform(xs, ys)
    ring = [[float(x), float(y)] for x, y in zip(lon, lat, strict=True)]
    item.geometry = {"type": "Polygon", "coordinates": [[*ring, ring[0]]]}
    item.bbox = [min(lon), min(lat), max(lon), max(lat)]


# --------------------------------------------------------------------------- reading catalogues


class RetryCounter:
    """How many HTTP retries a client made (shared by every :class:`CountingRetry` it derives,
    so the count is true across requests; thread-safe enough for a counter under the GIL)."""

    def __init__(self) -> None:
        self.n = 0


def http_retry(max_retries: int, backoff_s: float, counter: RetryCounter | None = None) -> Any:
    """A urllib3 ``Retry`` for STAC requests: up to ``max_retries`` retries of connection
    errors, read timeouts and HTTP 429 / 500 / 502 / 503 / 504 on any method (searches are
    POSTs), exponential backoff from ``backoff_s`` (capped at 60 s) unless the server sends
    ``Retry-After``, which is honoured; other statuses (400, 401, 403, 404) are not retried.
    After the last retry the server's own answer is returned (its status and text reach the
    error message)."""
    from urllib3 import Retry

    class CountingRetry(Retry):
        counter: RetryCounter

        def new(self, **kw: Any) -> Any:
            r = super().new(**kw)
            r.counter = self.counter
            return r

        def increment(self, *args: Any, **kw: Any) -> Any:
            r = super().increment(*args, **kw)
            self.counter.n += 1
            return r

    retry = CountingRetry(
        total=max_retries, connect=max_retries, read=max_retries, status=max_retries,
        other=0, backoff_factor=backoff_s, backoff_max=60.0,
        status_forcelist=(429, 500, 502, 503, 504), allowed_methods=None,
        respect_retry_after_header=True, raise_on_status=False,
    )
    retry.counter = counter or RetryCounter()
    return retry


def stac_io(timeout_s: float, max_retries: int, backoff_s: float,
            counter: RetryCounter | None = None) -> Any:
    """pystac-client's ``StacApiIO`` with :func:`http_retry`, for STAC APIs."""
    from pystac_client.stac_api_io import StacApiIO

    return StacApiIO(timeout=timeout_s, max_retries=http_retry(max_retries, backoff_s, counter))


def static_stac_io(timeout_s: float, max_retries: int, backoff_s: float,
                   counter: RetryCounter | None = None) -> Any:
    """A pystac ``StacIO`` for static catalogues: local files as pystac reads them, http(s)
    through a requests session with :func:`http_retry` (the same retries as API searches;
    an error status raises ``requests.HTTPError`` carrying the response)."""
    import pystac
    import requests
    from requests.adapters import HTTPAdapter

    session = requests.Session()
    adapter = HTTPAdapter(max_retries=http_retry(max_retries, backoff_s, counter))
    session.mount("http://", adapter)
    session.mount("https://", adapter)

    class RetryingStacIO(pystac.stac_io.DefaultStacIO):
        def read_text_from_href(self, href: str) -> str:
            if href.startswith(("http://", "https://")):
                r = session.get(href, timeout=timeout_s)
                r.raise_for_status()
                return str(r.text)
            return str(super().read_text_from_href(href))

    return RetryingStacIO()


def open_stac_api(url: str, io: Any) -> Any:
    """A pystac-client ``Client`` for the STAC API at ``url`` reading through ``io``
    (:func:`stac_io`). One request: the landing page (conformance included)."""
    from pystac_client import Client

    # Client.open sets its own timeout on the StacApiIO it is given: pass it along
    return Client.open(url, stac_io=io, timeout=io.timeout)


def search_item_pages(client: Any, **params: Any) -> Iterator[list[dict[str, Any]]]:
    """Item dicts of an API search, page by page (one request per page, following every
    ``next`` link)."""
    for page in client.search(**params).pages_as_dicts():
        yield list(page.get("features", []))


def read_static_items(catalog: str, io: Any = None) -> list[dict[str, Any]]:
    """Every item of a static catalogue (path or URL; read through ``io``, a
    :func:`static_stac_io`, when given), as dicts with ``collection`` set and asset hrefs
    made absolute (relative to each item's own location)."""
    import pystac

    items = []
    for item in pystac.Catalog.from_file(catalog, stac_io=io).get_items(recursive=True):
        d = item.to_dict(include_self_link=False, transform_hrefs=True)
        d["collection"] = item.collection_id
        for key, asset in item.assets.items():
            d["assets"][key]["href"] = asset.get_absolute_href() or asset.href
        items.append(d)
    return items
