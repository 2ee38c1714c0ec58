"""Synthetic Sentinel-1/2 scenes for the demo AOI (pure, deterministic; the stage writes them).

Input is a 10 m class map (FUSU values 0..17) for T1 and T2 on a grid whose upper-left corner
and size are multiples of 60 m. For every month 2-6 S2 acquisitions are simulated:

* Surface reflectance (L2A) per class as a mixture of four endmembers (green vegetation,
  water, impervious, bare soil) with realistic shapes: vegetation red edge and high NIR,
  water dark in NIR/SWIR, bright impervious surfaces; vegetation and crops follow a seasonal
  cycle (peak in July, northern hemisphere); small per-pixel texture and per-scene gain noise.
* Land use follows T1 until the change month (drawn between T1 and T2) and T2 afterwards.
* Top-of-atmosphere (L1C) = surface * transmittance + a Rayleigh-like path radiance (strongest
  in blue); water-vapour absorption darkens B09 and B10 (cirrus, 1375 nm) is ~0 over clear land.
* Clouds: smooth random opacity fields (thick cumulus) with a bright, white cloud spectrum
  (0.5-0.75 in VNIR, 0.35-0.45 in SWIR, 0.1-0.25 in B10 cirrus); cloud shadows are the cloud
  field shifted away from the sun, darkening the surface. The cloud truth is returned.
* Bands at native resolution (10/20/60 m) by area-averaging the 10 m fields.
* S1 GRD VV/VH per class (dB) with seasonal vegetation and multiplicative Gamma speckle
  (ENL 4.4).

Everything derives from one seed (``numpy.random.default_rng(seed)``).
"""

from __future__ import annotations

import calendar
import datetime as dt
import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage

from pipeline.io.scenes import L1C_FILE_BANDS, NATIVE_RES_M

# endmember spectra (surface reflectance) in L1C_FILE_BANDS order (B01..B12 incl. B10)
_VEG = np.array([.030, .035, .070, .035, .110, .270, .340, .380, .400, .130, .004, .210, .100])
_WATER = np.array([.070, .065, .055, .035, .025, .015, .012, .010, .008, .005, .001, .005, .003])
_IMP = np.array([.100, .105, .115, .125, .140, .150, .160, .170, .175, .080, .004, .210, .190])
_SOIL = np.array([.090, .100, .140, .190, .220, .240, .260, .280, .290, .120, .005, .360, .300])
_CLOUD = np.array([.62, .64, .64, .63, .64, .65, .66, .66, .66, .45, .18, .42, .30])
_PATH = np.array([.085, .065, .040, .025, .018, .012, .010, .008, .007, .004, .000, .002, .001])
# TOA transmittance: water-vapour (B09) and cirrus-band (B10) absorption of the surface signal
_TRANS = np.array([.92, .92, .93, .94, .94, .94, .94, .95, .95, .40, .25, .96, .96])
# class -> (veg, water, impervious, soil) fractions; seasonal=1 -> vegetation follows season
_MIX: dict[int, tuple[float, float, float, float, int]] = {
    0: (0.3, 0.0, 0.2, 0.5, 0),
    1: (0.05, 0.0, 0.9, 0.05, 0),
    2: (0.0, 1.0, 0.0, 0.0, 0),
    3: (0.2, 0.0, 0.75, 0.05, 0),
    4: (0.85, 0.0, 0.0, 0.15, 1),
    5: (0.3, 0.0, 0.5, 0.2, 1),
    6: (0.05, 0.0, 0.05, 0.9, 0),
    7: (0.05, 0.0, 0.9, 0.05, 0),
    8: (0.7, 0.0, 0.0, 0.3, 1),
    9: (0.65, 0.1, 0.2, 0.05, 1),
    10: (0.25, 0.0, 0.7, 0.05, 0),
    11: (0.1, 0.0, 0.85, 0.05, 0),
    12: (0.2, 0.0, 0.6, 0.2, 0),
    13: (0.3, 0.0, 0.6, 0.1, 0),
    14: (0.95, 0.0, 0.0, 0.05, 1),
    15: (0.05, 0.0, 0.85, 0.1, 0),
    16: (0.5, 0.45, 0.0, 0.05, 1),
    17: (0.8, 0.0, 0.0, 0.2, 1),
}
# S1 backscatter (dB) VV, VH per endmember
_S1_DB = {"veg": (-9.0, -15.5), "water": (-21.0, -28.0), "imp": (-4.0, -11.0),
          "soil": (-12.5, -20.0)}


