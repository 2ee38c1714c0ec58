"""The band catalogue: the Sentinel bands of every mosaic, in stored order, with wavelengths.

Band order and units (fixed for the whole project):
    S2: B1, B2, B3, B4, B5, B6, B7, B8, B8A, B9, B11, B12 (12 bands; FUSU Table 10 order),
        surface reflectance (L2A DN / 10000; L1C fallback: TOA / 10000).
    S1: VV, VH (2 bands), backscatter in dB.
"""

from __future__ import annotations

S2_BANDS: tuple[str, ...] = (
    "B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9", "B11", "B12",
)
#: Central wavelengths (nm) of the S2 bands above (Sentinel-2A MSI).
S2_WAVELENGTHS_NM: tuple[float, ...] = (
    442.7, 492.4, 559.8, 664.6, 704.1, 740.5, 782.8, 832.8, 864.7, 945.1, 1613.7, 2202.4,
)
#: Native resolution (m) of each S2 band.
S2_NATIVE_RES_M: tuple[int, ...] = (60, 10, 10, 10, 20, 20, 20, 10, 20, 60, 20, 20)
S1_BANDS: tuple[str, ...] = ("VV", "VH")
#: Sentinel-1 C-band centre wavelength (nm) = c / 5.405 GHz.
S1_WAVELENGTH_NM: float = 55465763.0
ALL_BANDS: tuple[str, ...] = S2_BANDS + S1_BANDS
#: Central wavelength (nm) of every band of :data:`ALL_BANDS`.
ALL_WAVELENGTHS_NM: tuple[float, ...] = (*S2_WAVELENGTHS_NM, S1_WAVELENGTH_NM, S1_WAVELENGTH_NM)
