"""PNG files: the FUSU export's images and label PNGs (8-bit, optional palette) and the QA
report's matplotlib figures. Written atomically; no georeferencing side files.
"""

from __future__ import annotations

import io as _io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.io.atomic import write_bytes_atomic


def write_png(
    path: str | Path,
    array: np.ndarray,
    palette: Mapping[int, Sequence[int]] | None = None,
) -> None:
    """Write an 8-bit PNG atomically.

    Args:
        array: ``(3, h, w)`` / ``(h, w, 3)`` uint8 RGB, or ``(h, w)`` uint8 single band.
        palette: for single-band images, ``{value: (r, g, b[, a])}`` written as the PNG palette
            (mode ``P``); pixel values are kept as they are (class ids).
    """
    from PIL import Image

    a = np.asarray(array)
    if a.ndim == 3 and a.shape[0] in (3, 4) and a.shape[-1] not in (3, 4):
        a = np.moveaxis(a, 0, -1)
    a = np.ascontiguousarray(a.astype(np.uint8, copy=False))
    if a.ndim == 3:
        img = Image.fromarray(a[..., :3], mode="RGB")
    elif palette is not None:
        img = Image.fromarray(a, mode="L").convert("P")
        img.putdata(a.ravel().tolist())  # keep the raw values as palette indices
        pal = np.zeros((256, 3), np.uint8)
        for v, rgb in palette.items():
            pal[int(v)] = [int(c) for c in list(rgb)[:3]]
        img.putpalette(pal.ravel().tolist())
    else:
        img = Image.fromarray(a, mode="L")
    buf = _io.BytesIO()
    img.save(buf, format="PNG", optimize=False)
    write_bytes_atomic(path, buf.getvalue())


def write_int_label_tiff(path: str | Path, array: np.ndarray) -> None:
    """A signed 32-bit single-band TIFF (PIL mode ``I``) at ``path``, whatever its extension,
    atomically: PIL opens it by content, so a loader that expects ``<id>.png`` reads it, with
    negative values (an ignore index of -1) intact."""
    from PIL import Image

    from pipeline.io.atomic import atomic_path

    with atomic_path(path) as tmp:
        Image.fromarray(np.asarray(array, dtype=np.int32)).save(tmp, format="TIFF",
                                                                 compression="tiff_deflate")


def save_figure(fig: Any, path: str | Path, dpi: float | None = None) -> None:
    """Save a matplotlib figure as PNG (at ``dpi``, default the figure's own, on white) to
    ``path`` whatever its suffix (atomic temporaries have none), then close it."""
    import matplotlib.pyplot as plt

    fig.savefig(path, format="png", dpi=dpi or fig.dpi, facecolor="white")
    plt.close(fig)
