"""Monthly compositing math shared by the offline Sentinel sources (pure numpy, no I/O).

The recipe mirrors the Earth Engine path (docs/sources.md):

* S2: a pixel of an acquisition is *clear* when every band is valid and its s2cloudless cloud
  probability is ``<= threshold`` (optionally also not a projected cloud shadow); the monthly
  value is the mean of the clear observations, the count their number (uint8, saturating at
  255). No clear observation -> NaN and count 0, never zeros.
* S1: backscatter arrives in dB; ``linear`` averages ``10**(dB/10)`` and converts back
  (``10*log10``), ``db`` is a plain dB mean (what a naive ``ee.ImageCollection.mean()`` of the
  dB collection gives).

Arrays are ``(band, y, x)``; stacks of acquisitions ``(n, band, y, x)``. Reflectance is float32
(DN / 10000), backscatter float32 dB, NaN = no data.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from scipy import ndimage


def db_to_linear(db: np.ndarray) -> np.ndarray:
    """Backscatter dB -> linear power (float64 for accurate averaging); NaN stays NaN."""
    return np.power(10.0, np.asarray(db, dtype=np.float64) / 10.0)


def linear_to_db(lin: np.ndarray) -> np.ndarray:
    """Linear power -> dB as float32; non-positive power -> NaN."""
    lin = np.asarray(lin, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = 10.0 * np.log10(np.where(lin > 0, lin, np.nan))
    return out.astype(np.float32)


def cloud_clear_mask(
    probability: np.ndarray, threshold_pct: float, valid: np.ndarray | None = None
) -> np.ndarray:
    """Clear-sky mask from an s2cloudless probability map.

    Args:
        probability: (h, w) float cloud probability in [0, 1] (NaN = not computable).
        threshold_pct: pixels with ``probability * 100 > threshold_pct`` are cloudy (GEE recipe:
            ``S2_CLOUD_PROBABILITY.probability > threshold``).
        valid: optional (h, w) bool: pixels with every band present.

    Returns:
        (h, w) bool, True = clear and valid.
    """
    p = np.asarray(probability)
    clear = np.isfinite(p) & ~(p * 100.0 > threshold_pct)
    if valid is not None:
        clear &= valid
    return clear


def postprocess_cloud_mask(
    probability: np.ndarray, threshold_pct: float, average_over: int, dilation_size: int,
    valid: np.ndarray | None = None,
) -> np.ndarray:
    """Cloudy pixels (bool (h, w)) from a cloud probability with s2cloudless' own
    post-processing (``S2PixelCloudDetector.get_mask_from_prob``: the probability averaged over
    a disk of radius ``average_over`` px, thresholded, then dilated by a disk of radius
    ``dilation_size`` px; 0 = skip that step). With both 0 this is the plain threshold of
    :func:`cloud_clear_mask`.

    Args:
        probability: (h, w) float in [0, 1], NaN = no data (counted as probability 0 in the
            average: only pixels within ``average_over`` px of a data edge are affected).
        threshold_pct: cloudy where the (averaged) probability * 100 > threshold_pct.
        average_over, dilation_size: disk radii (px).
        valid: (h, w) bool; invalid pixels are never cloudy (default: finite probability).

    Returns:
        (h, w) bool cloud mask (dilated clouds may reach into invalid pixels' neighbours only
        where those are valid).
    """
    p = np.asarray(probability, dtype=np.float32)
    ok = np.isfinite(p) if valid is None else (np.asarray(valid, dtype=bool) & np.isfinite(p))
    if average_over <= 0 and dilation_size <= 0:
        return ok & (p * 100.0 > threshold_pct)
    from s2cloudless import S2PixelCloudDetector

    det = S2PixelCloudDetector(threshold=float(threshold_pct) / 100.0,
                               average_over=int(average_over) or None,
                               dilation_size=int(dilation_size) or None)
    filled = np.where(ok, p, np.float32(0.0)).astype(np.float32)
    cloudy = det.get_mask_from_prob(filled[None])[0].astype(bool)
    return cloudy & ok


def project_shadows(
    cloud: np.ndarray,
    nir: np.ndarray,
    sun_azimuth_deg: float,
    res_m: float,
    max_distance_m: float = 1000.0,
    dark_nir: float = 0.15,
    water: np.ndarray | None = None,
) -> np.ndarray:
    """Cloud shadows: dark-NIR pixels inside the clouds' projection away from the sun.

    Same idea as the Earth Engine s2cloudless tutorial: clouds are shifted along the direction
    opposite to the sun (``sun_azimuth_deg``, clockwise from north) for every distance up to
    ``max_distance_m``; shadows are projected pixels whose NIR (B8) reflectance is below
    ``dark_nir`` and that are not water.

    Args:
        cloud: (h, w) bool cloud mask.
        nir: (h, w) float NIR reflectance (NaN allowed).
        sun_azimuth_deg: mean solar azimuth (deg from north, clockwise).
        res_m: pixel size (m).
        max_distance_m: maximum cloud-shadow distance (m).
        dark_nir: NIR threshold below which a pixel can be shadow.
        water: optional (h, w) bool water mask (never shadow).

    Returns:
        (h, w) bool shadow mask (clouds themselves excluded).
    """
    cloud = np.asarray(cloud, dtype=bool)
    if not cloud.any():
        return np.zeros_like(cloud)
    # shadow direction: away from the sun (azimuth + 180), in image coordinates (x right, y down)
    az = math.radians(sun_azimuth_deg + 180.0)
    dx, dy = math.sin(az), -math.cos(az)
    n_steps = max(1, round(max_distance_m / res_m))
    proj = np.zeros_like(cloud)
    step = max(1, n_steps // 32)
    for k in range(0, n_steps + 1, step):
        sx, sy = round(dx * k), round(dy * k)
        proj |= ndimage.shift(cloud, (sy, sx), order=0, mode="constant", cval=False)
    dark = np.nan_to_num(np.asarray(nir, dtype=np.float64), nan=np.inf) < dark_nir
    shadow = proj & dark & ~cloud
    if water is not None:
        shadow &= ~np.asarray(water, dtype=bool)
    return shadow


@dataclass
class MeanAccumulator:
    """Running masked mean over acquisitions of one month, band by band.

    ``add(values, ok, counted=None)`` with values (b, h, w), ``ok`` (h, w) or per band
    (b, h, w) bool and ``counted`` (h, w) bool, the observation flag of the count (default: any
    band ok). A band's mean uses the observations where *that band* is ok (and finite), so a
    pixel missing one band (VH of a VV-only scene, B1 outside its footprint) keeps the others.
    ``result()`` returns (mean float32 (b, h, w) NaN where the band has no observation, count
    uint8 (h, w) saturating at 255). ``space`` = ``"linear"`` averages dB inputs in linear power
    and returns dB.
    """

    bands: int
    height: int
    width: int
    space: Literal["identity", "linear"] = "identity"
    _sum: np.ndarray = field(init=False, repr=False)
    _n: np.ndarray = field(init=False, repr=False)
    _count: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._sum = np.zeros((self.bands, self.height, self.width), np.float64)
        self._n = np.zeros((self.bands, self.height, self.width), np.uint16)
        self._count = np.zeros((self.height, self.width), np.int32)

    def add(self, values: np.ndarray, ok: np.ndarray, counted: np.ndarray | None = None
            ) -> None:
        v = np.asarray(values)
        okb = np.asarray(ok, dtype=bool)
        if okb.ndim == 2:
            okb = np.broadcast_to(okb[None], v.shape)
        okb = okb & np.isfinite(v)
        if self.space == "linear":
            v = db_to_linear(v)
        self._sum += np.where(okb, v, 0.0)
        self._n += okb
        seen = okb.any(axis=0)
        self._count += seen if counted is None else (np.asarray(counted, dtype=bool) & seen)

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        n = self._n
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = self._sum / np.where(n > 0, n, 1)
        mean = np.where(n > 0, mean, np.nan)
        out = linear_to_db(mean) if self.space == "linear" else mean.astype(np.float32)
        return out, np.minimum(self._count, 255).astype(np.uint8)


def masked_mean(stack: np.ndarray, ok: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean over acquisitions of the observations flagged ``ok`` (and finite).

    Args:
        stack: (n, b, h, w) float values.
        ok: (n, h, w) bool.

    Returns:
        (mean float32 (b, h, w) NaN where no observation, count uint8 (h, w)).
    """
    n, b, h, w = stack.shape
    acc = MeanAccumulator(b, h, w)
    for i in range(n):
        acc.add(stack[i], ok[i])
    return acc.result()


def s1_mean(stack_db: np.ndarray, mode: Literal["linear", "db"] = "linear") -> tuple[
    np.ndarray, np.ndarray
]:
    """Monthly S1 mean of (n, 2, h, w) dB stacks (NaN = no data) -> (dB float32, count uint8)."""
    n, b, h, w = stack_db.shape
    acc = MeanAccumulator(b, h, w, space="linear" if mode == "linear" else "identity")
    for i in range(n):
        acc.add(stack_db[i], np.ones((h, w), bool))
    return acc.result()
