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

from pipeline.bands import ALL_BANDS
from pipeline.dataset.normalize import (
    WAVELENGTHS_NM,
    apply_hr_lut,
    class_table,
    hr_lut,
    parse_stats,
    select_months,
    sentinel_arrays,
)
from pipeline.errors import DatasetError
from pipeline.hr.footprints import FOOTPRINT_COLUMNS
from pipeline.io.geotiff import read_patch
from pipeline.io.jsonfile import read_json_if_exists
from pipeline.io.mosaic_read import read_cube
from pipeline.io.parquet import read_index_table
from pipeline.layout import Layout

_REQUIRED_COLUMNS = ("patch_id", "aoi", "hr_t1", "hr_t2")
#: Numeric footprint columns of the index (the tile index's footprint columns minus the WKB).
_FOOTPRINT_COLUMNS = tuple(c for c in FOOTPRINT_COLUMNS if c != "fp_geometry_wkb")


def _pixels(path: Path, what: str) -> np.ndarray:
    """``(bands, h, w)`` of a patch GeoTIFF in its stored dtype."""
    data = read_patch(path, what).data
    assert data is not None
    return data


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

    def label_path(self, patch_id: str, date: str = "t1") -> Path:
        """The ``date`` (``t1`` / ``t2``) label GeoTIFF of patch ``patch_id`` (its grid is the
        patch's: predictions are written on it)."""
        rec = self._by_id().get(patch_id)
        if rec is None:
            raise KeyError(patch_id)
        return self._path(rec, f"label_{date}", self.layout.labels_dir(rec["aoi"], date),
                          patch_id)

    def _by_id(self) -> dict[str, dict[str, Any]]:
        if not hasattr(self, "_index_by_id"):
            self._index_by_id = {r["patch_id"]: r for r in self._records}
        return self._index_by_id

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
                img1, img2, l1, l2, ch = resize_sample(self.hr_size, img1, img2, l1, l2, ch)

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


def resize_sample(size: int, img1: Any, img2: Any, *labels: Any) -> tuple[Any, ...]:
    """Images (C, H, W) resized to ``size`` px (bilinear, antialiased) and label maps (H, W)
    (nearest, int64), as the HR part of a sample is."""
    import torch.nn.functional as F  # noqa: N812

    def img(t: Any) -> Any:
        return F.interpolate(
            t[None], size=(size, size), mode="bilinear", antialias=True, align_corners=False
        )[0]

    def lab(t: Any) -> Any:
        return F.interpolate(t[None, None].float(), size=(size, size), mode="nearest")[0, 0].long()

    return (img(img1), img(img2), *(lab(t) for t in labels))
