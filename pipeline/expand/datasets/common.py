"""What every foreign change-dataset reader shares: georeferencing checks, the label-shape and
change-encoding checks, image discovery and the pixel reads of one sample
(:func:`read_sample_rgb`, :func:`read_change_label`). Pixels are read through
:mod:`pipeline.io.raster`; this package only discovers files and checks them."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.errors import InputError
from pipeline.expand.adapters import change_to_binary, detect_change_encoding, no_georef_error
from pipeline.io.raster import RasterInfo, inspect_raster, label_counts, read_bands

IMG_EXT = (".tif", ".tiff", ".png", ".jpg", ".jpeg", ".bmp")
GEO_EXT = (".tif", ".tiff")


def georef(path: Path, what: str) -> RasterInfo:
    """:func:`pipeline.io.raster.inspect_raster` of a georeferenced GeoTIFF, else the error
    that says the sample cannot be placed."""
    if path.suffix.lower() not in GEO_EXT:
        raise no_georef_error(path, what)
    info = inspect_raster(path, what, georeferenced=False)
    if info.crs_id is None:
        raise no_georef_error(path, what)
    return info


def check_label_shape(label: Path, info: RasterInfo, sample: str) -> None:
    """A change label must cover the image pixel for pixel."""
    lab = inspect_raster(label, f"change label of sample {sample!r}", georeferenced=False)
    if (lab.width, lab.height) != (info.width, info.height):
        raise InputError(
            f"{label}: label of sample {sample!r} is {lab.width}x{lab.height} px but its "
            f"image is {info.width}x{info.height} px: the label must be on the image's "
            "pixel grid (same size)"
        )


def label_encoding(label: str | Path | None, info: RasterInfo, sample: str) -> str:
    """The change-label convention of a sample's label file ("" without one), auto-detected,
    after checking the label's shape against the image."""
    if not label:
        return ""
    check_label_shape(Path(label), info, sample)
    return detect_change_encoding(label_counts(label), "auto", str(label))


def images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMG_EXT)


#: Band files that make an RGB from a folder of single-band files (OSCD's imgs_1/).
_RGB_BANDS = ("B04", "B03", "B02")


def read_sample_rgb(path: str | Path, bands: tuple[int, int, int] = (1, 2, 3)) -> np.ndarray:
    """float32 (3, H, W) RGB of one sample date, in the file's own units (no scaling): bands
    ``bands`` of a raster (1-based; DynamicEarthNet's B, G, R, NIR files: (3, 2, 1); a one-band
    raster is repeated), or, for a folder of single-band files (OSCD's ``imgs_1/``), its
    B04 / B03 / B02 files.

    Raises:
        InputError: unreadable file, or a folder without B04 / B03 / B02.
    """
    p = Path(path)
    if p.is_dir():
        layers = []
        for b in _RGB_BANDS:
            hit = sorted(p.glob(f"*{b}.tif")) + sorted(p.glob(f"*{b}.TIF"))
            if not hit:
                raise InputError(f"{p}: no {b} band file (*{b}.tif): an RGB needs "
                                 f"{'/'.join(_RGB_BANDS)}")
            layers.append(read_bands(hit[0], [1])[0].astype(np.float32))
        return np.stack(layers)
    return read_bands(p, list(bands), fallback=[1, 1, 1]).astype(np.float32)


def read_change_label(path: str | Path, encoding: str) -> np.ndarray:
    """uint8 (H, W) binary change of a sample's label file: 0 no change, 1 change, 255 ignored
    (:func:`pipeline.expand.adapters.change_to_binary` with the index's ``label_encoding``)."""
    return change_to_binary(read_bands(path, [1])[0], encoding)
