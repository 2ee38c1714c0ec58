"""Small FUSU releases in the two published layouts (tests of the importer).

* :func:`write_release`: the dataset README's layout (yuanshuai0914/FUSU 317cc6b):
  ``im1/<r>_<c>.png``, ``im1_label/``, ``im2/``, ``im2_label/`` and the Sentinel months
  ``A/{11,12}/<r>_<c>_A_<m>.png``, ``B/{1,2}/<r>_<c>_B_<m>.png`` (128 x 128 x 14: 12 S2 bands as
  Earth Engine DN, then VV, VH in dB; written as TIFF content under the README's ``.png``
  names, which GDAL reads by content).
* :func:`write_official`: the official code's layout: ``{train,val,test}/{im1,im2,label1,
  label2,label_bin}/<r>_<c>.png`` and ``Times/<r>_<c>_<k>.tif``.

Values are known functions of the patch and month (:func:`s2_dn`, :func:`s1_db`) so a test can
check a scale, band order or month order against them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.hr.change import binary_change

HR_PX = 64
FP = 128
ROWS, COLS = range(3, 9), range(250, 256)  # a 6 x 6 lattice, names 3_250 .. 8_255
MONTHS = (("A", 11), ("A", 12), ("B", 1), ("B", 2))


def labels(r: int, c: int) -> tuple[np.ndarray, np.ndarray]:
    """(T1, T2) uint8 class maps of patch (r, c): four quadrants of classes, T2 changes the
    top-left quadrant of every third patch; a no-data (255) strip on the last row."""
    rng = np.random.default_rng(r * 1000 + c)
    q = rng.integers(1, 18, size=4)
    t1 = np.zeros((HR_PX, HR_PX), np.uint8)
    h = HR_PX // 2
    t1[:h, :h], t1[:h, h:], t1[h:, :h], t1[h:, h:] = q
    t1[-1, :] = 255
    t2 = t1.copy()
    if (r + c) % 3 == 0:
        t2[:h, :h] = (q[0] % 17) + 1
    return t1, t2


def s2_dn(r: int, c: int, t: int) -> np.ndarray:
    """(12, FP, FP) float32 DN: band b = 1000 (b + 1) + 10 t + (r + c) % 7; 0 (masked) in the
    top 3 rows."""
    b = np.arange(12, dtype=np.float32)[:, None, None]
    v = np.broadcast_to(1000.0 * (b + 1) + 10.0 * t + (r + c) % 7, (12, FP, FP)).copy()
    v[:, :3, :] = 0
    return v.astype(np.float32)


def s1_db(r: int, c: int, t: int) -> np.ndarray:
    """(2, FP, FP) float32 dB: VV = -8 - 0.5 t, VH = VV - 7."""
    vv = np.full((FP, FP), -8.0 - 0.5 * t, np.float32)
    return np.stack([vv, vv - 7.0])


def _tif(path: Path, a: np.ndarray) -> None:
    """A plain (not georeferenced) multi-band TIFF, as the release's Sentinel files are."""
    import warnings

    import rasterio
    from rasterio.errors import NotGeoreferencedWarning

    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(path, "w", driver="GTiff", width=a.shape[2], height=a.shape[1],
                           count=a.shape[0], dtype=a.dtype.name) as dst:
            dst.write(a)


def _png(path: Path, a: np.ndarray) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(a).save(path)


def _hr(r: int, c: int, date: int) -> np.ndarray:
    rng = np.random.default_rng([r, c, date])
    return rng.integers(0, 256, size=(HR_PX, HR_PX, 3), dtype=np.uint8)


def write_release(root: Path, sentinel: bool = True) -> Path:
    """The README layout for one city folder ``root`` (see module doc); returns ``root``."""
    for r in ROWS:
        for c in COLS:
            n = f"{r}_{c}"
            t1, t2 = labels(r, c)
            _png(root / "im1" / f"{n}.png", _hr(r, c, 1))
            _png(root / "im2" / f"{n}.png", _hr(r, c, 2))
            _png(root / "im1_label" / f"{n}.png", t1)
            _png(root / "im2_label" / f"{n}.png", t2)
            if sentinel:
                for t, (y, m) in enumerate(MONTHS):
                    cube = np.concatenate([s2_dn(r, c, t), s1_db(r, c, t)])
                    _tif(root / y / str(m) / f"{n}_{y}_{m}.png", cube)
    return root


def write_official(root: Path, splits: dict[str, list[tuple[int, int]]]) -> Path:
    """The official code's layout with the given patches per split (label_bin by the
    project's change rule, 1 = changed, ignored pixels 0)."""
    for s, cells in splits.items():
        for r, c in cells:
            n = f"{r}_{c}"
            t1, t2 = labels(r, c)
            b = binary_change(t1, t2)
            _png(root / s / "im1" / f"{n}.png", _hr(r, c, 1))
            _png(root / s / "im2" / f"{n}.png", _hr(r, c, 2))
            _png(root / s / "label1" / f"{n}.png", t1)
            _png(root / s / "label2" / f"{n}.png", t2)
            _png(root / s / "label_bin" / f"{n}.png", np.where(b == 1, 1, 0).astype(np.uint8))
            for t in range(len(MONTHS)):
                _tif(root / s / "Times" / f"{n}_{t + 1}.tif",
                     np.concatenate([s2_dn(r, c, t), s1_db(r, c, t)]))
    return root