def season(month: int) -> float:
    """Vegetation vigour 0.15..1 (peak in July, minimum in January)."""
    return float(0.575 + 0.425 * np.cos(2 * np.pi * (month - 7) / 12.0))


def _fractions(classes: np.ndarray, month: int) -> np.ndarray:
    """(4, h, w) endmember fractions of a class map in a given calendar month."""
    lut = np.zeros((256, 4))
    s = season(month)
    for c, (v, w, i, so, seasonal) in _MIX.items():
        if seasonal:
            v, so = v * s, so + v * (1 - s)
        lut[c] = (v, w, i, so)
    lut[255] = _MIX[0][:4]
    return np.moveaxis(lut[classes], -1, 0)


def surface_reflectance(classes: np.ndarray, month: int, rng: np.random.Generator) -> np.ndarray:
    """(13, h, w) float32 surface reflectance at 10 m (L1C_FILE_BANDS order)."""
    f = _fractions(classes, month)
    em = np.stack([_VEG, _WATER, _IMP, _SOIL])  # (4, 13)
    refl = np.einsum("ehw,eb->bhw", f, em)
    h, w = classes.shape
    texture = 1.0 + 0.06 * ndimage.gaussian_filter(rng.standard_normal((h, w)), 1.0) / 0.28
    gain = 1.0 + 0.03 * rng.standard_normal((13, 1, 1))
    return (refl * texture[None] * gain + 0.0015 * rng.standard_normal((13, h, w))).clip(
        0.001, 1.2
    ).astype(np.float32)


def cloud_field(shape: tuple[int, int], cover: float, rng: np.random.Generator) -> np.ndarray:
    """(h, w) float32 cloud opacity 0..1 with about ``cover`` of the area opaque (> 0.5)."""
    h, w = shape
    if cover <= 0:
        return np.zeros(shape, np.float32)
    noise = ndimage.gaussian_filter(rng.standard_normal((h, w)), 12.0)
    noise += 0.5 * ndimage.gaussian_filter(rng.standard_normal((h, w)), 4.0) * noise.std() / 0.07
    thr = np.quantile(noise, 1.0 - cover)
    scale = noise.std() * 0.15 + 1e-9
    alpha = 1.0 / (1.0 + np.exp(-(noise - thr) / scale))
    return alpha.astype(np.float32)


@dataclass
class SynthS2:
    """One synthetic S2 acquisition at 10 m: ``toa`` / ``boa`` (13, h, w) float32 reflectance,
    ``cloud`` (h, w) bool truth (opacity > 0.5), ``shadow`` (h, w) bool truth."""

    toa: np.ndarray
    boa: np.ndarray
    cloud: np.ndarray
    shadow: np.ndarray
    sun_azimuth_deg: float
    sun_zenith_deg: float


def synth_s2(
    classes: np.ndarray, month: int, cover: float, rng: np.random.Generator,
    shadow_shift_px: int = 25,
) -> SynthS2:
    """Simulate one acquisition over a 10 m class map (see module doc)."""
    surf = surface_reflectance(classes, month, rng)
    alpha = cloud_field(classes.shape, cover, rng)
    sun_az = 150.0 + 10.0 * rng.standard_normal()
    sun_zen = 25.0 + 20.0 * abs(month - 6.5) / 6.0
    az = np.radians(sun_az + 180.0)
    dx, dy = np.sin(az) * shadow_shift_px, -np.cos(az) * shadow_shift_px
    shadow_alpha = ndimage.shift(alpha, (dy, dx), order=1, mode="constant", cval=0.0)
    shadow_alpha = np.clip(shadow_alpha - alpha, 0.0, 1.0)
    shaded = surf * (1.0 - 0.75 * shadow_alpha)[None]
    toa_clear = shaded * _TRANS[:, None, None] + _PATH[:, None, None]
    cloud_spec = _CLOUD[:, None, None] * (1.0 + 0.05 * rng.standard_normal((13, 1, 1)))
    toa = (1.0 - alpha)[None] * toa_clear + alpha[None] * cloud_spec
    boa = (1.0 - alpha)[None] * shaded + alpha[None] * (cloud_spec - _PATH[:, None, None] * 0.5)
    return SynthS2(
        toa=toa.astype(np.float32), boa=boa.astype(np.float32), cloud=alpha > 0.5,
        shadow=(shadow_alpha > 0.5) & (alpha <= 0.5), sun_azimuth_deg=float(sun_az),
        sun_zenith_deg=float(sun_zen),
    )


