"""The training loss (FUSU A.5.3, Eq. 4)::

    L = CE(seg1, label1) + CE(seg2, label2) + CE(seg_ts, label1) + w_c * BCE(change, change_gt)

with ``w_c = change_loss_weight``, 255 ignored everywhere; models without a change head drop
the BCE term. ``train.loss: official`` (set by ``train.preset: official``) is the official
code's instead (:func:`official_losses`)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812

from pipeline.train.metrics import IGNORE_INDEX


def _ce(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Cross-entropy over valid pixels (255 ignored); 0 if no valid pixel."""
    loss = F.cross_entropy(logits.float(), target, ignore_index=IGNORE_INDEX, reduction="sum")
    return loss / (target != IGNORE_INDEX).sum().clamp(min=1)


def _bce(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy with logits over pixels whose target is not 255."""
    valid = target != IGNORE_INDEX
    loss = F.binary_cross_entropy_with_logits(
        logits.float().squeeze(1), target.clamp(max=1).float(), reduction="none")
    return (loss * valid).sum() / valid.sum().clamp(min=1)


def compute_losses(out: dict[str, torch.Tensor], batch: dict[str, Any],
                   change_weight: float) -> dict[str, torch.Tensor]:
    """Loss terms (FUSU Eq. 4) of one forward pass; key 'loss' is the weighted total."""
    zero = out["seg1"].new_zeros((), dtype=torch.float32)
    terms = {
        "loss_seg1": _ce(out["seg1"], batch["label1"]),
        "loss_seg2": _ce(out["seg2"], batch["label2"]),
        "loss_ts": _ce(out["seg_ts"], batch["label1"]) if "seg_ts" in out else zero,
        "loss_change": _bce(out["change"], batch["change"]) if "change" in out else zero,
    }
    terms["loss"] = (terms["loss_seg1"] + terms["loss_seg2"] + terms["loss_ts"]
                     + change_weight * terms["loss_change"])
    return terms


def official_losses(out: dict[str, Any], batch: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The official FUSU ``train.py`` loss on the official model's raw outputs
    (``out["official"]`` of :class:`pipeline.train.models.official.OfficialFusuNet`)::

        out = out.clamp(0, 1), NaN -> 0            (each of the four outputs)
        L = BCE_w(out_bin, label_bin) + 0.5 (CE(out1, y1) + CE(out2, y2)) + CE(out3, y1)

    with its labels: ``y = class - 1`` and -1 (ignored) where the project's label is
    background (0) or no data (255); ``label_bin`` = 1 where the project's change is 1, else
    0 (its ignored pixels are 0, as the export writes them); ``BCE_w`` = per-pixel BCE with
    changed pixels weighted 2, averaged over all pixels. A term whose pixels are all ignored
    is 0 (the official mean over nothing would be NaN)."""
    out1, out2, out_bin, out3 = (torch.nan_to_num(o.float().clamp(0, 1), nan=0.0)
                                 for o in out["official"])

    def target(label: torch.Tensor) -> torch.Tensor:
        ok = (label >= 1) & (label != IGNORE_INDEX)
        return torch.where(ok, label - 1, torch.full_like(label, -1))

    def ce(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if not (y != -1).any():
            return x.new_zeros(())
        return F.cross_entropy(x, y, ignore_index=-1)

    y1, y2 = target(batch["label1"]), target(batch["label2"])
    mask_bin = (batch["change"] == 1).float()
    bce = F.binary_cross_entropy(out_bin, mask_bin, reduction="none")
    bce = torch.where(mask_bin == 1, 2 * bce, bce).mean()
    terms = {"loss_seg1": ce(out1, y1), "loss_seg2": ce(out2, y2), "loss_ts": ce(out3, y1),
             "loss_change": bce}
    terms["loss"] = bce + 0.5 * (terms["loss_seg1"] + terms["loss_seg2"]) + terms["loss_ts"]
    return terms
