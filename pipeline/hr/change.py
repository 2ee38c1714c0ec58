"""Binary and from-to (semantic) change from two label rasters (pure functions).

Inputs are the T1 and T2 label rasters of one patch: uint8 ``(h, w)`` on the same grid,
class values ``0..n-1`` (n = ``schema.n_classes`` = 18 for FUSU, 0 = background) and
255 = no data.

A pixel is **valid** when neither date is no data (255) and, with ``ignore_background``
(``change.ignore_background``, default true), neither date is background (0).

Encodings (written by :mod:`stages.change`):

* **binary change** ``bin``: uint8, ``1`` where ``y1 != y2``, ``0`` where ``y1 == y2``,
  ``255`` where the pixel is not valid.
* **from-to change** ``fromto``: uint16, ``y1 * n + y2`` (n = 18 for FUSU, so the code of
  "Cropland (4) -> Residential land (3)" is ``4 * 18 + 3 = 75``; decode with
  ``y1, y2 = divmod(code, 18)``), ``65535`` where the pixel is not valid. Unchanged pixels
  keep their code ``y * 18 + y`` so the raster also carries the no-change class.

``change_fraction`` = changed pixels / valid pixels (NaN when a patch has no valid pixel).
"""

from __future__ import annotations

import numpy as np

BIN_NODATA = 255
FROMTO_NODATA = 65535
#: colour table for binary change rasters: unchanged black, changed white, ignored transparent
BIN_COLORMAP: dict[int, tuple[int, int, int, int]] = {
    0: (0, 0, 0, 255),
    1: (255, 255, 255, 255),
    BIN_NODATA: (128, 128, 128, 0),
}


def valid_mask(
    y1: np.ndarray,
    y2: np.ndarray,
    ignore_background: bool = True,
    nodata: int = 255,
    background: int = 0,
) -> np.ndarray:
    """Bool ``(h, w)``: True where both dates are labelled (see module docstring).

    Raises:
        ValueError: the two labels differ in shape.
    """
    if y1.shape != y2.shape:
        raise ValueError(f"T1 label shape {y1.shape} != T2 label shape {y2.shape}")
    valid = (y1 != nodata) & (y2 != nodata)
    if ignore_background:
        valid &= (y1 != background) & (y2 != background)
    return valid


def binary_change(
    y1: np.ndarray,
    y2: np.ndarray,
    ignore_background: bool = True,
    nodata: int = 255,
    background: int = 0,
) -> np.ndarray:
    """uint8 ``(h, w)``: 1 changed, 0 unchanged, 255 ignored (see module docstring)."""
    valid = valid_mask(y1, y2, ignore_background, nodata, background)
    # whole-array operations: boolean indexing copied the valid pixels out and back (2.5x)
    return np.where(valid, (y1 != y2).view(np.uint8), np.uint8(BIN_NODATA))


def fromto_change(
    y1: np.ndarray,
    y2: np.ndarray,
    n_classes: int = 18,
    ignore_background: bool = True,
    nodata: int = 255,
    background: int = 0,
) -> np.ndarray:
    """uint16 ``(h, w)``: ``y1 * n_classes + y2``, 65535 ignored (see module docstring).

    Raises:
        ValueError: a valid pixel holds a value >= ``n_classes`` (the code would be ambiguous).
    """
    if n_classes * n_classes > FROMTO_NODATA:
        raise ValueError(f"n_classes={n_classes} too large for uint16 from-to codes")
    valid = valid_mask(y1, y2, ignore_background, nodata, background)
    if np.any(valid & ((y1 >= n_classes) | (y2 >= n_classes))):
        raise ValueError(f"label values must be < n_classes={n_classes} (or nodata {nodata})")
    code = y1.astype(np.uint16)
    code *= np.uint16(n_classes)
    code += y2.astype(np.uint16)
    return np.where(valid, code, np.uint16(FROMTO_NODATA))


def decode_fromto(code: np.ndarray, n_classes: int = 18) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of :func:`fromto_change` for valid codes: ``(y1, y2)``."""
    return np.divmod(code, n_classes)


def change_stats(bin_change: np.ndarray) -> dict[str, float | int]:
    """``changed_px``, ``valid_px`` and ``change_fraction`` (NaN if no valid pixel)."""
    changed = int(np.count_nonzero(bin_change == 1))
    valid = int(np.count_nonzero(bin_change != BIN_NODATA))
    frac = changed / valid if valid else float("nan")
    return {"changed_px": changed, "valid_px": valid, "change_fraction": frac}
