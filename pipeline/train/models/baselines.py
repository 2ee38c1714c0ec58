"""Sentinel-only baseline: U-TAE predicting the HR patch's segmentation from the time series.

Output dict: ``seg1``, ``seg2`` ``(B, n_classes, H, W)`` logits of the two dates (two 1x1 heads
on the shared U-TAE features, centre-cropped to the HR patch with ``patch_box`` and upsampled to
the label size). No change head: binary change is derived as ``argmax(seg1) != argmax(seg2)``.
FUSU's Table 3 U-TAE row is the segmentation of this model.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from pipeline.train.models.fusunet import crop_to_patch
from pipeline.train.models.utae import UTAE


class UTAESeg(nn.Module):
    def __init__(self, n_classes: int = 18, ts_channels: int = 64, in_ts: int = 14,
                 utae_kwargs: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.n_classes = n_classes
        self.utae = UTAE(input_dim=in_ts, out_channels=ts_channels, **(utae_kwargs or {}))
        self.head1 = nn.Conv2d(ts_channels, n_classes, 1)
        self.head2 = nn.Conv2d(ts_channels, n_classes, 1)

    def change_parameters(self) -> list[nn.Parameter]:
        return []

    def forward(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        H, W = batch["label1"].shape[-2:] if "label1" in batch else batch["t1"].shape[-2:]
        ts = self.utae(batch["sentinel"], batch["month_mask"])
        return {
            "seg1": crop_to_patch(self.head1(ts), batch["patch_box"], (H, W)),
            "seg2": crop_to_patch(self.head2(ts), batch["patch_box"], (H, W)),
        }
