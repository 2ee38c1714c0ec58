"""PyTorch dataset over the native layout (HR GeoTIFF patches + per-AOI Sentinel mosaics).

``torch`` is imported lazily (inside methods) so that ``import pipeline.dataset.torchds`` works
without
it. The dataset object holds only paths, small arrays and plain Python values: it pickles into
DataLoader workers cheaply and opens files (GeoTIFFs per read, Zarr mosaics once per worker)
lazily in the process that reads them.

Example::

    from torch.utils.data import DataLoader
    from pipeline.dataset.torchds import FusuDataset, fusu_collate

    ds = FusuDataset("results/demo", split="train", months=12)
    dl = DataLoader(ds, batch_size=8, num_workers=2, collate_fn=fusu_collate)
    batch = next(iter(dl))  # t1: (8, 3, 512, 512), sentinel: (8, 12, 14, 128, 128)

Sample (one patch), see :meth:`FusuDataset.__getitem__`::

    t1, t2          float32 (3, H, W)   HR RGB in [0, 1] (or normalised with stats.json)
    label1, label2  int64   (H, W)      class values 0..17, 255 = no data (ignore_index)
    change          int64   (H, W)      0/1, 255 = ignored
    sentinel        float32 (T, 14, h, w) S2 B1..B12 reflectance + S1 VV/VH dB, normalised
                                        per band (stats.json), NaN -> 0
    sentinel_valid  bool    (T, h, w)   pixel has a clear S2 or valid S1 observation that month
    counts          uint8   (T, 2, h, w) clear S2 / valid S1 observations per month
    month_mask      bool    (T,)        True = real month, False = padding (after collate)
    patch_box       float32 (4,)        (off_x, off_y, w, h) of the HR patch in footprint px
    meta            dict                patch_id, aoi, city, split, months (YYYY-MM), t1, t2,
                                        bands, wavelengths_nm, gsd_m, sentinel_gsd_m,
                                        footprint (col0, row0, size_px), class_ids, class_names

Compact samples (``compact=True``, the efficient way to feed a GPU: workers ship the stored
dtypes, ~2.5x fewer bytes through worker -> main IPC, and :func:`prepare_batch` normalises the
collated batch on the device into exactly the batch above)::

    t1, t2          uint8   (3, H, W)   HR RGB DN (no resize: hr_size is applied by prepare_batch)
    label1, label2  uint8   (H, W)      0..17, 255 = no data
    change          uint8   (H, W)      0/1, 255 = ignored
    s2_dn           uint16  (T, 12, h, w) S2 reflectance * 10000, 65535 = no data
    s1              float32 (T, 2, h, w) S1 VV/VH dB, NaN = no data
    counts, month_mask, patch_box, meta  as above (no sentinel / sentinel_valid)

    dl = DataLoader(FusuDataset(root, compact=True), batch_size=8, num_workers=2,
                    collate_fn=fusu_collate, pin_memory=True)
    for batch in dl:
        batch = prepare_batch(batch, dl.dataset.norm_stats, "cuda", hr_size=dl.dataset.hr_size)
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.bands import ALL_BANDS, S1_BANDS, S1_WAVELENGTH_NM, S2_WAVELENGTHS_NM
from pipeline.errors import DatasetError
from pipeline.hr.footprints import FOOTPRINT_COLUMNS
from pipeline.io.geotiff import read_patch
from pipeline.io.jsonfile import read_json_if_exists
from pipeline.io.mosaic import read_cube
from pipeline.io.parquet import read_index_table
from pipeline.layout import Layout

LABEL_NODATA = 255
S2_NODATA_DN = 65535  # stored S2 no-data value (uint16 reflectance * 10000)
S2_DN_SCALE = 10000.0
#: Wavelengths (nm) of the 14 Sentinel bands in :data:`pipeline.sentinel.sources.base.ALL_BANDS`
# order.
WAVELENGTHS_NM: tuple[float, ...] = tuple(S2_WAVELENGTHS_NM) + (S1_WAVELENGTH_NM,) * len(S1_BANDS)
HR_BANDS: tuple[str, ...] = ("R", "G", "B")

_REQUIRED_COLUMNS = ("patch_id", "aoi", "hr_t1", "hr_t2")
#: Numeric footprint columns of the index (the tile index's footprint columns minus the WKB).
_FOOTPRINT_COLUMNS = tuple(c for c in FOOTPRINT_COLUMNS if c != "fp_geometry_wkb")


def _pixels(path: Path, what: str) -> np.ndarray:
    """``(bands, h, w)`` of a patch GeoTIFF in its stored dtype."""
    data = read_patch(path, what).data
    assert data is not None
    return data


# --------------------------------------------------------------------------- pure helpers


def class_table(schema_id: str = "fusu17") -> tuple[tuple[int, ...], tuple[str, ...]]:
    """Class values and names of a schema (falls back to ``0..17`` if it cannot be loaded)."""
    try:
        from pipeline.classes import load_schema

        schema = load_schema(schema_id)
        return tuple(schema.values), tuple(schema.names)
    except Exception:  # schema module absent or broken: numbers still work
        values = tuple(range(18))
        return values, tuple(f"class {v}" for v in values)


def _band_stats(block: Any, names: Sequence[str], where: str) -> tuple[np.ndarray, np.ndarray]:
    """Parse per-band mean/std from either ``{"mean": [...], "std": [...]}`` (band order
    ``names``, or with a ``"bands"`` list) or ``{band: {"mean": m, "std": s}}``."""
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
    s_mean, s_std = _band_stats(s_block, ALL_BANDS, f"{where} (sentinel)")
    hr_names = (
        [str(b) for b in hr_block.get("bands", HR_BANDS)] if isinstance(hr_block, dict) else []
    )
    hr_mean, hr_std = _band_stats(
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
        out -= mean[None, :, None, None]
        out *= (1.0 / std)[None, :, None, None]
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


# --------------------------------------------------------------------------- dataset


class FusuDataset:
    """Map-style dataset of one split of a native-layout dataset (usable by ``DataLoader``).

    Args:
        root: dataset root ``<results_dir>/<dataset>`` (holds ``patches.parquet``).
        split: ``"train"``, ``"val"``, ``"test"`` (index column ``split``) or None / ``"all"``.
        months: None = every month of the AOI's series; int N = the last N months (0 = none);
            or a list of ``YYYY-MM``.
        normalize: standardise HR RGB and Sentinel bands with ``stats.json``; otherwise HR is in
            [0, 1] and Sentinel in reflectance / dB (NaN -> 0 either way).
        with_sentinel: read the Sentinel footprint cube (False: HR only, no ``sentinel*``/
            ``counts``/``month_mask`` keys).
        hr_size: resize HR images (bilinear, antialiased) and labels (nearest) to this side (px).
        class_schema: class schema id for ``meta`` (``pipeline/data/<id>.yaml``).
        compact: return stored dtypes (uint8 HR / labels, uint16 S2 DN + float32 S1, see the
            module docstring); normalise (and resize) the collated batch on the device with
            :func:`prepare_batch` (``norm_stats`` / ``hr_size`` of this dataset).

    Raises:
        DatasetError: index / stats missing or inconsistent (message names the file and the fix).
    """

    def __init__(
        self,
        root: str | Path,
        split: str | None = "train",
        months: int | Sequence[str] | None = None,
        normalize: bool = True,
        with_sentinel: bool = True,
        hr_size: int | None = None,
        class_schema: str = "fusu17",
        compact: bool = False,
    ) -> None:
        self.root = Path(root)
        self.layout = Layout(self.root)
        self.split = split
        self.months = months if (months is None or isinstance(months, int)) else tuple(months)
        self.normalize = normalize
        self.with_sentinel = with_sentinel
        self.hr_size = hr_size
        self.compact = compact
        index_path = self.layout.index()
        df = read_index_table(index_path)
        missing = [c for c in _REQUIRED_COLUMNS if c not in df.columns]
        if with_sentinel:
            missing += [c for c in _FOOTPRINT_COLUMNS if c not in df.columns]
        if missing:
            raise DatasetError(
                f"{index_path} lacks columns {missing}: rebuild it with the 'dataset' rule"
            )
        if split not in (None, "all"):
            if "split" not in df.columns:
                raise DatasetError(f"{index_path} has no 'split' column: run the 'splits' step")
            df = df[df["split"] == split]
            if len(df) == 0:
                raise DatasetError(f"split {split!r} is empty in {index_path}")
        self._records: list[dict[str, Any]] = [
            _record(r) for r in df.sort_values("patch_id").to_dict("records")
        ]
        self._stats: dict[str, np.ndarray] | None = None
        if normalize:
            stats = read_json_if_exists(self.layout.stats())
            if stats is None:
                raise DatasetError(
                    f"{self.layout.stats()} does not exist: build the dataset's stats first "
                    "or pass normalize=False"
                )
            self._stats = parse_stats(stats, str(self.layout.stats()))
        st = self._stats
        self._hr_lut = hr_lut(st["hr_mean"], st["hr_std"]) if st else hr_lut(None, None)
        self.class_ids, self.class_names = class_table(class_schema)
        self._grid_res: dict[str, float] = {}

    def __len__(self) -> int:
        return len(self._records)

    @property
    def norm_stats(self) -> dict[str, np.ndarray] | None:
        """Parsed ``stats.json`` (:func:`parse_stats`) or None when ``normalize=False``: the
        ``stats`` argument of :func:`prepare_batch` for compact samples."""
        return self._stats

    @property
    def patch_ids(self) -> list[str]:
        return [r["patch_id"] for r in self._records]

    def _sentinel_res(self, aoi: str) -> float:
        if aoi not in self._grid_res:
            g = read_json_if_exists(self.layout.grid(aoi)) or {}
            self._grid_res[aoi] = float(g.get("res_m", 10.0))
        return self._grid_res[aoi]

    def _hr(self, rec: dict[str, Any], key: str) -> np.ndarray:
        return _pixels(self.root / rec[key], f"HR patch ({key})")

    def _path(self, rec: dict[str, Any], column: str, default_dir: Path, pid: str) -> Path:
        """Index column ``column`` (path relative to the root) or the layout's default path."""
        rel = rec.get(column)
        if isinstance(rel, str) and rel:
            return self.root / rel
        return default_dir / f"{pid}.tif"

    def __getitem__(self, i: int) -> dict[str, Any]:
        """One sample (see the module docstring for keys, shapes and dtypes)."""
        import torch

        if not 0 <= i < len(self._records):
            raise IndexError(i)
        rec = self._records[i]
        aoi, pid = rec["aoi"], rec["patch_id"]
        lay = self.layout
        t1 = self._hr(rec, "hr_t1")
        t2 = self._hr(rec, "hr_t2")
        lab1 = _pixels(
            self._path(rec, "label_t1", lay.labels_dir(aoi, "t1"), pid), "T1 label"
        )[0]
        lab2 = _pixels(
            self._path(rec, "label_t2", lay.labels_dir(aoi, "t2"), pid), "T2 label"
        )[0]
        chg = _pixels(
            self._path(rec, "change_bin", lay.change_dir(aoi, "bin"), pid), "change mask"
        )[0]

        if self.compact:
            img1 = torch.from_numpy(np.ascontiguousarray(t1[:3], dtype=np.uint8))
            img2 = torch.from_numpy(np.ascontiguousarray(t2[:3], dtype=np.uint8))
            l1 = torch.from_numpy(np.ascontiguousarray(lab1, dtype=np.uint8))
            l2 = torch.from_numpy(np.ascontiguousarray(lab2, dtype=np.uint8))
            ch = torch.from_numpy(np.ascontiguousarray(chg, dtype=np.uint8))
        else:
            img1 = torch.from_numpy(apply_hr_lut(t1, self._hr_lut))
            img2 = torch.from_numpy(apply_hr_lut(t2, self._hr_lut))
            l1 = torch.from_numpy(lab1.astype(np.int64))
            l2 = torch.from_numpy(lab2.astype(np.int64))
            ch = torch.from_numpy(chg.astype(np.int64))
            if self.hr_size is not None and self.hr_size != img1.shape[-1]:
                img1, img2, l1, l2, ch = _resize(self.hr_size, img1, img2, l1, l2, ch)

        sample: dict[str, Any] = {"t1": img1, "t2": img2, "label1": l1, "label2": l2, "change": ch}
        months: list[str] = []
        if self.with_sentinel:
            cube = read_cube(
                lay.mosaic(aoi),
                rec["fp_col0"],
                rec["fp_row0"],
                rec["fp_size_px"],
                raw=self.compact,
            )
            all_months = [str(m) for m in cube["months"]]
            bands = [str(b) for b in cube.get("bands", ALL_BANDS)]
            if tuple(bands) != ALL_BANDS:
                raise DatasetError(
                    f"mosaic {lay.mosaic(aoi)} has bands {bands}, expected {list(ALL_BANDS)}: "
                    "rebuild it with the sentinel rules"
                )
            keep = select_months(len(all_months), self.months, all_months)
            months = [all_months[k] for k in keep]
            sel: slice | np.ndarray = (
                slice(int(keep[0]), int(keep[-1]) + 1) if len(keep) else slice(0, 0)
            )
            if len(keep) and not np.array_equal(keep, np.arange(keep[0], keep[-1] + 1)):
                sel = keep  # named, non-contiguous months: fancy indexing (copy)
            counts = np.asarray(cube["counts"], dtype=np.uint8)[sel]
            if self.compact:
                sample["s2_dn"] = torch.from_numpy(np.ascontiguousarray(cube["s2"][sel]))
                sample["s1"] = torch.from_numpy(np.ascontiguousarray(cube["s1"][sel]))
            else:
                x = np.asarray(cube["x"])[sel]  # a view for all / last-N months
                st = self._stats
                vals, valid = sentinel_arrays(
                    x,
                    counts,
                    st["s_mean"] if st else None,
                    st["s_std"] if st else None,
                    inplace=True,  # the cube was read for this sample only
                )
                sample["sentinel"] = torch.from_numpy(vals)
                sample["sentinel_valid"] = torch.from_numpy(valid)
            sample["counts"] = torch.from_numpy(np.ascontiguousarray(counts))
            sample["month_mask"] = torch.ones(len(months), dtype=torch.bool)
        if all(c in rec for c in _FOOTPRINT_COLUMNS):
            sample["patch_box"] = torch.tensor(
                [
                    rec["patch_off_x_px"],
                    rec["patch_off_y_px"],
                    rec["patch_w_px"],
                    rec["patch_h_px"],
                ],
                dtype=torch.float32,
            )
        sample["meta"] = {
            "patch_id": pid,
            "aoi": aoi,
            "city": rec.get("city"),
            "split": rec.get("split"),
            "t1": rec.get("t1"),
            "t2": rec.get("t2"),
            "months": months,
            "bands": list(ALL_BANDS),
            "wavelengths_nm": list(WAVELENGTHS_NM),
            "gsd_m": rec.get("gsd_m"),
            "sentinel_gsd_m": self._sentinel_res(aoi) if self.with_sentinel else None,
            "footprint": (rec.get("fp_col0"), rec.get("fp_row0"), rec.get("fp_size_px")),
            "class_ids": list(self.class_ids),
            "class_names": list(self.class_names),
        }
        return sample


