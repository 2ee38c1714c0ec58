"""Dataset statistics (``stats.json``): normalisation constants and class / change frequencies.

Pure: readers are passed in, so this module never opens files.

* **Sentinel** per-band mean / std over the **train** split for the 14 bands (12 S2
  reflectances, then S1 VV, VH in dB), from every train patch's footprint window of its AOI
  mosaic, every month. Only *clear* pixels count: finite values whose month/pixel observation
  count is > 0 (S2 count for S2 bands, S1 count for S1 bands). Overlapping footprints count
  their shared pixels once per footprint, i.e. the statistics weight pixels the way a model
  sees them. Accumulation is streaming (Chan et al. parallel mean/variance in float64, one
  window at a time): memory stays flat whatever the dataset size.
* **HR RGB** mean / std (0..255 DN) over the train split, T1 and T2 images, valid pixels only.
* **Class pixel frequencies** per split and per city x split (T1 + T2 label pixels; no data
  excluded), from the index histograms ``hist_t1_<v>`` / ``hist_t2_<v>``.
* **Change fraction** (changed / valid pixels) per split and per city x split.

Std is the population standard deviation (ddof = 0).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from pipeline.errors import DatasetError

SPLITS = ("train", "val", "test")


class RunningMoments:
    """Streaming per-channel count / mean / M2 (Chan's parallel update, float64).

    ``update(values, valid)`` takes ``values`` (C, ...) and a boolean ``valid`` mask of the same
    shape (or broadcastable); invalid entries are ignored.
    """

    def __init__(self, n_channels: int) -> None:
        self.count = np.zeros(n_channels, np.float64)
        self.mean = np.zeros(n_channels, np.float64)
        self.m2 = np.zeros(n_channels, np.float64)

    def update(self, values: np.ndarray, valid: np.ndarray | None = None) -> None:
        v = np.asarray(values, dtype=np.float64).reshape(len(self.count), -1)
        m = np.isfinite(v)
        if valid is not None:
            m &= np.broadcast_to(np.asarray(valid, bool), np.asarray(values).shape).reshape(m.shape)
        nb = m.sum(axis=1).astype(np.float64)
        ok = nb > 0
        if not ok.any():
            return
        vz = np.where(m, v, 0.0)
        mb = np.divide(vz.sum(axis=1), nb, out=np.zeros_like(nb), where=ok)
        m2b = np.where(m, (v - mb[:, None]) ** 2, 0.0).sum(axis=1)
        n = self.count + nb
        delta = mb - self.mean
        frac = np.divide(nb, n, out=np.zeros_like(n), where=n > 0)
        self.mean = np.where(ok, self.mean + delta * frac, self.mean)
        self.m2 = np.where(ok, self.m2 + m2b + delta**2 * self.count * frac, self.m2)
        self.count = n

    @property
    def std(self) -> np.ndarray:
        return np.sqrt(np.divide(self.m2, self.count, out=np.zeros_like(self.m2),
                                 where=self.count > 0))

    def as_dict(self, bands: Sequence[str]) -> dict[str, Any]:
        empty = self.count == 0
        return {
            "bands": list(bands),
            "mean": [None if e else float(x) for x, e in zip(self.mean, empty, strict=True)],
            "std": [None if e else float(x) for x, e in zip(self.std, empty, strict=True)],
            "count": [int(c) for c in self.count],
        }


def check_sentinel_inputs(
    expected: Mapping[str, Sequence[str]], available: Mapping[str, Sequence[str] | None]
) -> None:
    """Fail unless every AOI's mosaic exists and holds every expected month.

    Args:
        expected: {aoi: months ``YYYY-MM`` the dataset needs}.
        available: {aoi: months in its mosaic, or None when the mosaic is missing}.

    Raises:
        DatasetError: listing each AOI with a missing mosaic and each AOI's missing months.
    """
    problems = []
    for aoi in sorted(expected):
        have = available.get(aoi)
        if have is None:
            problems.append(f"{aoi}: Sentinel mosaic missing")
            continue
        miss = [m for m in expected[aoi] if m not in set(have)]
        if miss:
            problems.append(f"{aoi}: months missing from the mosaic: {', '.join(miss)}")
    if problems:
        raise DatasetError(
            "the dataset needs Sentinel data that is not there: " + "; ".join(problems)
            + ". Run the sentinel rules for these AOIs (snakemake sentinel targets) or remove "
            "the AOIs from the config"
        )


def sentinel_moments(
    windows: Iterable[dict[str, Any]], bands: Sequence[str], n_s2: int = 12
) -> RunningMoments:
    """Accumulate the clear pixels of footprint cubes (``read_footprint_cube`` dicts).

    Args:
        windows: iterable of dicts with ``x`` (T, 14, H, W) float32 (NaN = no data) and
            ``counts`` (T, 2, H, W) uint8 (S2 clear, S1 observations).
        bands: band names (len 14).
        n_s2: number of S2 bands (the first ``n_s2`` use the S2 count, the rest the S1 count).
    """
    acc = RunningMoments(len(bands))
    for w in windows:
        x = np.asarray(w["x"], np.float32)
        counts = np.asarray(w["counts"])
        valid = np.empty(x.shape, bool)
        valid[:, :n_s2] = counts[:, :1] > 0
        valid[:, n_s2:] = counts[:, 1:2] > 0
        # channels first for the accumulator
        acc.update(np.moveaxis(x, 1, 0), np.moveaxis(valid, 1, 0))
    return acc


def hr_moments(images: Iterable[tuple[np.ndarray, np.ndarray]]) -> RunningMoments:
    """Accumulate HR RGB images: iterable of ((3, h, w) uint8, (h, w) bool valid)."""
    acc = RunningMoments(3)
    for img, valid in images:
        acc.update(np.asarray(img)[:3], np.asarray(valid, bool)[None])
    return acc


def _hist(index: Any, date: str, n_classes: int) -> np.ndarray:
    return index[[f"hist_{date}_{v}" for v in range(n_classes)]].to_numpy(np.float64)


def class_frequencies(index: Any, n_classes: int = 18) -> dict[str, Any]:
    """Class pixel frequencies (T1 + T2, no data excluded) per split and per city x split.

    Returns:
        ``{"class_frequencies": {split: {"<v>": f}}, "class_frequencies_by_city": {city: {split:
        {...}}}, "class_pixels": {split: {"t1": [...], "t2": [...]}}}``; frequencies sum to 1
        (all zero for an empty split).
    """
    h = _hist(index, "t1", n_classes) + _hist(index, "t2", n_classes)
    h1, h2 = _hist(index, "t1", n_classes), _hist(index, "t2", n_classes)
    split = index["split"].to_numpy()
    city = index["city"].to_numpy()

    def freq(m: np.ndarray) -> dict[str, float]:
        tot = h[m].sum(axis=0)
        s = tot.sum()
        return {str(v): float(tot[v] / s) if s else 0.0 for v in range(n_classes)}

    out: dict[str, Any] = {
        "class_frequencies": {s: freq(split == s) for s in SPLITS},
        "class_pixels": {
            s: {"t1": h1[split == s].sum(axis=0).astype(np.int64).tolist(),
                "t2": h2[split == s].sum(axis=0).astype(np.int64).tolist()}
            for s in SPLITS
        },
        "class_frequencies_by_city": {},
    }
    out["class_frequencies"]["all"] = freq(np.isin(split, SPLITS))
    for c in sorted(set(city.tolist())):
        out["class_frequencies_by_city"][c] = {s: freq((city == c) & (split == s)) for s in SPLITS}
    return out


def dataset_change_stats(index: Any) -> dict[str, Any]:
    """Changed / valid pixel fractions and change-detection subset sizes, per split and city."""
    split = index["split"].to_numpy()
    city = index["city"].to_numpy()
    chg = index["changed_px"].to_numpy(np.float64)
    val = index["valid_px"].to_numpy(np.float64)

    def one(m: np.ndarray) -> dict[str, Any]:
        v = val[m].sum()
        return {
            "change_fraction": float(chg[m].sum() / v) if v else None,
            "changed_px": int(chg[m].sum()),
            "valid_px": int(v),
            "patches_with_change": int(np.count_nonzero(chg[m] > 0)),
            "patches": int(m.sum()),
        }

    out: dict[str, Any] = {s: one(split == s) for s in SPLITS}
    out["by_city"] = {
        c: {s: one((city == c) & (split == s)) for s in SPLITS} for c in sorted(set(city.tolist()))
    }
    return out


def compute_stats(
    index: Any,
    read_cube: Callable[[str, int, int, int], dict[str, Any]] | None,
    read_hr: Callable[[str], tuple[np.ndarray, np.ndarray]] | None,
    bands: Sequence[str],
    n_classes: int = 18,
    progress: Callable[[Iterable[Any]], Iterable[Any]] | None = None,
) -> dict[str, Any]:
    """Everything in ``stats.json``.

    Args:
        index: the dataset index (pandas; ``split``, ``aoi``, ``fp_col0``, ``fp_row0``,
            ``fp_size_px``, ``hr_t1``, ``hr_t2``, histogram and change columns).
        read_cube: ``(aoi, col0, row0, size) -> footprint cube dict`` or None to skip Sentinel.
        read_hr: ``(relative path) -> ((3, h, w) uint8, (h, w) bool valid)`` or None to skip HR.
        bands: the 14 Sentinel band names.
        progress: optional wrapper (e.g. tqdm) around the patch iteration.
    """
    train = index[index["split"] == "train"]
    wrap = progress or (lambda it: it)
    out: dict[str, Any] = {"normalisation_split": "train", "n_patches": {
        s: int((index["split"] == s).sum()) for s in (*SPLITS, "guard")}}
    if read_cube is not None:
        rows = train[["aoi", "fp_col0", "fp_row0", "fp_size_px"]].itertuples(index=False)
        windows = (read_cube(str(r.aoi), int(r.fp_col0), int(r.fp_row0), int(r.fp_size_px))
                   for r in wrap(rows))
        s = sentinel_moments(windows, bands)
        out["sentinel"] = {**s.as_dict(bands), "units": "S2 reflectance (0..1), S1 dB",
                           "pixels": "clear pixels (finite, observation count > 0) of every "
                           "train footprint window, every month"}
    if read_hr is not None:
        paths = [p for col in ("hr_t1", "hr_t2") for p in train[col].astype(str)]
        h = hr_moments(read_hr(p) for p in wrap(paths))
        out["hr"] = {**h.as_dict(["R", "G", "B"]), "units": "DN 0..255",
                     "pixels": "valid pixels of the train T1 and T2 HR patches"}
    out.update(class_frequencies(index, n_classes))
    out["change"] = dataset_change_stats(index)
    return out
