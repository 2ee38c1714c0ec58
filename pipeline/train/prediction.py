"""Model logits -> predictions (class maps and binary change), as evaluation, prediction and
the metrics use them."""

from __future__ import annotations

import numpy as np
import torch


def predictions(out: dict[str, torch.Tensor],
                class_ids: tuple[int, ...] | None = None) -> dict[str, np.ndarray]:
    """Class maps (B, H, W) int64 and binary change (B, H, W) uint8 from model logits.

    ``class_ids``: the dataset's own classes (a DynamicEarthNet expansion uses 1..6 of the 18
    outputs); the argmax then runs over those only, so a class the dataset cannot hold is
    never predicted."""
    s1, s2 = out["seg1"], out["seg2"]
    if class_ids:
        keep = torch.full((s1.shape[1],), float("-inf"), device=s1.device, dtype=s1.dtype)
        keep[list(class_ids)] = 0.0
        s1, s2 = s1 + keep[None, :, None, None], s2 + keep[None, :, None, None]
    p1 = s1.argmax(1)
    p2 = s2.argmax(1)
    pc = (out["change"][:, 0] > 0) if "change" in out else (p1 != p2)
    return {"pred1": p1.cpu().numpy(), "pred2": p2.cpu().numpy(),
            "pred_change": pc.to(torch.uint8).cpu().numpy()}