def to_native(refl10: np.ndarray) -> dict[str, np.ndarray]:
    """(13, h, w) 10 m reflectance -> {band: uint16 DN at native res} (area mean), DN =
    reflectance * 10000 clipped to 1..65534 (0 is nodata)."""
    out = {}
    for i, b in enumerate(L1C_FILE_BANDS):
        f = NATIVE_RES_M[b] // 10
        a = refl10[i]
        if f > 1:
            h, w = a.shape
            a = a[: h // f * f, : w // f * f].reshape(h // f, f, w // f, f).mean(axis=(1, 3))
        out[b] = np.clip(np.rint(a * 10000.0), 1, 65534).astype(np.uint16)
    return out


def synth_s1(
    classes: np.ndarray, month: int, rng: np.random.Generator, enl: float = 4.4
) -> tuple[np.ndarray, np.ndarray]:
    """(VV, VH) float32 dB at 10 m with multiplicative Gamma speckle (mean 1, ENL ``enl``)."""
    f = _fractions(classes, month)
    out = []
    for pol in range(2):
        lin = sum(
            f[i] * 10 ** (_S1_DB[k][pol] / 10.0)
            for i, k in enumerate(("veg", "water", "imp", "soil"))
        )
        speckle = rng.gamma(enl, 1.0 / enl, size=lin.shape)
        out.append((10.0 * np.log10(lin * speckle)).astype(np.float32))
    return out[0], out[1]


def _month_seed(seed: int, month: str, what: str) -> int:
    h = hashlib.sha256(f"{seed}:{month}:{what}".encode()).digest()
    return int.from_bytes(h[:8], "little")


def plan_months(
    months: list[str], seed: int, s2_per_month: tuple[int, int], s1_per_month: tuple[int, int]
) -> dict[str, Any]:
    """Deterministic acquisition plan: change month, per month S2/S1 dates, cloud covers,
    products (the first month has L1C only, to exercise the L1C fallback)."""
    rng = np.random.default_rng(seed)
    change_idx = int(rng.integers(1, max(2, len(months) - 1))) if len(months) > 2 else len(
        months
    ) - 1
    plan: dict[str, Any] = {"change_month": months[change_idx], "months": {}}
    for k, m in enumerate(months):
        r = np.random.default_rng(_month_seed(seed, m, "plan"))
        y, mo = int(m[:4]), int(m[5:])
        ndays = calendar.monthrange(y, mo)[1]
        n2 = int(r.integers(s2_per_month[0], s2_per_month[1] + 1))
        n1 = int(r.integers(s1_per_month[0], s1_per_month[1] + 1))
        days2 = sorted(r.choice(np.arange(1, ndays + 1), size=n2, replace=False).tolist())
        days1 = sorted(r.choice(np.arange(1, ndays + 1), size=n1, replace=False).tolist())
        covers = [float(c) for c in np.where(r.random(n2) < 0.35, 0.0, r.uniform(0.1, 0.6, n2))]
        plan["months"][m] = {
            "s2": [
                {"time": dt.datetime(y, mo, d, 3, 25, 11 + i), "cover": c}
                for i, (d, c) in enumerate(zip(days2, covers, strict=True))
            ],
            "s1": [{"time": dt.datetime(y, mo, d, 22, 40, i)} for i, d in enumerate(days1)],
            "products": ["L1C"] if k == 0 else ["L1C", "L2A"],
            "classes": "t1" if k < change_idx else "t2",
        }
    return plan


def scene_extent(bounds: tuple[float, float, float, float], margin_m: float = 900.0,
                 multiple_m: float = 60.0) -> tuple[float, float, int, int]:
    """(x0, y0, width_px, height_px) at 10 m: ``bounds`` + margin, snapped outward to 60 m."""
    minx, miny, maxx, maxy = bounds
    x0 = np.floor((minx - margin_m) / multiple_m) * multiple_m
    y0 = np.ceil((maxy + margin_m) / multiple_m) * multiple_m
    x1 = np.ceil((maxx + margin_m) / multiple_m) * multiple_m
    y1 = np.floor((miny - margin_m) / multiple_m) * multiple_m
    return float(x0), float(y0), round((x1 - x0) / 10.0), round((y0 - y1) / 10.0)


def generate_archive(
    archive: Any,
    classes_t1: np.ndarray,
    classes_t2: np.ndarray,
    crs: str,
    x0: float,
    y0: float,
    months: list[str],
    seed: int,
    s2_per_month: tuple[int, int] = (2, 6),
    s1_per_month: tuple[int, int] = (2, 5),
) -> dict[str, Any]:
    """Write a synthetic scene archive (layout of :mod:`pipeline.sentinel.sources.local`).

    Args:
        archive: output folder.
        classes_t1, classes_t2: (h, w) uint8 class maps at 10 m, h and w multiples of 6.
        crs: CRS of the class maps; (x0, y0): upper-left corner (m), multiples of 60 m.
        months: ``YYYY-MM`` months to simulate.
        seed: random seed.

    Returns:
        Summary dict (change month, scene counts, mean cloud cover per month).
    """
    from affine import Affine

    from pipeline.io.scenes import write_s1_scene, write_s2_scene

    if classes_t1.shape != classes_t2.shape or classes_t1.shape[0] % 6 or classes_t1.shape[1] % 6:
        raise ValueError("class maps must share a shape whose sides are multiples of 6 px")
    plan = plan_months(months, seed, s2_per_month, s1_per_month)
    transforms = {r: Affine(float(r), 0.0, x0, 0.0, -float(r), y0) for r in (10, 20, 60)}
    summary: dict[str, Any] = {"change_month": plan["change_month"], "months": {}}
    for m in months:
        mp = plan["months"][m]
        cls = classes_t1 if mp["classes"] == "t1" else classes_t2
        mo = int(m[5:])
        covers = []
        for i, acq in enumerate(mp["s2"]):
            rng = np.random.default_rng(_month_seed(seed, m, f"s2-{i}"))
            s = synth_s2(cls, mo, acq["cover"], rng)
            bands: dict[str, dict[str, np.ndarray]] = {"L1C": to_native(s.toa)}
            if "L2A" in mp["products"]:
                boa = to_native(s.boa)
                bands["L2A"] = {b: v for b, v in boa.items() if b != "B10"}
            write_s2_scene(
                archive, acq["time"], "49SGU", crs, transforms, bands,
                extra={"sun_azimuth_deg": round(s.sun_azimuth_deg, 2),
                       "sun_zenith_deg": round(s.sun_zenith_deg, 2),
                       "synthetic": True, "cloud_cover_truth": round(float(s.cloud.mean()), 4)},
            )
            covers.append(float(s.cloud.mean()))
        for i, acq in enumerate(mp["s1"]):
            rng = np.random.default_rng(_month_seed(seed, m, f"s1-{i}"))
            vv, vh = synth_s1(cls, mo, rng)
            # stored as linear power (gamma0), like Planetary Computer's sentinel-1-rtc COGs
            asc = i % 2 == 0
            write_s1_scene(archive, acq["time"], crs, transforms[10],
                           (10.0 ** (vv / 10.0)).astype(np.float32),
                           (10.0 ** (vh / 10.0)).astype(np.float32), units="linear",
                           orbit_pass="ASCENDING" if asc else "DESCENDING",
                           relative_orbit=84 if asc else 91)
        summary["months"][m] = {
            "s2": len(mp["s2"]), "s1": len(mp["s1"]), "products": mp["products"],
            "classes": mp["classes"], "cloud_cover": [round(c, 4) for c in covers],
        }
    return summary
