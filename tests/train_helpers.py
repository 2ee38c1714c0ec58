"""Synthetic in-memory samples in the exact FusuDataset dict form (for training tests).

Shapes follow pipeline.dataset.torchds: t1/t2 float32 (3, H, W); label1/label2 int64 (H, W)
with 255 =
no data; change int64 (H, W) 0/1/255; sentinel float32 (T, 14, h, w); month_mask bool (T,);
counts uint8 (T, 2, h, w); patch_box float32 (4,) = (off_x, off_y, w, h) in footprint px.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch


class SyntheticFusu(torch.utils.data.Dataset):
    """``n`` deterministic samples; labels are a learnable function of the HR image.

    The T1 label is the argmax of 3 smooth class "scores" written into the RGB image (so a
    model can fit it), T2 changes the class in the lower-right quadrant. Series lengths
    alternate between ``t`` and ``t - 1`` months to exercise padding in collate.
    """

    def __init__(self, n: int = 4, hr: int = 64, fp: int = 16, t: int = 4, seed: int = 0,
                 n_classes: int = 18) -> None:
        rng = np.random.default_rng(seed)
        self.samples: list[dict[str, Any]] = []
        for i in range(n):
            scores = rng.normal(size=(3, hr // 8, hr // 8)).repeat(8, 1).repeat(8, 2)
            lab1 = scores.argmax(0) + 1  # classes 1..3
            lab2 = lab1.copy()
            lab2[hr // 2:, hr // 2:] = 4
            lab1[:2, :] = 255  # a no-data strip
            change = (lab1 != lab2).astype(np.int64)
            change[lab1 == 255] = 255
            t1 = scores.astype(np.float32)
            t2 = t1.copy()
            t2[:, hr // 2:, hr // 2:] = 2.0
            tt = t if i % 2 == 0 else max(1, t - 1)
            box = fp * 2 / 5
            self.samples.append({
                "t1": torch.from_numpy(t1),
                "t2": torch.from_numpy(t2),
                "label1": torch.from_numpy(lab1.astype(np.int64)),
                "label2": torch.from_numpy(lab2.astype(np.int64)),
                "change": torch.from_numpy(change),
                "sentinel": torch.from_numpy(rng.normal(size=(tt, 14, fp, fp)).astype(np.float32)),
                "month_mask": torch.ones(tt, dtype=torch.bool),
                "counts": torch.ones((tt, 2, fp, fp), dtype=torch.uint8),
                "patch_box": torch.tensor([box, box, fp / 5, fp / 5], dtype=torch.float32),
                "meta": {"patch_id": f"syn_r000_c{i:03d}"},
            })

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self.samples[i]


def collate(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Minimal stand-in for pipeline.dataset.torchds.fusu_collate (pads the time axis at the
    end)."""
    out: dict[str, Any] = {"meta": [s["meta"] for s in samples]}
    t_max = max(s["month_mask"].shape[0] for s in samples)
    for k in samples[0]:
        if k == "meta":
            continue
        vals = [s[k] for s in samples]
        if k in ("sentinel", "month_mask", "counts"):
            vals = [torch.cat([v, v.new_zeros((t_max - v.shape[0], *v.shape[1:]))]) for v in vals]
        out[k] = torch.stack(vals)
    return out
