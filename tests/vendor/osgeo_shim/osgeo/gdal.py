"""``gdal.Open(...).ReadAsArray()`` through rasterio (see the package docstring)."""

from __future__ import annotations

from typing import Any

import numpy as np
import rasterio

GA_ReadOnly = 0


class _Dataset:
    def __init__(self, path: str) -> None:
        self.path = path

    def ReadAsArray(self) -> np.ndarray:
        """(bands, h, w) like GDAL's (a single band comes back as (h, w))."""
        with rasterio.open(self.path) as ds:
            arr: np.ndarray = ds.read()
        return arr[0] if arr.shape[0] == 1 else arr


def Open(path: str, access: Any = GA_ReadOnly) -> _Dataset:
    return _Dataset(str(path))
