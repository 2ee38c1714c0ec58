"""Normalisation for the PyTorch dataset, pure and torch-free: ``stats.json`` parsing, month
selection, Sentinel array preparation (NaN -> 0 after z-scoring, validity masks) and the HR
look-up table. Used by :mod:`pipeline.dataset.torchds` in DataLoader workers and by
:mod:`pipeline.dataset.collate` on the device.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from pipeline.bands import ALL_BANDS, S1_BANDS, S1_WAVELENGTH_NM, S2_WAVELENGTHS_NM
from pipeline.errors import DatasetError

LABEL_NODATA = 255
S2_NODATA_DN = 65535  # stored S2 no-data value (uint16 reflectance * 10000)
S2_DN_SCALE = 10000.0
#: Wavelengths (nm) of the 14 Sentinel bands in :data:`pipeline.sentinel.model.ALL_BANDS`
# order.
WAVELENGTHS_NM: tuple[float, ...] = tuple(S2_WAVELENGTHS_NM) + (S1_WAVELENGTH_NM,) * len(S1_BANDS)
HR_BANDS: tuple[str, ...] = ("R", "G", "B")

log = logging.getLogger(__name__)




def class_table(schema_id: str = "fusu17") -> tuple[tuple[int, ...], tuple[str, ...]]:
    """Class values and names of a schema (falls back to ``0..17`` if it cannot be loaded)."""
    try:
        from pipeline.classes import load_schema

        schema = load_schema(schema_id)
        return tuple(schema.values), tuple(schema.names)
    except Exception:  # schema module absent or broken: numbers still work
        values = tuple(range(18))
        return values, tuple(f"class {v}" for v in values)


def band_stats(block: Any, names: Sequence[str], where: str) -> tuple[np.ndarray, np.ndarray]:
    """Parse per-band mean/std from either ``{"mean": [...], "std": [...]}`` (band order
    ``names``, or with a ``"bands"`` list) or ``{band: {"mean": m, "std": s}}``.

    A band without statistics (``null``) gets mean 0, std 1; a band with zero spread (constant
    over the training split) gets std 1 and is reported, so normalised values stay finite.
    """
    if isinstance(block, dict) and "mean" in block and "std" in block:
        mean = block["mean"]
        std = block["std"]
        if isinstance(mean, dict):
            mean = [mean[b] for b in names]
            std = [std[b] for b in names]
        elif "bands" in block:
            order = {str(b): i for i, b in enumerate(block["bands"])}
            mean = [mean[order[b]] for b in names]
            std = [std[order[b]] for b in names]
    elif isinstance(block, dict) and all(b in block for b in names):
        mean = [block[b]["mean"] for b in names]
        std = [block[b]["std"] for b in names]
    else:
        raise DatasetError(
            f"{where}: cannot find per-band mean/std for bands {list(names)}; "
            "rerun the 'dataset' rule to rewrite stats.json or pass normalize=False"
        )
    m = np.asarray([np.nan if v is None else v for v in mean], dtype=np.float32)
    s = np.asarray([np.nan if v is None else v for v in std], dtype=np.float32)
    if m.shape != (len(names),) or s.shape != (len(names),):
        raise DatasetError(f"{where}: expected {len(names)} means/stds, got {m.shape}/{s.shape}")
    flat = [str(b) for b, v in zip(names, s, strict=True) if np.isfinite(v) and v <= 0]
    if flat:
        log.warning("%s: bands %s have zero spread in the training statistics (constant): "
                    "they are centred but not scaled (std 1)", where, flat)
    s = np.where(np.isfinite(s) & (s > 0), s, 1.0).astype(np.float32)
    m = np.where(np.isfinite(m), m, 0.0).astype(np.float32)
    return m, s


def parse_stats(stats: dict[str, Any], where: str = "stats.json") -> dict[str, np.ndarray]:
    """Normalisation constants from ``stats.json``.

    Accepts a ``"sentinel"`` block (14 bands, ALL_BANDS order) and an ``"hr"`` block (RGB);
    HR statistics in 0..255 DN are rescaled to the [0, 1] range the dataset works in. Bands
    without statistics (``null``: no clear pixel in train) get mean 0, std 1.

    Returns:
        ``dict(s_mean, s_std)`` float32 (14,) and ``dict(hr_mean, hr_std)`` float32 (3,).
    """
    s_block = stats.get("sentinel", stats.get("bands"))
    hr_block = stats.get("hr", stats.get("hr_rgb"))
    if s_block is None or hr_block is None:
        raise DatasetError(
            f"{where} lacks a 'sentinel' or 'hr' section: rerun the 'dataset' rule "
            "or pass normalize=False"
        )
    s_mean, s_std = band_stats(s_block, ALL_BANDS, f"{where} (sentinel)")
    hr_names = (
        [str(b) for b in hr_block.get("bands", HR_BANDS)] if isinstance(hr_block, dict) else []
    )
    hr_mean, hr_std = band_stats(
        hr_block, hr_names if len(hr_names) == 3 else HR_BANDS, f"{where} (hr)"
    )
    units = str(hr_block.get("units", "")) if isinstance(hr_block, dict) else ""
    if "DN" in units or float(hr_mean.max()) > 1.5:  # statistics in DN (0..255)
        hr_mean, hr_std = hr_mean / 255.0, hr_std / 255.0
    return {"s_mean": s_mean, "s_std": s_std, "hr_mean": hr_mean, "hr_std": hr_std}


def select_months(
    n_total: int, months: int | Sequence[str] | None, all_months: Sequence[str]
) -> np.ndarray:
    """Indices of the months to keep: all (None), the last ``N`` (int) or the named ones.

    Raises:
        DatasetError: a named month is not in the mosaic.
    """
    if months is None:
        return np.arange(n_total)
    if isinstance(months, int):
        if months < 0:
            raise DatasetError(f"months={months}: use None (all) or a number >= 0")
        return np.arange(max(0, n_total - months), n_total)
    pos = {m: i for i, m in enumerate(all_months)}
    missing = [m for m in months if m not in pos]
    if missing:
        raise DatasetError(
            f"months {missing} are not in the mosaic (it has {all_months[0]}..{all_months[-1]})"
        )
    return np.asarray([pos[m] for m in months], dtype=np.int64)


def sentinel_arrays(
    x: np.ndarray,
    counts: np.ndarray | None,
    mean: np.ndarray | None,
    std: np.ndarray | None,
    inplace: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Normalise a footprint cube and derive its validity mask.

    Args:
        x: float32 (T, 14, h, w) reflectance / dB, NaN = no data.
        counts: uint8 (T, 2, h, w) clear S2 / valid S1 observation counts, or None.
        mean, std: float32 (14,) or None (no normalisation).
        inplace: overwrite ``x`` (saves a copy of the cube when the caller owns it).

    Returns:
        (values float32 (T, 14, h, w) with NaN -> 0; valid bool (T, h, w): any count > 0,
        or any band finite when ``counts`` is None).
    """
    if counts is not None:
        valid = (np.asarray(counts) > 0).any(axis=1)
    else:
        valid = ~np.isnan(x).all(axis=1)
    out = (
        x
        if (inplace and x.dtype == np.float32 and x.flags.writeable)
        else x.astype(np.float32, copy=True)
    )
    if mean is not None and std is not None:
        sd = np.asarray(std, np.float32)
        inv = np.ones_like(sd)
        np.divide(1.0, sd, out=inv, where=np.isfinite(sd) & (sd > 0))  # zero spread: std 1
        out -= mean[None, :, None, None]
        out *= inv[None, :, None, None]
    np.putmask(out, np.isnan(out), np.float32(0.0))
    return out, np.asarray(valid)


def hr_lut(mean: np.ndarray | None, std: np.ndarray | None) -> np.ndarray:
    """float32 (3, 256) look-up table uint8 DN -> ``(DN / 255 - mean) / std`` per channel
    (``DN / 255`` without statistics): one gather per pixel instead of three passes."""
    dn = np.arange(256, dtype=np.float64) / 255.0
    if mean is None or std is None:
        return np.tile(dn, (3, 1)).astype(np.float32)
    return (
        (dn[None, :] - np.asarray(mean, np.float64)[:, None]) / np.asarray(std, np.float64)[:, None]
    ).astype(np.float32)


def apply_hr_lut(img: np.ndarray, lut: np.ndarray) -> np.ndarray:
    """uint8 (3, H, W) -> float32 (3, H, W) through :func:`hr_lut`."""
    out = np.empty(img[:3].shape, np.float32)
    for c in range(3):
        np.take(lut[c], img[c], out=out[c])
    return out


