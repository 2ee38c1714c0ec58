"""The training loss (FUSU A.5.3, Eq. 4)::

    L = CE(seg1, label1) + CE(seg2, label2) + CE(seg_ts, label1) + w_c * BCE(change, change_gt)

with ``w_c = change_loss_weight``, 255 ignored everywhere; models without a change head drop
the BCE term."""

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
