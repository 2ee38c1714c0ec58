"""Reading and writing the local Sentinel scene archive (see :mod:`pipeline.sentinel.sources.local`
for
the layout specification).

Every function that opens a scene file lives here; the local source only does the math.
Scene bands are read *onto a target grid window* (CRS + affine transform + size, e.g. one block
of an AOI grid) through :class:`rasterio.vrt.WarpedVRT`, so a scene in any CRS / resolution
lands on exactly the requested pixels.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.errors import SourceError

#: Band files of an L1C scene (13 bands, incl. the cirrus band B10 that s2cloudless needs).
L1C_FILE_BANDS: tuple[str, ...] = (
    "B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12",
)
#: Band files of an L2A scene (12 bands; B10 does not exist in L2A).
L2A_FILE_BANDS: tuple[str, ...] = tuple(b for b in L1C_FILE_BANDS if b != "B10")
#: Native resolution (m) of each band file.
NATIVE_RES_M: dict[str, int] = {
    "B01": 60, "B02": 10, "B03": 10, "B04": 10, "B05": 20, "B06": 20, "B07": 20, "B08": 10,
    "B8A": 20, "B09": 60, "B10": 60, "B11": 20, "B12": 20, "SCL": 20,
}
#: Optional L2A scene-classification layer (uint8 Sen2Cor classes 0..11, 0 = no data).
SCL_FILE = "SCL"
S1_FILE_BANDS: tuple[str, ...] = ("VV", "VH")
SCENE_JSON = "scene.json"
_TIME_FMT = "%Y%m%dT%H%M%S"

_RETRIES = threading.local()


class _GdalRetryCounter(logging.Handler):
    """Counts GDAL's HTTP retries ("HTTP error code: 503 ... Retrying again in N secs", which
    rasterio logs as warnings of ``rasterio._env``) per thread: a read counts its own."""

    def emit(self, record: logging.LogRecord) -> None:
        if "Retrying again" in record.getMessage():
            _RETRIES.n = getattr(_RETRIES, "n", 0) + 1


logging.getLogger("rasterio._env").addHandler(_GdalRetryCounter(level=logging.WARNING))


def http_retries_in_thread() -> int:
    """GDAL HTTP retries made so far by reads in the calling thread (difference two calls to
    count one read's)."""
    return int(getattr(_RETRIES, "n", 0))


def file_band(project_band: str) -> str:
    """Project band name (``B1``, ``B8A``) -> archive file band name (``B01``, ``B8A``)."""
    if project_band == "B8A":
        return "B8A"
    return f"B{int(project_band[1:]):02d}"


@dataclass(frozen=True)
class S2Scene:
    """One S2 acquisition folder ``<archive>/s2/<YYYYMMDDTHHMMSS>_<tile>/``."""

    path: Path
    time: dt.datetime
    tile: str
    products: tuple[str, ...]
    sun_azimuth_deg: float = 150.0
    sun_zenith_deg: float = 30.0
    offsets: Mapping[str, float] = field(default_factory=dict)
    scl: bool = False  # an L2A SCL layer is present
    #: ``"<level>/<file band>"`` -> href (path or URL) where the band is not at the archive's
    #: ``<path>/<level>/<band>.tif`` (scenes listed from a STAC catalogue)
    assets: Mapping[str, str] = field(default_factory=dict)
    #: one S2 datatake (all granules of one pass): granules sharing it are one observation
    datatake: str = ""
    name: str = ""  # id override (STAC item id)

    @property
    def id(self) -> str:
        return self.name or self.path.name

    def file(self, level: str, band: str) -> str | Path:
        """Where band ``band`` (``B01``..``B12``, ``B8A``, ``SCL``) of ``level`` is read from."""
        return self.assets.get(f"{level}/{band}") or self.path / level / f"{band}.tif"

    @property
    def observation(self) -> str:
        """Key of the observation this granule belongs to (its datatake; else its sensing
        time, which SAFE names share across the granules of one datatake)."""
        return self.datatake or self.time.strftime(_TIME_FMT)


@dataclass(frozen=True)
class S1Scene:
    """One S1 acquisition folder ``<archive>/s1/<YYYYMMDDTHHMMSS>[_<suffix>]/``."""

    path: Path
    time: dt.datetime
    orbit_pass: str | None
    units: str  # "db" or "linear"
    bands: tuple[str, ...] = ("VV", "VH")  # polarisation files present (VV.tif, VH.tif)
    relative_orbit: int | None = None
    assets: Mapping[str, str] = field(default_factory=dict)  # band -> href (STAC scenes)
    name: str = ""

    @property
    def id(self) -> str:
        return self.name or self.path.name

    def file(self, band: str) -> str | Path:
        """Where polarisation ``band`` (``VV`` / ``VH``) is read from."""
        return self.assets.get(band) or self.path / f"{band}.tif"



def _parse_time(s: str, where: Path) -> dt.datetime:
    try:
        t = dt.datetime.fromisoformat(s.replace("Z", "+00:00"))
    except (ValueError, AttributeError):
        raise SourceError(
            f"{where}: 'time' {s!r} is not an ISO date-time (e.g. 2019-08-14T03:25:11Z): fix "
            "scene.json"
        ) from None
    return t.replace(tzinfo=None) if t.tzinfo is None else t.astimezone(dt.UTC).replace(tzinfo=None)


def _read_scene_json(folder: Path) -> dict[str, Any]:
    p = folder / SCENE_JSON
    try:
        meta = json.loads(p.read_text())
    except FileNotFoundError:
        raise SourceError(
            f"scene {folder} has no {SCENE_JSON}: add one (see pipeline/sources/local.py) or "
            "remove the folder from the archive"
        ) from None
    except (OSError, json.JSONDecodeError) as exc:
        raise SourceError(
            f"scene metadata {p} is corrupt ({exc}): re-create it or remove the scene folder"
        ) from None
    if not isinstance(meta, dict) or "time" not in meta:
        raise SourceError(f"scene metadata {p} lacks 'time': fix it or remove the scene folder")
    return meta


def _month_folders(archive: Path, sensor: str, month: str) -> list[Path]:
    root = Path(archive) / sensor
    if not root.is_dir():
        return []
    prefix = month.replace("-", "")
    return sorted(p for p in root.iterdir() if p.is_dir() and p.name.startswith(prefix))


def list_s2_scenes(archive: str | Path, month: str) -> list[S2Scene]:
    """S2 scenes of ``month`` (``YYYY-MM``), sorted by time; empty list if none.

    Raises:
        SourceError: a scene folder with missing / corrupt ``scene.json`` or no product folder.
    """
    out = []
    for folder in _month_folders(Path(archive), "s2", month):
        meta = _read_scene_json(folder)
        products = tuple(
            lvl for lvl in ("L2A", "L1C")
            if lvl in meta.get("products", ("L1C", "L2A")) and (folder / lvl).is_dir()
        )
        if not products:
            raise SourceError(
                f"S2 scene {folder} has neither an L1C/ nor an L2A/ band folder: add them or "
                "remove the scene folder"
            )
        out.append(
            S2Scene(
                path=folder,
                time=_parse_time(meta["time"], folder),
                tile=str(meta.get("tile", folder.name.partition("_")[2])),
                products=products,
                sun_azimuth_deg=float(meta.get("sun_azimuth_deg", 150.0)),
                sun_zenith_deg=float(meta.get("sun_zenith_deg", 30.0)),
                offsets={k: float(v) for k, v in meta.get("offsets", {}).items()},
                scl="L2A" in products and (folder / "L2A" / f"{SCL_FILE}.tif").is_file(),
                datatake=str(meta.get("datatake", "") or ""),
            )
        )
    return sorted(out, key=lambda s: (s.time, s.id))


def list_s1_scenes(archive: str | Path, month: str) -> list[S1Scene]:
    """S1 scenes of ``month``, sorted by time; empty list if none. A scene may hold VV, VH or
    both (``bands``).

    Raises:
        SourceError: a scene with neither VV.tif nor VH.tif, or bad ``units``.
    """
    out = []
    for folder in _month_folders(Path(archive), "s1", month):
        meta = _read_scene_json(folder)
        pols = tuple(b for b in S1_FILE_BANDS if (folder / f"{b}.tif").is_file())
        if not pols:
            raise SourceError(
                f"S1 scene {folder} has neither VV.tif nor VH.tif: add them or remove the scene "
                "folder"
            )
        units = str(meta.get("units", "db")).lower()
        if units not in ("db", "linear"):
            raise SourceError(
                f"{folder / SCENE_JSON}: 'units' must be 'db' or 'linear', got {units!r}"
            )
        out.append(
            S1Scene(
                path=folder,
                time=_parse_time(meta["time"], folder),
                orbit_pass=meta.get("orbit_pass"),
                units=units,
                bands=pols,
                relative_orbit=(int(meta["relative_orbit"])
                                if meta.get("relative_orbit") is not None else None),
            )
        )
    return sorted(out, key=lambda s: (s.time, s.id))


def read_on_grid(
    files: Sequence[Path | str],
    crs: str,
    transform: Any,
    width: int,
    height: int,
    resampling: str = "nearest",
    nodata: float | None = None,
    window: tuple[int, int, int, int] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Read single-band rasters warped onto a frame grid, one window of it.

    A pixel's value depends on the frame only, never on the window read: GDAL's warped VRT
    computes whole blocks of the frame (512 x 128 px, aligned to the frame's origin) and the
    window is cut from them. A VRT made per window would round some reprojected pixels
    differently near its edges (one DN, on about 0.2 % of the pixels of a cross-zone scene), so
    an AOI fetched as one block or as many would differ in bytes. A file on a whole-pixel shift
    of the frame (S2's 10 m bands on the AOI frame, whose origin is a multiple of 60 m) is read
    shifted, not warped (:class:`pipeline.io.ongrid.ShiftedView`): its own pixels, the same
    bytes the warp gives.

    Args:
        files: one single-band GeoTIFF per output band (any CRS / resolution): a path or a
            URL (``https://``, ``s3://``, ``/vsicurl/...``; GDAL reads only the internal tiles
            of a Cloud-Optimized GeoTIFF that the window needs, with HTTP range requests).
        crs, transform, width, height: the frame the files are warped onto (e.g. an AOI grid
            padded by the reach of a cloud mask's halo).
        resampling: rasterio resampling name (``nearest`` / ``bilinear``).
        nodata: the files' nodata value when they do not declare one.
        window: ``(col0, row0, width, height)`` of the frame to read (None: the whole frame).

    Returns:
        ``(data, valid)``: float32 (b, h, w) raw values (file units) of the window, and bool
        (b, h, w) valid (inside the file and not nodata). The warp runs in float32 whatever
        the file's type, so an interpolated value (``bilinear``) is not rounded to the file's
        integers (Earth Engine interpolates in floating point too; nearest is unaffected).

    Raises:
        SourceError: a missing or unreadable file (named).
    """
    from rasterio.errors import RasterioError
    from rasterio.windows import Window

    from pipeline.io.ongrid import open_on_grid, read_with_valid

    col0, row0, w, h = window if window is not None else (0, 0, width, height)
    win = Window(col0, row0, w, h)
    data = np.empty((len(files), h, w), np.float32)
    valid = np.empty((len(files), h, w), bool)
    for i, f in enumerate(files):
        try:
            # tolerance ~exact: the transform is not approximated across a frame block
            with open_on_grid(f, crs, transform, width, height, resampling, nodata=nodata,
                              tolerance=1e-6, dtype="float32") as vrt:
                src_nodata = vrt.nodata
                # one read: a mask that is only the nodata value comes from the pixels (a
                # second read_masks pass warped or decoded the window again)
                arr, m = read_with_valid(vrt, [1], win, out_dtype="float32")
        except (RasterioError, OSError) as exc:
            raise _read_error(f, exc) from None
        if src_nodata is not None and np.isnan(src_nodata):
            m &= np.isfinite(arr)
        data[i] = arr[0]
        valid[i] = m[0]
    return data, valid


def read_coarsest(f: Path | str, max_px: int = 4_000_000) -> np.ndarray | None:
    """Band 1 of a raster at its coarsest internal overview (a COG's smallest level: one or a
    few range requests), float32 with NaN where nodata; without overviews the full band if it
    has at most ``max_px`` pixels, else None (too costly to sample).

    Raises:
        SourceError: a missing or unreadable file (named).
    """
    import rasterio
    from rasterio.errors import RasterioError

    try:
        with rasterio.open(f) as src:
            levels = src.overviews(1)
            nodata = src.nodata
            if not levels and src.width * src.height > max_px:
                return None
            # a read at the coarsest overview's size is served from that overview (nearest)
            k = levels[-1] if levels else 1
            shape = (-(-src.height // k), -(-src.width // k))
            a = src.read(1, out_shape=shape, out_dtype="float32")
    except (RasterioError, OSError) as exc:
        raise _read_error(f, exc) from None
    if nodata is not None:
        a[a == nodata] = np.nan
    return a


#: Where an S3 reader gets its keys, for messages (CDSE's key manager issues them).
S3_KEYS_HINT = ("set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the environment (CDSE: "
                "create them at https://eodata-s3keysmanager.dataspace.copernicus.eu)")


def vsis3_path(href: str) -> str:
    """``s3://bucket/key`` -> GDAL's ``/vsis3/bucket/key`` (read with the endpoint and keys of
    :func:`s3_endpoint_options`); other hrefs unchanged."""
    return "/vsis3/" + href[len("s3://"):] if href.startswith("s3://") else href


def s3_endpoint_options(endpoint: str) -> dict[str, str]:
    """GDAL options that send ``/vsis3/`` reads to an S3 endpoint other than AWS's
    (``https://eodata.dataspace.copernicus.eu``, or ``http://127.0.0.1:9000``): the host,
    HTTPS or not, path-style requests (``AWS_VIRTUAL_HOSTING=FALSE``, as CDSE requires), and
    no EC2 instance-role probe (an instance role holds no keys for another endpoint). The keys
    come from the environment (``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY``) or the AWS
    credentials file, read by GDAL itself; rasterio refuses them as options."""
    from urllib.parse import urlsplit

    u = urlsplit(endpoint if "://" in endpoint else f"https://{endpoint}")
    if u.scheme not in ("http", "https") or not u.netloc:
        raise SourceError(f"S3 endpoint {endpoint!r} is not an http(s)://host[:port] URL: fix "
                          "sentinel.stac.s3_endpoint")
    return {"AWS_S3_ENDPOINT": u.netloc, "AWS_HTTPS": "YES" if u.scheme == "https" else "NO",
            "AWS_VIRTUAL_HOSTING": "FALSE", "CPL_AWS_AUTODETECT_EC2": "NO"}


def s3_credentials_found() -> bool:
    """Whether GDAL will find S3 keys: ``AWS_ACCESS_KEY_ID`` and ``AWS_SECRET_ACCESS_KEY`` in
    the environment, or an AWS credentials file (``AWS_SHARED_CREDENTIALS_FILE``, else
    ``~/.aws/credentials``)."""
    import os

    if os.environ.get("AWS_ACCESS_KEY_ID") and os.environ.get("AWS_SECRET_ACCESS_KEY"):
        return True
    f = os.environ.get("AWS_SHARED_CREDENTIALS_FILE") or os.path.expanduser("~/.aws/credentials")
    return os.path.isfile(f)


def gdal_http_env(max_retries: int, retry_delay_s: float, timeout_s: float,
                  s3_endpoint: str = "") -> Any:
    """A ``rasterio.Env`` for reading COGs over HTTP(S) / S3: GDAL retries 429 and 5xx answers
    ``max_retries`` times (``GDAL_HTTP_MAX_RETRY``, ``GDAL_HTTP_RETRY_DELAY``), gives up on a
    stalled connection after ``timeout_s``, never lists the remote folder on open, and caches
    the blocks it read (``VSI_CACHE``, ``CPL_VSIL_CURL_CACHE_SIZE`` 256 MB) so the windows of
    one scene share its header and tiles. ``s3_endpoint``: ``/vsis3/`` reads go there
    (:func:`s3_endpoint_options`)."""
    import rasterio

    extra = s3_endpoint_options(s3_endpoint) if s3_endpoint else {}
    return rasterio.Env(
        **extra,
        GDAL_HTTP_MAX_RETRY=str(int(max_retries)),
        GDAL_HTTP_RETRY_DELAY=str(float(retry_delay_s)),
        GDAL_HTTP_TIMEOUT=str(int(max(1, timeout_s))),
        GDAL_DISABLE_READDIR_ON_OPEN="EMPTY_DIR",
        CPL_VSIL_CURL_ALLOWED_EXTENSIONS=".tif,.TIF,.tiff,.jp2",
        GDAL_HTTP_MERGE_CONSECUTIVE_RANGES="YES",
        # serial range requests go through /vsicurl/'s block cache; GDAL's default parallel
        # multi-range reads bypass it, so every block re-downloaded the tiles it shares with
        # its neighbours (benchmarks/stac_reads.py: 1.58x -> ~1.05x the overlapping tiles'
        # bytes). Blocks already run in parallel threads.
        GDAL_HTTP_MULTIRANGE="SERIAL",
        VSI_CACHE="TRUE",
        # /vsicurl/'s process-wide block cache (default 16 MB): big enough that neighbouring
        # blocks of a month re-use the COG headers and border tiles they share
        CPL_VSIL_CURL_CACHE_SIZE=str(256 * 1024 * 1024),
    )


def _read_error(f: Path | str, exc: BaseException) -> SourceError:
    """The SourceError of a band file or asset that could not be read, with the likely fix."""
    text = str(exc)
    if "://" not in str(f) and not str(f).startswith("/vsi"):
        kind = "missing" if not Path(f).exists() else "corrupt or unreadable"
        return SourceError(
            f"scene file {f} is {kind} ({text}): re-download the scene or remove its folder "
            "from the archive"
        )
    low = text.lower()
    if "aws_secret_access_key" in low or "credentials not filled" in low:
        fix = f"no S3 keys were found: {S3_KEYS_HINT}"
    elif "403" in low or "401" in low or "access denied" in low or "forbidden" in low:
        fix = ("the URL is refused (unsigned or expired? Planetary Computer assets need "
               "sentinel.stac.profile: planetary-computer, which signs them; requester-pays "
               "buckets need AWS credentials and AWS_REQUEST_PAYER=requester; CDSE's eodata "
               "needs your CDSE S3 keys in AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY)")
    elif "404" in low or "not found" in low or "does not exist" in low:
        fix = "the asset is missing on the server (the catalogue points at a file that is gone)"
    else:
        fix = ("the read failed after GDAL's retries (timeouts, 429 or 5xx answers, or a "
               "truncated file); rerun to resume: finished blocks are kept")
    return SourceError(f"asset {f} could not be read ({text}): {fix}")


# ----------------------------------------------------------------------------- writers


def write_band_tif(
    path: Path, array: np.ndarray, crs: str, transform: Any, nodata: float | None
) -> None:
    """Write one single-band Cloud-Optimized GeoTIFF atomically (GDAL's COG driver: 256 px
    deflate tiles, no overviews), so the same file serves the local archive and, over HTTP,
    the STAC catalogue (range reads of the tiles a window needs)."""
    import rasterio
    from rasterio.shutil import copy as rio_copy

    from pipeline.io.atomic import atomic_path

    h, w = array.shape
    profile = {
        "driver": "GTiff", "height": h, "width": w, "count": 1, "dtype": array.dtype.name,
        "crs": crs, "transform": transform, "nodata": nodata,
    }
    with atomic_path(path) as tmp, rasterio.MemoryFile() as mem:
        with mem.open(**profile) as dst:
            dst.write(array, 1)
        with mem.open() as src:
            rio_copy(src, tmp, driver="COG", COMPRESS="DEFLATE", BLOCKSIZE="256",
                     OVERVIEWS="NONE", PREDICTOR="YES")


def write_s2_scene(
    archive: str | Path,
    time: dt.datetime,
    tile: str,
    crs: str,
    transforms: Mapping[int, Any],
    bands: Mapping[str, Mapping[str, np.ndarray]],
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write one S2 acquisition into the archive.

    Args:
        time: acquisition time (UTC).
        tile: tile / granule id used in the folder name.
        crs: CRS of the band files.
        transforms: affine transform per native resolution (10, 20, 60 m).
        bands: ``{"L1C": {"B01": uint16 DN array, ...}, "L2A": {...}}`` at native resolution,
            DN = reflectance * 10000, 0 = no data; ``"L2A"`` may hold ``"SCL"`` (uint8 Sen2Cor
            classes at 20 m, 0 = no data).
        extra: more scene.json keys (sun angles, spacecraft, ...).

    Returns:
        The scene folder.
    """
    folder = Path(archive) / "s2" / f"{time.strftime(_TIME_FMT)}_{tile}"
    for level, arrays in bands.items():
        for b, arr in arrays.items():
            dtype = np.uint8 if b == SCL_FILE else np.uint16
            write_band_tif(
                folder / level / f"{b}.tif", np.asarray(arr, dtype), crs,
                transforms[NATIVE_RES_M[b]], 0,
            )
    meta = {"time": time.strftime("%Y-%m-%dT%H:%M:%SZ"), "tile": tile, "crs": crs,
            "products": sorted(bands), "dn_scale": 10000, "nodata": 0, **(extra or {})}
    from pipeline.io.jsonfile import write_json

    write_json(folder / SCENE_JSON, meta)
    return folder


def write_s1_scene(
    archive: str | Path,
    time: dt.datetime,
    crs: str,
    transform: Any,
    vv: np.ndarray | None,
    vh: np.ndarray | None,
    units: str = "db",
    orbit_pass: str | None = "ASCENDING",
    relative_orbit: int | None = None,
) -> Path:
    """Write one S1 GRD acquisition (float32 VV / VH, NaN = no data; None = the scene lacks that
    polarisation, e.g. a VV-only acquisition) into the archive."""
    from pipeline.io.jsonfile import write_json

    suffix = f"_{orbit_pass[:3]}" if orbit_pass else ""
    folder = Path(archive) / "s1" / f"{time.strftime(_TIME_FMT)}{suffix}"
    for name, arr in (("VV", vv), ("VH", vh)):
        if arr is None:
            continue
        write_band_tif(folder / f"{name}.tif", np.asarray(arr, np.float32), crs, transform,
                       float("nan"))
    meta: dict[str, Any] = {"time": time.strftime("%Y-%m-%dT%H:%M:%SZ"), "crs": crs,
                            "units": units, "orbit_pass": orbit_pass}
    if relative_orbit is not None:
        meta["relative_orbit"] = int(relative_orbit)
    write_json(folder / SCENE_JSON, meta)
    return folder


def month_fingerprint(archive: str | Path, month: str) -> str:
    """Fingerprint of the scenes the archive holds for ``month`` (folder names, and the size and
    mtime of every file in them): part of the block ledger's key, so scenes added to or replaced
    in the archive refetch that month instead of resuming."""
    from pipeline.io.digest import tree_stat_digest

    files = [f for sensor in ("s2", "s1")
             for folder in _month_folders(Path(archive), sensor, month)
             for f in sorted(p for p in folder.rglob("*") if p.is_file())]
    return tree_stat_digest(files, archive)
