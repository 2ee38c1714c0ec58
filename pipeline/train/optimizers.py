"""The optimizer recipes of ``train.optimizer`` (paper A.5.2 and the official code's)."""

from __future__ import annotations

import torch
from torch import nn

from pipeline.config import TrainConfig

#: The official code's LR multiplier of the non-backbone parameters (train.py: ``args.lr * 10``).
OFFICIAL_HEAD_LR_MULT = 10.0


def make_optimizers(model: nn.Module, cfg: TrainConfig, total_steps: int) -> tuple[
        list[torch.optim.Optimizer], list[torch.optim.lr_scheduler.LambdaLR]]:
    """The optimizers of ``cfg.optimizer``: ``split`` = SGD (+poly) over the segmentation
    parameters and AdamW (+linear decay) over the change branch; ``sgd`` / ``adamw`` = one
    optimizer over every parameter (the paper's per-task recipes: SGD + poly for
    segmentation, AdamW + linear decay for change detection); ``official`` = the official
    FUSU train.py: one Adam (L2 weight decay), ``official_lr`` on the parameters whose name
    holds ``backbone`` and 10x on the others, both decayed by poly 0.9 per step."""
    total = max(1, total_steps)
    if cfg.optimizer == "official":
        named = list(model.named_parameters())
        adam = torch.optim.Adam(
            [{"params": [p for n, p in named if "backbone" in n], "lr": cfg.official_lr},
             {"params": [p for n, p in named if "backbone" not in n],
              "lr": cfg.official_lr * OFFICIAL_HEAD_LR_MULT}],
            lr=cfg.official_lr, weight_decay=cfg.official_weight_decay)
        return [adam], [torch.optim.lr_scheduler.LambdaLR(
            adam, lambda s: max(0.0, 1.0 - s / total) ** cfg.poly_power)]
    if cfg.optimizer == "sgd":
        sgd = torch.optim.SGD(model.parameters(), lr=cfg.seg_lr, momentum=cfg.seg_momentum,
                              weight_decay=cfg.seg_weight_decay)
        return [sgd], [torch.optim.lr_scheduler.LambdaLR(
            sgd, lambda s: max(0.0, 1.0 - s / total) ** cfg.poly_power)]
    if cfg.optimizer == "adamw":
        adamw = torch.optim.AdamW(model.parameters(), lr=cfg.change_lr, betas=cfg.change_betas)
        return [adamw], [torch.optim.lr_scheduler.LambdaLR(
            adamw, lambda s: max(0.0, 1.0 - s / total))]
    change_ids = {id(p) for p in getattr(model, "change_parameters")()}  # noqa: B009
    seg_params = [p for p in model.parameters() if id(p) not in change_ids]
    change_params = [p for p in model.parameters() if id(p) in change_ids]
    opts: list[torch.optim.Optimizer] = [torch.optim.SGD(
        seg_params, lr=cfg.seg_lr, momentum=cfg.seg_momentum, weight_decay=cfg.seg_weight_decay)]
    scheds = [torch.optim.lr_scheduler.LambdaLR(
        opts[0], lambda s: max(0.0, 1.0 - s / total) ** cfg.poly_power)]
    if change_params:
        opts.append(torch.optim.AdamW(change_params, lr=cfg.change_lr, betas=cfg.change_betas))
        scheds.append(torch.optim.lr_scheduler.LambdaLR(
            opts[1], lambda s: max(0.0, 1.0 - s / total)))
    return opts, scheds
