"""The PyTorch dataset of an expanded change dataset (:class:`ExpandedDataset`): the original
image pairs and change labels of OSCD, SpaceNet 7, DynamicEarthNet, xBD or georeferenced pairs,
with each sample's own Sentinel cube, in :class:`pipeline.dataset.torchds.FusuDataset`'s
sample format."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.bands import ALL_BANDS
from pipeline.dataset.normalize import (
    WAVELENGTHS_NM,
    band_stats,
    select_months,
    sentinel_arrays,
)
from pipeline.errors import DatasetError
from pipeline.io.jsonfile import read_json_if_exists
from pipeline.layout import Layout


class ExpandedDataset:
    """Map-style dataset of an expanded change dataset (``expand/samples.parquet`` + its
    Sentinel cubes), in :class:`FusuDataset`'s sample format, so ``fusu_collate`` and the
    training stage take it unchanged (``train.dataset: expanded``).

    Per sample: ``t1``, ``t2`` float32 (3, hr_size, hr_size) RGB of the original images
    (B04/B03/B02 for OSCD band folders; R, G, B of DynamicEarthNet's B, G, R, NIR images), per
    image and channel scaled by its 2-98 % range and centred (``(v - 0.5) / 0.25``);
    ``change`` int64 (hr_size, hr_size) 0/1, 255 = ignored or no label (nearest resize;
    DynamicEarthNet: first vs last labelled month); ``label1`` / ``label2``: DynamicEarthNet's
    classes of the first and the last labelled month as ids 1..6 (the first six of
    :data:`pipeline.expand.datasets.dynamicearthnet.DEN_CLASSES`;
    255 = no class or snow & ice) in the model's 18 outputs (:attr:`class_ids` restricts the
    predictions to them); other datasets all 255 (no land-use classes: the segmentation losses
    are skipped); ``sentinel`` float32
    (T, 14, fp_px, fp_px) of the sample's own months (``read_sample_cube``), standardised with
    ``expand/stats.json``, NaN -> 0, bilinear resize to ``fp_px`` (the footprints of a dataset
    differ in size); ``sentinel_valid``, ``counts``, ``month_mask``; ``patch_box`` scaled to
    ``fp_px``; ``meta`` (sample id, group, dates, months).

    ``den_pairs``: DynamicEarthNet's evaluation protocol instead: one sample per consecutive
    pair of labelled months (j, j+1) of every cube (``t1`` / ``t2`` = the first image of each
    month, ``label1`` / ``label2`` / ``change`` of those months; ``meta``: ``den_cube``,
    ``den_pair`` = j, ``den_months``), so a cube's predicted monthly maps can be scored with
    :func:`pipeline.train.metrics.den_scs`.

    Splits: ``source_split`` of the index (OSCD's train.txt / test.txt, DynamicEarthNet's
    train / val / test files); ``val`` is the test list where the dataset ships no val list; a
    dataset that ships no split lists gives every sample to every split.

    Raises:
        DatasetError: no index, an empty split.
    """

    def __init__(self, root: str | Path, split: str | None = "train", hr_size: int = 256,
                 fp_px: int = 64, months: int | None = None, den_pairs: bool = False) -> None:
        from pipeline.io.parquet import read_geoparquet

        self.root = Path(root)
        self.layout = Layout(self.root)
        self.hr_size, self.fp_px, self.months = int(hr_size), int(fp_px), months
        path = self.layout.expand_samples()
        if not path.is_file():
            raise DatasetError(f"{path} does not exist: run the expansion (rule expand)")
        idx = read_geoparquet(path)
        self._index = idx
        src = idx["source_split"].astype(str) if "source_split" in idx.columns else None
        if split not in (None, "all") and src is not None and (src != "").any():
            # the dataset's own list of that name; val falls back to the test list where the
            # dataset ships no val list (OSCD)
            want = str(split) if split in ("train", "val", "test") else "train"
            if want == "val" and not (src == "val").any():
                want = "test"
            idx = idx[src == want]
        if len(idx) == 0:
            raise DatasetError(f"split {split!r} of {path} is empty")
        self._rows = idx.sort_values("sample_id").to_dict("records")
        den = any(r.get("label_encoding") == "den-onehot" for r in self._rows)
        #: (row, pair): pair None = the sample itself, j = months (j, j + 1) of a DEN cube
        self._items: list[tuple[int, int | None]] = [(i, None) for i in range(len(self._rows))]
        if den_pairs:
            self._items = [(i, j) for i, r in enumerate(self._rows)
                           if r.get("label_encoding") == "den-onehot"
                           for j in range(len(json.loads(r["files"]).get("labels", {})) - 1)]
            if not self._items:
                raise DatasetError(f"split {split!r} of {path} has no DynamicEarthNet cube with "
                                   "two labelled months: den_pairs needs one")
        if den:
            from pipeline.expand.datasets.dynamicearthnet import DEN_CLASSES

            # the six classes the official loader trains (snow & ice, band 7, is ignored)
            self.class_names: tuple[str, ...] = tuple(DEN_CLASSES[:6])
        else:
            self.class_names = ()

        stats = read_json_if_exists(self.layout.expand_layout().stats()) or {}
        sen = stats.get("sentinel") or {}
        self._mean: np.ndarray | None = None
        self._std: np.ndarray | None = None
        if sen.get("mean") and sen.get("std"):
            self._mean, self._std = band_stats(sen, ALL_BANDS,
                                               str(self.layout.expand_layout().stats()))

    def __len__(self) -> int:
        return len(self._items)

    @property
    def class_ids(self) -> tuple[int, ...] | None:
        """The dataset's classes among the model's outputs (ids 1..n of ``class_names``);
        None: no semantic labels."""
        return tuple(range(1, 1 + len(self.class_names))) if self.class_names else None

    @property
    def patch_ids(self) -> list[str]:
        return [self._item_id(i) for i in range(len(self._items))]

    def _item_id(self, k: int) -> str:
        i, j = self._items[k]
        sid = str(self._rows[i]["sample_id"])
        if j is None:
            return sid
        return f"{sid}:{sorted(json.loads(self._rows[i]['files'])['labels'])[j]}"

    def __getitem__(self, i: int) -> dict[str, Any]:
        import torch
        import torch.nn.functional as F  # noqa: N812

        from pipeline.expand.cube import read_sample_cube
        from pipeline.expand.datasets.common import read_change_label, read_sample_rgb
        from pipeline.expand.datasets.dynamicearthnet import read_den_label
        from pipeline.expand.datasets.xbd import read_xbd_change

        if not 0 <= i < len(self._items):
            raise IndexError(i)
        row, pair = self._items[i]
        r = self._rows[row]
        files = json.loads(r["files"])
        size = (self.hr_size, self.hr_size)

        den = r.get("label_encoding") == "den-onehot"

        months_l = sorted(files.get("labels") or {})
        if pair is not None:  # DynamicEarthNet's consecutive months (j, j + 1)
            pair_months = months_l[pair:pair + 2]
            if set(pair_months) - set(files.get("month_images") or {}):
                raise DatasetError(f"sample {r['sample_id']}: no image of months {pair_months} "
                                   "in the index: rerun the expansion (rule expand)")
            paths = {k: files["month_images"][m] for k, m in zip(("t1", "t2"), pair_months,
                                                                  strict=True)}
        else:
            pair_months = months_l[:1] + months_l[-1:]
            paths = {"t1": files["t1"], "t2": files["t2"]}

        def rgb(key: str) -> Any:
            a = read_sample_rgb(paths[key], (3, 2, 1) if den else (1, 2, 3))
            lo = np.nanpercentile(a, 2, axis=(1, 2))[:, None, None]
            hi = np.nanpercentile(a, 98, axis=(1, 2))[:, None, None]
            v = np.clip((a - lo) / np.maximum(hi - lo, 1e-6), 0, 1)
            t = torch.from_numpy(((np.nan_to_num(v) - 0.5) / 0.25).astype(np.float32))
            return F.interpolate(t[None], size=size, mode="bilinear", antialias=True,
                                 align_corners=False)[0]

        t1, t2 = rgb("t1"), rgb("t2")
        none = torch.full(size, 255, dtype=torch.long)
        lab1, lab2 = none, none.clone()

        def resized(a: np.ndarray) -> Any:
            return F.interpolate(torch.from_numpy(a)[None, None].float(), size=size,
                                 mode="nearest")[0, 0].long()

        if den and files.get("labels"):
            # DynamicEarthNet: the classes of the first and the last labelled month (or of the
            # pair's two months; ids 1..6) and the change between them (255 where either has
            # no class)
            a = read_den_label(files["labels"][pair_months[0]])
            b = read_den_label(files["labels"][pair_months[-1]])
            c = np.where((a == 255) | (b == 255), 255, (a != b).astype(np.uint8))
            chg = resized(c)
            lab1 = resized(np.where(a == 255, 255, a.astype(np.int64) + 1))
            lab2 = resized(np.where(b == 255, 255, b.astype(np.int64) + 1))
        elif r.get("label_encoding") == "xbd-damage" and files.get("label_post"):
            # xBD: damaged buildings of the post label (255 on un-classified ones)
            h0, w0 = int(r.get("height_px") or 1024), int(r.get("width_px") or 1024)
            c = read_xbd_change(files["label_post"], h0, w0)
            chg = F.interpolate(torch.from_numpy(c)[None, None].float(), size=size,
                                mode="nearest")[0, 0].long()
        elif files.get("label") and r.get("label_encoding"):
            chg = torch.from_numpy(read_change_label(files["label"], str(r["label_encoding"])))
            chg = F.interpolate(chg[None, None].float(), size=size,
                                mode="nearest")[0, 0].long()
        else:
            chg = torch.full(size, 255, dtype=torch.long)
        cube = read_sample_cube(self.layout, str(r["sample_id"]), self._index)
        keep = select_months(len(cube["months"]), self.months, cube["months"])
        x, counts = cube["x"][keep], cube["counts"][keep]
        vals, valid = sentinel_arrays(x, counts, self._mean, self._std, inplace=True)
        s = int(vals.shape[-1])
        fp = (self.fp_px, self.fp_px)
        sen = torch.from_numpy(vals)
        if len(keep):
            sen = F.interpolate(sen, size=fp, mode="bilinear", align_corners=False)
        else:
            sen = torch.zeros((0, vals.shape[1], *fp), dtype=torch.float32)
        vmask = torch.from_numpy(valid)[:, None].float()
        vmask = (F.interpolate(vmask, size=fp, mode="nearest")[:, 0] > 0) if len(keep) \
            else torch.zeros((0, *fp), dtype=torch.bool)
        cnt = torch.from_numpy(np.ascontiguousarray(counts))
        cnt = (F.interpolate(cnt.float(), size=fp, mode="nearest").to(torch.uint8)
               if len(keep) else torch.zeros((0, 2, *fp), dtype=torch.uint8))
        k = self.fp_px / max(s, 1)
        box = torch.tensor([v * k for v in cube["patch_box_px"]], dtype=torch.float32)
        months = [cube["months"][j] for j in keep]
        return {
            "t1": t1, "t2": t2, "label1": lab1, "label2": lab2, "change": chg,
            "sentinel": sen, "sentinel_valid": vmask, "counts": cnt,
            "month_mask": torch.ones(len(months), dtype=torch.bool), "patch_box": box,
            "meta": {"patch_id": self._item_id(i), "aoi": cube["group"],
                     "den_cube": str(r["sample_id"]) if pair is not None else None,
                     "den_pair": pair, "den_months": pair_months if pair is not None else None,
                     "city": r.get("city"), "split": r.get("source_split") or None,
                     "t1": r.get("t1"), "t2": r.get("t2"), "months": months,
                     "bands": list(ALL_BANDS), "wavelengths_nm": list(WAVELENGTHS_NM),
                     "gsd_m": r.get("gsd_m"), "sentinel_gsd_m": None,
                     "footprint": (r.get("fp_col0"), r.get("fp_row0"), r.get("fp_size_px")),
                     "class_ids": list(self.class_ids or ()),
                     "class_names": list(self.class_names)},
        }
