"""Fake Earth Engine REST server for offline tests and benchmarks (plus AOI factories)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from pipeline.grid import Footprints, compute_footprints


def fusu_like_footprints(
    n_rows: int,
    n_cols: int,
    keep: Callable[[int, int], bool] | None = None,
    spacing_m: float = 256.0,
    patch_m: float = 256.0,
    size_px: int = 128,
    epsg: int = 32649,
    origin: tuple[float, float] = (650003.7, 3795011.2),
) -> Footprints:
    """Footprints of a FUSU-like lattice of patches (512 px x 0.5 m = 256 m, 128 px footprints).

    ``keep(i, j)`` selects lattice positions (default: all, i.e. a contiguous AOI).
    """
    x0, y0 = origin
    pb = [
        (
            x0 + j * spacing_m,
            y0 - i * spacing_m - patch_m,
            x0 + j * spacing_m + patch_m,
            y0 - i * spacing_m,
        )
        for i in range(n_rows)
        for j in range(n_cols)
        if keep is None or keep(i, j)
    ]
    return compute_footprints(np.array(pb, dtype=np.float64), epsg, size_px)
