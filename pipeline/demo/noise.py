"""Deterministic value noise for the synthetic demo (a function of map coordinates, so both
dates and every window show the same ground)."""

from __future__ import annotations

import numpy as np

# --------------------------------------------------------------------------- noise helpers


def hash_u32(ix: np.ndarray, iy: np.ndarray, salt: int) -> np.ndarray:
    """Integer hash of lattice coordinates -> uint32 (deterministic, platform independent)."""
    a = (np.asarray(ix, dtype=np.int64) & 0xFFFFFFFF).astype(np.uint32)
    b = (np.asarray(iy, dtype=np.int64) & 0xFFFFFFFF).astype(np.uint32)
    h = a * np.uint32(0x27D4EB2D) ^ b * np.uint32(0x165667B1) ^ np.uint32(salt & 0xFFFFFFFF)
    h ^= h >> np.uint32(15)
    h *= np.uint32(0x85EBCA6B)
    h ^= h >> np.uint32(13)
    h *= np.uint32(0xC2B2AE35)
    h ^= h >> np.uint32(16)
    return h


def value_noise(xs: np.ndarray, ys: np.ndarray, scale_m: float, salt: int) -> np.ndarray:
    """Smooth value noise on a lattice of ``scale_m`` metres, sampled at ``ys`` x ``xs``.

    Args:
        xs: (W,) x coordinates (m); ys: (H,) y coordinates (m), any consistent frame.
    Returns:
        (H, W) float32 in [0, 1). Depends only on coordinates, so shifted grids agree.
    """

    def axis(c: np.ndarray) -> tuple[np.ndarray, np.ndarray, int, int]:
        g = np.asarray(c, dtype=np.float64) / scale_m
        i0 = np.floor(g).astype(np.int64)
        f = (g - i0).astype(np.float32)
        f = f * f * (3.0 - 2.0 * f)
        return i0, f, int(i0.min()), int(i0.max()) + 2

    ix0, fx, xmin, xmax = axis(xs)
    iy0, fy, ymin, ymax = axis(ys)
    lat = hash_u32(np.arange(xmin, xmax)[None, :], np.arange(ymin, ymax)[:, None], salt)
    v = (lat >> np.uint32(8)).astype(np.float32) * np.float32(1.0 / 16777216.0)
    jy = iy0 - ymin
    rows = v[jy] * (1.0 - fy)[:, None] + v[jy + 1] * fy[:, None]
    jx = ix0 - xmin
    out = np.empty((len(iy0), len(ix0)), dtype=np.float32)  # C order (views below rely on it)
    np.multiply(rows[:, jx], 1.0 - fx, out=out)
    out += rows[:, jx + 1] * fx
    return out


def point_noise(x: float, y: float, scale_m: float, salt: int) -> float:
    return float(value_noise(np.array([x]), np.array([y]), scale_m, salt)[0, 0])