def _record(row: dict[str, Any]) -> dict[str, Any]:
    """Plain-Python copy of one index row (ints for windows, floats for offsets)."""
    out: dict[str, Any] = {}
    for k, v in row.items():
        if isinstance(v, np.integer):
            v = int(v)
        elif isinstance(v, np.floating):
            v = float(v)
        elif hasattr(v, "isoformat"):
            v = v.isoformat()[:10]
        out[k] = v
    for k in ("fp_col0", "fp_row0", "fp_size_px"):
        if k in out and out[k] is not None:
            out[k] = int(out[k])
    return out


def _resize(size: int, img1: Any, img2: Any, *labels: Any) -> tuple[Any, ...]:
    import torch.nn.functional as F  # noqa: N812

    def img(t: Any) -> Any:
        return F.interpolate(
            t[None], size=(size, size), mode="bilinear", antialias=True, align_corners=False
        )[0]

    def lab(t: Any) -> Any:
        return F.interpolate(t[None, None].float(), size=(size, size), mode="nearest")[0, 0].long()

    return (img(img1), img(img2), *(lab(t) for t in labels))


# --------------------------------------------------------------------------- collate


def fusu_collate(samples: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Batch samples whose Sentinel series may differ in length (AOIs with different months).

    Tensors are stacked; ``sentinel`` / ``sentinel_valid`` / ``counts`` / ``month_mask`` are
    zero-padded at the end of the time axis to the batch's longest series (``month_mask`` is
    False on padding). ``meta`` becomes a list of the samples' meta dicts. Compact samples'
    ``s2_dn`` / ``s1`` are padded with no data (65535 / NaN), which :func:`prepare_batch` turns
    into the same zeros.

    Raises:
        DatasetError: footprints of different pixel sizes in one batch (batch per AOI group
            or set a common footprint size).
    """
    import torch

    if not samples:
        raise DatasetError("fusu_collate got an empty batch")
    out: dict[str, Any] = {}
    keys = samples[0].keys()
    timed = {"sentinel", "sentinel_valid", "counts", "month_mask", "s2_dn", "s1"}
    pad_value = {"s2_dn": S2_NODATA_DN, "s1": float("nan")}
    t_max = max((s["month_mask"].shape[0] for s in samples if "month_mask" in s), default=0)
    for k in keys:
        if k == "meta":
            out[k] = [s["meta"] for s in samples]
            continue
        vals = [s[k] for s in samples]
        if k in timed:
            shapes = {tuple(v.shape[1:]) for v in vals}
            if len(shapes) > 1:
                raise DatasetError(
                    f"fusu_collate: '{k}' has different footprint shapes {sorted(shapes)} in one "
                    "batch; use a common footprint size (footprints.size_px) or batch per AOI"
                )
            padded = []
            for v in vals:
                pad = t_max - v.shape[0]
                if pad:
                    fill = v.new_full((pad, *v.shape[1:]), pad_value.get(k, 0))
                    v = torch.cat([v, fill], dim=0)
                padded.append(v)
            out[k] = _stack(padded)
        else:
            out[k] = _stack(vals)
    return out


def _stack(vals: list[Any]) -> Any:
    """``torch.stack``; inside a DataLoader worker straight into shared memory (as torch's
    default_collate does), so the batch is not copied again when sent to the main process."""
    import torch

    if torch.utils.data.get_worker_info() is None:
        return torch.stack(vals)
    v0 = vals[0]
    numel = sum(int(v.numel()) for v in vals)
    storage = v0._typed_storage()._new_shared(numel, device=v0.device)
    out = v0.new(storage).resize_(len(vals), *v0.shape)
    return torch.stack(vals, out=out)


# --------------------------------------------------------------------------- device-side prep


def is_compact(batch: dict[str, Any]) -> bool:
    """True for a batch of compact samples (uint8 HR images, see :func:`prepare_batch`)."""
    t1 = batch.get("t1")
    return t1 is not None and hasattr(t1, "dtype") and str(t1.dtype) == "torch.uint8"


def prepare_batch(
    batch: dict[str, Any],
    stats: dict[str, Any] | None,
    device: Any,
    months: int | None = None,
    hr_size: int | None = None,
) -> dict[str, Any]:
    """Move a collated compact batch to ``device`` and decode / normalise it there.

    The result equals ``fusu_collate`` of the same samples read with ``compact=False`` (same
    ``normalize``, ``hr_size``): HR float32 ``(DN / 255 - mean) / std`` (same look-up table),
    labels / change int64, ``sentinel`` float32 (B, T, 14, h, w) ``(x - mean) / std`` with
    no data (and month padding) -> 0, ``sentinel_valid`` from ``counts``. Non-compact batches
    are just moved to the device. Pure: the input batch is not modified.

    Args:
        batch: :func:`fusu_collate` output of compact samples (CPU, possibly pinned).
        stats: :attr:`FusuDataset.norm_stats` (or the raw ``stats.json`` dict, parsed here);
            None = no normalisation (``normalize=False``: HR in [0, 1], Sentinel in
            reflectance / dB).
        device: target ``torch.device`` (or its name).
        months: keep only the last N time steps (all samples must have N real months).
        hr_size: resize HR images (bilinear, antialiased) and labels (nearest) to this side,
            as ``FusuDataset(hr_size=...)`` does per sample.

    Raises:
        DatasetError: unparseable stats, or ``months`` longer than a sample's series.
    """
    import torch

    dev = torch.device(device)

    def move(v: Any) -> Any:
        return v.to(dev, non_blocking=True) if torch.is_tensor(v) else v

    if not is_compact(batch):
        return {k: move(v) for k, v in batch.items()}
    st: dict[str, np.ndarray] | None
    if stats is None:
        st = None
    elif "s_mean" in stats:
        st = {k: np.asarray(v, np.float32) for k, v in stats.items()}
    else:
        st = parse_stats(stats)
    out: dict[str, Any] = {}
    lut = torch.from_numpy(
        hr_lut(st["hr_mean"], st["hr_std"]) if st else hr_lut(None, None)
    ).to(dev)
    chan = torch.arange(3, device=dev).view(1, 3, 1, 1)
    for k in ("t1", "t2"):
        if k in batch:
            img = move(batch[k]).long()
            out[k] = lut[chan, img]  # (B, 3, H, W) float32, same values as apply_hr_lut
    for k in ("label1", "label2", "change"):
        if k in batch:
            out[k] = move(batch[k]).long()
    if hr_size is not None and "t1" in out and hr_size != out["t1"].shape[-1]:
        import torch.nn.functional as F  # noqa: N812

        for k in ("t1", "t2"):
            out[k] = F.interpolate(
                out[k], size=(hr_size, hr_size), mode="bilinear", antialias=True,
                align_corners=False,
            )
        for k in ("label1", "label2", "change"):
            if k in out:
                out[k] = F.interpolate(
                    out[k][:, None].float(), size=(hr_size, hr_size), mode="nearest"
                )[:, 0].long()
    if "s2_dn" in batch:
        dn = move(batch["s2_dn"])
        s1 = move(batch["s1"])
        counts = move(batch["counts"])
        mask = move(batch["month_mask"])
        if months is not None:
            n = int(months)
            t = dn.shape[1]
            if n > t or (n and not bool(mask[:, t - n :].all())):
                raise DatasetError(
                    f"prepare_batch: months={n} but the batch has series of "
                    f"{mask.sum(dim=1).tolist()} months; select months in FusuDataset instead"
                )
            sl = slice(t - n, t)
            dn, s1, counts, mask = dn[:, sl], s1[:, sl], counts[:, sl], mask[:, sl]
            if isinstance(batch.get("meta"), list):  # copies: the input batch stays as it was
                out["meta"] = [
                    {**m, "months": list(m.get("months", []))[len(m.get("months", [])) - n :]}
                    for m in batch["meta"]
                ]
        b, t, nb2, h, w = dn.shape
        x = torch.empty((b, t, nb2 + s1.shape[2], h, w), dtype=torch.float32, device=dev)
        xs2 = x[:, :, :nb2]
        xs2.copy_(dn)  # uint16 -> float32 is exact; few uint16 kernels exist on CUDA
        nodata = xs2 == float(S2_NODATA_DN)
        xs2 /= S2_DN_SCALE  # float32 division, as read_footprint_cube does in numpy
        xs2.masked_fill_(nodata, float("nan"))
        x[:, :, nb2:] = s1
        if st is not None:
            mean = torch.from_numpy(st["s_mean"]).to(dev).view(1, 1, -1, 1, 1)
            inv = torch.from_numpy((1.0 / st["s_std"]).astype(np.float32)).to(dev)
            x -= mean
            x *= inv.view(1, 1, -1, 1, 1)
        x.masked_fill_(torch.isnan(x), 0.0)
        out["sentinel"] = x
        out["sentinel_valid"] = (counts > 0).any(dim=2)
        out["counts"] = counts
        out["month_mask"] = mask
    for k, v in batch.items():
        if k not in out and k not in ("s2_dn", "s1"):
            out[k] = move(v)
    return {k: out[k] for k in _key_order(batch, out)}


def _key_order(batch: dict[str, Any], out: dict[str, Any]) -> list[str]:
    """The non-compact batch's key order (sentinel / sentinel_valid before counts)."""
    order: list[str] = []
    for k in batch:
        if k == "s2_dn":
            order += ["sentinel", "sentinel_valid"]
        elif k != "s1":
            order.append(k)
    return [k for k in order if k in out]
