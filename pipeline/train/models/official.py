"""The official FUSU model on the project's batches (``train.model: official``, set by
``train.preset: official``).

:class:`OfficialFusuNet` holds the official code's ``FCN("hrnet_w18", ..., 17, False)``
(:mod:`pipeline.train.models.fusu_official`, ported unchanged, so its weights load as they are)
and maps a project batch onto its inputs and back:

* inputs: ``t1``, ``t2`` (B, 3, H, W) as the project normalises them (the official dataset's
  ``Normalize((123.675, ...), (58.395, ...))`` after ``ToTensor``, which puts pixels near
  -2.1 whatever their value, is not reproduced); the series = ``sentinel`` (B, T, 14, h, w,
  standardised, no data 0) plus the official 15th band, a clear flag (1 where the month had a
  clear S2 observation: ``counts[:, :, 0] > 0``), as ``export.official_training`` writes it.
  Padded months are all-zero, which the official U-TAE's ``pad_value=0`` skips.
* outputs: ``seg1`` / ``seg2`` / ``seg_ts`` (B, 18, H, W): the official 17 outputs are classes
  1..17 (its labels are class - 1, background ignored), so class 0 gets a constant -1e4 logit
  and is never predicted; ``change`` (B, 1, H, W) = logit of the official change probability
  (the official ``sigmoid`` is inside its forward: > 0 here is its > 0.5); ``official`` = the
  four raw outputs for :func:`pipeline.train.losses.official_losses`.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from pipeline.train.models.fusu_official import FCN

#: Logit of background (class 0), which the official model has no output for.
NO_BACKGROUND_LOGIT = -1e4


def _with_background(x: torch.Tensor) -> torch.Tensor:
    """(B, 17, H, W) official class scores -> (B, 18, H, W) with class 0 never chosen."""
    bg = x.new_full((x.shape[0], 1, *x.shape[2:]), NO_BACKGROUND_LOGIT)
    return torch.cat([bg, x], dim=1)


class OfficialFusuNet(nn.Module):
    """The official FUSU model (see the module docstring).

    Args:
        n_classes: the project's classes (18 = background + 17); the official model has
            ``n_classes - 1`` outputs.
        pretrained_path: HRNet-W18 weights (the HRNet repository's ImageNet checkpoint, the
            official ``data/pretrained_models/hrnet_w18.pth``), None = random init.
    """

    def __init__(self, n_classes: int = 18, pretrained_path: str | None = None) -> None:
        super().__init__()
        self.net = FCN("hrnet_w18", False, n_classes - 1, False)
        if pretrained_path:  # the official init_weights: the backbone's keys, others skipped
            from pipeline.train.models.fusunet import load_backbone_weights

            load_backbone_weights(self.net.backbone, pretrained_path)

    @staticmethod
    def series(batch: dict[str, Any]) -> torch.Tensor:
        """(B, T, 15, h, w): the standardised 14 bands and the clear flag."""
        s = batch["sentinel"]
        clear = (batch["counts"][:, :, 0] > 0).to(s.dtype)[:, :, None]
        if "month_mask" in batch:  # padded months stay all-zero (the official pad value)
            clear = clear * batch["month_mask"].to(s.dtype)[:, :, None, None, None]
        return torch.cat([s, clear], dim=2)

    def forward(self, batch: dict[str, Any]) -> dict[str, Any]:
        hr, fp = batch["t1"].shape[-1], batch["sentinel"].shape[-1]
        if hr != 4 * fp:
            from pipeline.errors import TrainingError

            raise TrainingError(
                f"the official model adds its U-TAE map ({fp} px) to the HR features at 1/4 of "
                f"the HR side ({hr} px): it needs HR = 4 x the footprint (512 / 128 in FUSU); "
                f"set train.hr_size_px to {4 * fp}")
        out1, out2, out_bin, out3 = self.net(batch["t1"], batch["t2"], self.series(batch))
        p = out_bin.float().clamp(1e-6, 1 - 1e-6)
        return {"seg1": _with_background(out1), "seg2": _with_background(out2),
                "seg_ts": _with_background(out3), "change": torch.logit(p)[:, None],
                "official": (out1, out2, out_bin, out3)}
