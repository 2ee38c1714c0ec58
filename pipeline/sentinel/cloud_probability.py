"""Cloud probability of Sentinel-2 L1C pixels: s2cloudless (the LightGBM model of
``S2PixelCloudDetector(all_bands=False)``), per pixel as Earth Engine's S2_CLOUD_PROBABILITY
computes it, or per cell of a coarser grid (``sentinel.cloud_grid_factor``). Used by the one
compositor of the scene sources (:mod:`pipeline.sentinel.compositor`)."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

#: s2cloudless model input bands (all_bands=False), in the model's order.
S2CLOUDLESS_BANDS: tuple[str, ...] = (
    "B01", "B02", "B04", "B05", "B08", "B8A", "B09", "B10", "B11", "B12",
)


class CloudDetector:
    """Thread-safe wrapper of s2cloudless (model loaded once, lazily)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._det: Any = None

    def probability(self, bands: np.ndarray, valid: np.ndarray) -> np.ndarray:
        """Cloud probability of (10, h, w) L1C TOA reflectances in :data:`S2CLOUDLESS_BANDS`
        order; float32 (h, w) in [0, 1], NaN where ``valid`` (h, w) is False."""
        out = np.full(bands.shape[1:], np.nan, np.float32)
        if not valid.any():
            return out
        px = bands[:, valid].T  # (n, 10)
        with self._lock:
            if self._det is None:
                from s2cloudless import S2PixelCloudDetector

                self._det = S2PixelCloudDetector(all_bands=False)
            prob = self._det.get_cloud_probability_maps(px[None, :, None, :])
        out[valid] = prob[0, :, 0]
        return out

    def cell_probability(
        self, bands: np.ndarray, valid: np.ndarray, need: np.ndarray, factor: int
    ) -> tuple[np.ndarray, int]:
        """Cloud probability on a ``factor`` x ``factor`` cell grid (``cloud_grid_factor``):
        the classifier runs once per cell, on the mean of the cell's valid pixels, and every
        pixel takes its cell's value (nearest upsampling).

        ``bands`` (10, h, w) float32 TOA reflectance, ``valid`` / ``need`` (h, w) bool; the
        window's upper-left pixel must be a cell corner (cells are anchored at the frame's
        origin, so a cell's mean never depends on the block plan); a last partial row or
        column of cells holds the pixels there are (the frame's edge). Returns float32 (h, w)
        in [0, 1] (NaN outside the cells holding a ``need`` pixel, and where not ``valid``)
        and the number of cells classified.
        """
        f = int(factor)
        h, w = valid.shape
        ch, cw = -(-h // f), -(-w // f)
        pad = ((0, ch * f - h), (0, cw * f - w))
        okp = np.pad(valid, pad)
        n = okp.reshape(ch, f, cw, f).sum(axis=(1, 3))
        cells = np.pad(need & valid, pad).reshape(ch, f, cw, f).any(axis=(1, 3)) & (n > 0)
        vals = np.pad(np.where(valid, bands, np.float32(0.0)), ((0, 0), *pad))
        sums = vals.reshape(len(bands), ch, f, cw, f).sum(axis=(2, 4), dtype=np.float64)
        means = (sums / np.maximum(n, 1)).astype(np.float32)
        pc = self.probability(means, cells)
        out = np.repeat(np.repeat(pc, f, axis=0), f, axis=1)[:h, :w]
        return np.where(valid, out, np.float32(np.nan)).astype(np.float32), int(cells.sum())
