"""Patch GeoTIFFs: the tiled, compressed, georeferenced files of HR patches, labels and change
masks (one writer, one reader), plus the two other GeoTIFF products the pipeline writes (the
demo's RGB scenes, written window by window, and the FUSU export's per-month Sentinel files).

Conventions: arrays are ``(band, y, x)`` in the stored dtype; HR patches uint8 RGB with nodata 0
(or an internal mask), labels uint8 (0..17, 255 = no data, colour table), binary change uint8
(0/1, 255 = ignored), from-to change uint16 (65535 = ignored). CRS strings are what
``rasterio.crs.CRS.to_string()`` gives (e.g. ``"EPSG:32649"``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from affine import Affine
from rasterio.crs import CRS
from rasterio.enums import ColorInterp
from rasterio.errors import NotGeoreferencedWarning, RasterioIOError
from rasterio.windows import Window

from pipeline.errors import InputError, MissingInputError, WriteError
from pipeline.io.atomic import atomic_path

# Patches are read, rasterized and written on several threads, and warnings.catch_warnings()
# is not thread-safe before Python 3.14 (one thread's exit restores the filters another
# thread saved): rasterio's own catch_warnings around its in-memory rasters (rasterize) then
# lets through a spurious "Dataset has no geotransform" (the transform is set right after).
# So the one filter these reads and writes need is installed process-wide, before threads
# start: rasterio's NotGeoreferencedWarning about datasets it creates (a patch always carries
# its transform; read_patch(require_crs=True) refuses one without CRS).


def quiet_rasterio_geotransform_warning() -> None:
    """Ignore rasterio's NotGeoreferencedWarning about the datasets it creates (idempotent;
    called at import and by the HR drivers before their threads start, since a harness such as
    pytest may restore the filters between import and use)."""
    warnings.filterwarnings("ignore", category=NotGeoreferencedWarning,
                            module=r"rasterio(\.features)?$")


quiet_rasterio_geotransform_warning()

#: Creation options of every patch GeoTIFF (block size is chosen per patch, see below).
#: Deflate at level 1: on a 512 px RGB patch GDAL 3.10 compresses it 5-6x faster than the
#: default level 6 for files about 9 % larger (measured in ``benchmarks.hr_stages``); deflate
#: stays readable by every TIFF reader (PIL, tifffile, libtiff, GDAL), unlike ZSTD.
PATCH_PROFILE: dict[str, Any] = {
    "driver": "GTiff",
    "tiled": True,
    "compress": "deflate",
    "zlevel": 1,
    "predictor": 2,
    "interleave": "pixel",
}


def _block_size(h: int, w: int) -> int:
    """GeoTIFF tile side: 256 for FUSU-sized patches, a multiple of 16 (TIFF rule) otherwise."""
    side = min(h, w)
    if side >= 256:
        return 256
    return max(16, (side // 16) * 16)


def write_patch_tif(
    path: str | Path,
    array: np.ndarray,
    transform: Affine,
    crs: str | CRS | None,
    nodata: float | int | None,
    colormap: Mapping[int, Sequence[int]] | None = None,
    mask: np.ndarray | None = None,
) -> Path:
    """Write one patch as a tiled, deflate-compressed, georeferenced GeoTIFF, atomically.

    Args:
        path: output ``.tif`` path (parent folders are created).
        array: ``(bands, h, w)`` array (a 2-D ``(h, w)`` array is treated as one band); its
            dtype is kept (uint8 for HR RGB and labels, uint16 for from-to change).
        transform: affine pixel -> CRS transform of the patch's upper-left corner.
        crs: CRS of ``transform`` (e.g. ``"EPSG:32649"``).
        nodata: the no-data value stored in the file (e.g. 0 for HR RGB, 255 for labels,
            65535 for from-to change) or None.
        colormap: optional colour table ``{value: (r, g, b[, a])}`` applied to band 1 (single
            band uint8/uint16 only), e.g. the FUSU class colours.
        mask: optional ``(h, w)`` bool validity (True = data) stored as an internal GDAL
            mask band; for files without a nodata value whose source had an alpha band or
            mask. Ignored when everything is valid.

    Returns:
        The final path. A crash never leaves a half-written file under that name.

    Raises:
        WriteError: GDAL reported an error while encoding, the disk refused the bytes (full,
            read-only), or the file reads back other bytes than were encoded (it is then
            never renamed into place).
    """
    arr = np.asarray(array)
    if arr.ndim == 2:
        arr = arr[np.newaxis]
    if arr.ndim != 3:
        raise ValueError(f"write_patch_tif({path}): expected (bands, h, w), got shape {arr.shape}")
    bands, h, w = arr.shape
    if colormap is not None and bands != 1:
        raise ValueError(f"write_patch_tif({path}): a colour table needs 1 band, got {bands}")
    block = _block_size(h, w)
    profile = dict(PATCH_PROFILE)
    profile.update(
        width=w,
        height=h,
        count=bands,
        dtype=arr.dtype.name,
        crs=CRS.from_user_input(crs) if crs is not None else None,
        transform=transform,
        nodata=nodata,
        blockxsize=block,
        blockysize=block,
    )
    if arr.dtype.kind == "f":
        profile["predictor"] = 3
    if bands == 3 and arr.dtype == np.uint8:
        profile["photometric"] = "RGB"
    final = Path(path)
    masked = mask is not None and not np.all(mask)
    with (
        rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True),
        gdal_errors() as errors,
        rasterio.MemoryFile(ext=".tif") as mem,
    ):
        # encoded in memory, then written in one piece: GDAL's many small writes and seeks
        # never touch the disk, and the write is verified byte for byte
        with mem.open(**profile) as dst:
            if colormap is not None:  # before the pixels: TIFF tags are fixed once data is written
                cmap = {int(k): tuple(int(c) for c in v) for k, v in colormap.items()}
                dst.write_colormap(1, cmap)
            dst.write(arr)
            if masked:
                dst.write_mask(np.where(np.asarray(mask, dtype=bool), 255, 0).astype(np.uint8))
        if errors:
            raise WriteError(f"GDAL could not write {final}: {errors[0]}: check the disk and "
                             "rerun")
        encoded = bytes(mem.getbuffer())
    with atomic_path(final) as tmp:
        _write_verified(tmp, final, encoded)
    return final


def _write_verified(tmp: Path, final: Path, encoded: bytes) -> None:
    """Write ``encoded`` to ``tmp`` and read it back: the file must hold exactly those bytes
    before it becomes visible under ``final`` (a short or silently failed write is a
    WriteError, never a patch that decodes to other pixels)."""
    with open(tmp, "wb") as fh:
        fh.write(encoded)
    if tmp.read_bytes() != encoded:
        raise WriteError(f"{final} was written but reads back different bytes: check the disk "
                         "(full? failing?) and rerun")


_ERRORS_LOCK = threading.Lock()
_ERRORS_USERS = 0
_ERRORS_LEVEL = logging.NOTSET


@contextlib.contextmanager
def gdal_errors() -> Iterator[list[str]]:
    """Collect the errors GDAL reports in this thread while the block runs (rasterio only logs
    some of them, e.g. failed tag or strip writes); yields the list of messages. Thread-safe:
    patches are written on several threads, each sees its own errors."""
    global _ERRORS_USERS, _ERRORS_LEVEL
    messages: list[str] = []
    me = threading.get_ident()

    class _Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            text = record.getMessage()
            if record.thread == me and "GDAL signalled an error" in text:
                messages.append(text.split("msg=", 1)[-1])

    logger = logging.getLogger("rasterio._env")
    handler = _Collect(level=logging.DEBUG)
    with _ERRORS_LOCK:
        if _ERRORS_USERS == 0:
            _ERRORS_LEVEL = logger.level
            if logger.getEffectiveLevel() > logging.INFO:
                logger.setLevel(logging.INFO)
        _ERRORS_USERS += 1
        logger.addHandler(handler)
    try:
        yield messages
    finally:
        with _ERRORS_LOCK:
            logger.removeHandler(handler)
            _ERRORS_USERS -= 1
            if _ERRORS_USERS == 0:
                logger.setLevel(_ERRORS_LEVEL)


# --------------------------------------------------------------------------- the patch reader


@dataclass(frozen=True)
class PatchRaster:
    """One patch GeoTIFF as read by :func:`read_patch`.

    Attributes:
        data: ``(bands, h, w)`` in the stored dtype, or None when only the grid was asked for.
        transform: pixel -> CRS affine of the patch's upper-left corner.
        crs: CRS string (``""`` when the file has none).
        valid: ``(h, w)`` bool, True where any band has data (nodata value, alpha or internal
            mask, as GDAL reports them); None unless asked for.
        shape: ``(h, w)`` of the patch (also when neither pixels nor mask were read).
    """

    data: np.ndarray | None
    transform: Affine
    crs: str
    valid: np.ndarray | None
    shape: tuple[int, int]

    @property
    def band1(self) -> np.ndarray:
        """``(h, w)`` first band."""
        assert self.data is not None
        return self.data[0]


def read_patch(
    path: str | Path,
    what: str = "patch raster",
    *,
    bands: Sequence[int] | str | None = None,
    data: bool = True,
    valid: bool = False,
    require_crs: bool = False,
) -> PatchRaster:
    """Read a patch GeoTIFF (HR patch, label, change mask), closing the file afterwards.

    Patch GeoTIFFs carry no sidecar files, so GDAL's sibling-directory listing and rasterio's
    dataset-sharing cache are skipped (about 20 % of the open cost of many small files).

    Args:
        path: the file.
        what: how to name it in errors, e.g. ``"AOI 'demo' T1 label"``.
        bands: 1-based bands to read (default: every band); ``"rgb"`` reads bands 1-3, or
            band 1 three times for a single-band (panchromatic) patch.
        data: read the pixels (False: grid and, with ``valid``, the mask only).
        valid: also return the validity mask.
        require_crs: a file without CRS is an error.

    Raises:
        MissingInputError: the file does not exist (also a ``FileNotFoundError``).
        InputError: it cannot be read (truncated, not a GeoTIFF) or, with ``require_crs``,
            has no CRS.
    """
    p = Path(path)
    try:
        with (
            rasterio.Env(GDAL_DISABLE_READDIR_ON_OPEN="EMPTY_DIR"),
            rasterio.open(p, sharing=False) as ds,
        ):
            if bands == "rgb":
                idx: list[int] | None = [1, 2, 3] if ds.count >= 3 else [1, 1, 1]
            else:
                idx = [int(b) for b in bands] if bands is not None else None
            arr = ds.read(idx) if data else None
            mask = None
            if valid:
                mbands = idx or [
                    i + 1 for i, ci in enumerate(ds.colorinterp) if ci != ColorInterp.alpha
                ]
                mask = np.any(ds.read_masks(mbands) > 0, axis=0)
            transform, crs, shape = ds.transform, ds.crs, (int(ds.height), int(ds.width))
    except RasterioIOError as exc:
        if not p.exists():
            raise MissingInputError(
                f"{what} {p} does not exist: rerun the rule that writes it (snakemake "
                "--cores N; delete that rule's index parquet to force it)", p
            ) from None
        raise InputError(
            f"{what} {p} cannot be read ({exc}): delete it and rerun its rule"
        ) from None
    if require_crs and not crs:
        raise InputError(f"{what} {p} has no CRS: delete it and rerun the rule that writes it")
    return PatchRaster(arr, transform, crs.to_string() if crs else "", mask, shape)


def clear_patch_tifs(folders: Sequence[str | Path]) -> int:
    """Delete ``*.tif`` files directly inside ``folders`` (stale outputs); returns the count."""
    n = 0
    for d in folders:
        folder = Path(d)
        if folder.is_dir():
            for f in folder.glob("*.tif"):
                f.unlink(missing_ok=True)
                n += 1
    return n


# --------------------------------------------------------------------------- other GeoTIFFs


def write_rgb_windows(
    path: str | Path,
    *,
    width: int,
    height: int,
    transform: Affine,
    crs: str,
    windows: Iterable[tuple[tuple[int, int, int, int], np.ndarray]],
    block_px: int = 512,
) -> None:
    """Write a 3-band uint8 RGB GeoTIFF window by window, atomically.

    Tiled (``block_px``), deflate + horizontal predictor, nodata 0, BIGTIFF if needed. Only one
    window is in memory at a time, so memory does not grow with the image size.

    Args:
        windows: ((col0, row0, w, h), (3, h, w) uint8) pairs covering the image.
    """
    profile = {
        "driver": "GTiff",
        "width": width,
        "height": height,
        "count": 3,
        "dtype": "uint8",
        "crs": crs,
        "transform": transform,
        "nodata": 0,
        "tiled": True,
        "blockxsize": block_px,
        "blockysize": block_px,
        "compress": "deflate",
        "predictor": 2,
        "zlevel": 4,
        "interleave": "pixel",
        "photometric": "RGB",
        "bigtiff": "IF_SAFER",
        "num_threads": "ALL_CPUS",
    }
    with atomic_path(path) as tmp, rasterio.open(tmp, "w", **profile) as dst:
        dst.colorinterp = (ColorInterp.red, ColorInterp.green, ColorInterp.blue)
        for (c, r, w, h), arr in windows:
            dst.write(arr, window=Window(c, r, w, h))


def write_times_tif(
    path: str | Path,
    array: np.ndarray,
    transform: Any,
    crs: str,
    band_names: Sequence[str],
    tags: Mapping[str, str] | None = None,
) -> None:
    """One month of a footprint cube as a ``(14, H, W)`` float32 GeoTIFF, NaN = no data.

    Args:
        array: (bands, H, W) float32 (S2 reflectance 0..1, S1 dB).
        transform: affine of the window's upper-left corner in ``crs``.
        band_names: band descriptions (``B1`` .. ``B12``, ``VV``, ``VH``).
        tags: dataset-level metadata tags (month, wavelengths, units).
    """
    a = np.asarray(array, np.float32)
    with atomic_path(path) as tmp, rasterio.open(
        tmp, "w", driver="GTiff", width=a.shape[2], height=a.shape[1], count=a.shape[0],
        dtype="float32", crs=crs, transform=transform, nodata=float("nan"),
        compress="deflate", predictor=3, tiled=False,
    ) as ds:
        ds.write(a)
        for i, name in enumerate(band_names, start=1):
            ds.set_band_description(i, name)
        if tags:
            ds.update_tags(**{k: str(v) for k, v in tags.items()})


def write_mosaic_vrt(
    path: str | Path, tiles: Sequence[str | Path],
    colormap: Mapping[int, Sequence[int]] | None = None,
) -> Path:
    """A GDAL VRT mosaicking single-band patch GeoTIFFs that share one CRS and pixel grid (the
    patches of one AOI), atomically; tiles are referenced relative to the VRT, nothing is
    copied, so the mosaic of a FUSU-scale AOI costs a few KB. ``colormap`` (value -> RGBA)
    becomes the VRT's colour table.

    Raises:
        InputError: no tiles, or tiles on different CRSs / resolutions / off the common grid.
    """
    import xml.etree.ElementTree as ET

    from pipeline.io.atomic import write_text_atomic

    final = Path(path)
    if not tiles:
        raise InputError(f"{final}: no tiles to mosaic")
    meta = []
    for t in tiles:
        with rasterio.open(t) as src:
            meta.append((Path(t), src.transform, src.width, src.height, src.crs,
                         src.dtypes[0], src.nodata))
    _, t0, _, _, crs0, dtype0, nodata0 = meta[0]
    res_x, res_y = t0.a, t0.e
    for p, tr, _, _, crs, dtype, _ in meta:
        if crs != crs0 or abs(tr.a - res_x) > 1e-9 or abs(tr.e - res_y) > 1e-9 or dtype != dtype0:
            raise InputError(f"{p} is not on the grid of {meta[0][0]} (CRS, resolution or dtype "
                             "differ): mosaic the AOI's tiles only")
    x0 = min(tr.c for _, tr, *_ in meta)
    y1 = max(tr.f for _, tr, *_ in meta)
    x1 = max(tr.c + w * res_x for _, tr, w, *_ in meta)
    y0 = min(tr.f + h * res_y for _, tr, _, h, *_ in meta)
    width = round((x1 - x0) / res_x)
    height = round((y0 - y1) / res_y)
    gdal_type = {"uint8": "Byte", "uint16": "UInt16", "int16": "Int16", "float32": "Float32"}
    root = ET.Element("VRTDataset", rasterXSize=str(width), rasterYSize=str(height))
    ET.SubElement(root, "SRS").text = crs0.to_wkt() if crs0 else ""
    ET.SubElement(root, "GeoTransform").text = f"{x0!r}, {res_x!r}, 0.0, {y1!r}, 0.0, {res_y!r}"
    band = ET.SubElement(root, "VRTRasterBand", dataType=gdal_type.get(dtype0, "Byte"),
                         band="1")
    if nodata0 is not None:
        ET.SubElement(band, "NoDataValue").text = repr(float(nodata0))
    if colormap:
        ET.SubElement(band, "ColorInterp").text = "Palette"
        table = ET.SubElement(band, "ColorTable")
        for v in range(max(int(k) for k in colormap) + 1):
            c = [int(x) for x in colormap.get(v, (0, 0, 0, 0))] + [255]
            ET.SubElement(table, "Entry", c1=str(c[0]), c2=str(c[1]), c3=str(c[2]),
                          c4=str(c[3]))
    for p, tr, w, h, *_ in meta:
        xoff, yoff = (tr.c - x0) / res_x, (tr.f - y1) / res_y
        if abs(xoff - round(xoff)) > 1e-6 or abs(yoff - round(yoff)) > 1e-6:
            raise InputError(f"{p} is off the pixel grid of {meta[0][0]}: not one AOI's tiles")
        src = ET.SubElement(band, "SimpleSource")
        rel = os.path.relpath(p.resolve(), final.resolve().parent)
        ET.SubElement(src, "SourceFilename", relativeToVRT="1").text = rel
        ET.SubElement(src, "SourceBand").text = "1"
        ET.SubElement(src, "SrcRect", xOff="0", yOff="0", xSize=str(w), ySize=str(h))
        ET.SubElement(src, "DstRect", xOff=str(round(xoff)), yOff=str(round(yoff)),
                      xSize=str(w), ySize=str(h))
    write_text_atomic(final, ET.tostring(root, encoding="unicode"))
    return final
