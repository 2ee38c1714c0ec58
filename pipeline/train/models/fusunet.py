"""FUSU-Net (FUSU paper, section 4) and the HR-only variant.

Inputs (a batch from :func:`pipeline.dataset.torchds.fusu_collate`):
``t1``, ``t2`` float32 ``(B, 3, H, W)`` HR RGB (normalised); ``sentinel`` float32
``(B, T, 14, h, w)`` footprint cube on the 10 m grid; ``month_mask`` bool ``(B, T)``;
``patch_box`` float32 ``(B, 4)`` = (off_x, off_y, w, h) of the HR patch inside the footprint, in
footprint pixels.

Outputs (dict of logits): ``seg1``, ``seg2`` ``(B, n_classes, H, W)``; ``change`` ``(B, 1, H, W)``
(binary change logit); with the Sentinel branch also ``seg_ts`` ``(B, n_classes, H, W)`` = the
time-series head centre-cropped to the HR patch and upsampled to the label size.

Architecture:
(a) U-TAE over the Sentinel cube -> features ``(B, C_ts, h, w)``.
(b) A timm backbone (default HRNet) shared by both dates; its multi-scale features are
    upsampled to stride 4 and concatenated (HRNetV2 style) and reduced to ``C`` channels.
    One segmentation head (ASPP-style, weights shared by the dates) per date, and a change head
    (pyramid pooling, PSPNet-style) on ``|f1 - f2|``.
(c) Fusion, added to each date's HR features: (1) the time-series features centre-cropped to
    the HR patch with ``roi_align`` (box = patch_box; bilinear, so crop + upsample in one op),
    then a 1x1 conv; (2) the whole footprint through a dilated-conv bottleneck, resized to the
    HR feature size (global context).
(d) The change branch (``change_fusion``). The paper and the official code add the same fused
    series to both dates and take ``|f1 - f2|``: the series cancels exactly, so the change
    logits do not depend on it and no change-loss gradient reaches the U-TAE (``"paper"``, kept
    for the ablation). ``"temporal"`` (default) feeds the series to the change head after the
    difference: a per-month embedding averaged over the earlier and the later half of the valid
    months, whose absolute difference is the series' own change signal, concatenated with the
    U-TAE features, centre-cropped to the patch and concatenated with ``|f1 - f2|``. It is
    after the difference, so nothing cancels; the early/late split follows the series' order
    (T1 -> T2), which is the question the change head answers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from pipeline.train.models.utae import UTAE, _gn


def crop_to_patch(feat: torch.Tensor, patch_box: torch.Tensor, out_size: tuple[int, int],
                  footprint_size: tuple[int, int] | None = None) -> torch.Tensor:
    """Centre crop ``feat`` (B, C, h, w) to each sample's HR patch and resize to ``out_size``.

    ``patch_box`` (B, 4) = (off_x, off_y, w, h) in footprint pixels; ``footprint_size`` (h, w)
    of the footprint grid in pixels (default: feat's own size, i.e. feat is on that grid).
    Uses torchvision's ``roi_align`` (aligned=True: pixel i covers [i, i+1)).
    """
    from torchvision.ops import roi_align

    B = feat.shape[0]
    fh, fw = footprint_size or tuple(feat.shape[-2:])
    scale = feat.shape[-1] / fw
    if abs(feat.shape[-2] / fh - scale) > 1e-6:
        raise ValueError("crop_to_patch: feature map and footprint have different aspect ratios")
    pb = patch_box.to(device=feat.device, dtype=torch.float32)
    boxes = torch.stack(
        [torch.arange(B, device=feat.device, dtype=torch.float32), pb[:, 0], pb[:, 1],
         pb[:, 0] + pb[:, 2], pb[:, 1] + pb[:, 3]], dim=1)
    return roi_align(feat.float(), boxes, output_size=out_size, spatial_scale=scale,
                     sampling_ratio=2, aligned=True).to(feat.dtype)


class ConvGN(nn.Sequential):
    def __init__(self, c_in: int, c_out: int, k: int = 3, dilation: int = 1) -> None:
        pad = dilation * (k // 2)
        super().__init__(nn.Conv2d(c_in, c_out, k, padding=pad, dilation=dilation, bias=False),
                         _gn(c_out, 8), nn.ReLU(inplace=True))


class ASPPHead(nn.Module):
    """ASPP segmentation head (DeepLab-v3 style, GroupNorm so batch size 1 works)."""

    def __init__(self, c_in: int, c_mid: int, n_classes: int, rates: Sequence[int] = (1, 6, 12),
                 dropout: float = 0.1) -> None:
        super().__init__()
        self.branches = nn.ModuleList(
            ConvGN(c_in, c_mid, 1 if r == 1 else 3, dilation=r) for r in rates
        )
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(c_in, c_mid, 1),
                                  nn.ReLU(inplace=True))
        self.project = ConvGN(c_mid * (len(rates) + 1), c_mid, 3)
        self.dropout = nn.Dropout2d(dropout)
        self.cls = nn.Conv2d(c_mid, n_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = [b(x) for b in self.branches]
        outs.append(self.pool(x).expand(-1, -1, *x.shape[-2:]))
        return self.cls(self.dropout(self.project(torch.cat(outs, dim=1))))


class PPMHead(nn.Module):
    """Pyramid pooling head (PSPNet) producing ``n_out`` logits."""

    def __init__(self, c_in: int, c_mid: int, n_out: int = 1,
                 scales: Sequence[int] = (1, 2, 3, 6), dropout: float = 0.1) -> None:
        super().__init__()
        self.stages = nn.ModuleList(
            nn.Sequential(nn.AdaptiveAvgPool2d(s), nn.Conv2d(c_in, c_mid, 1),
                          nn.ReLU(inplace=True)) for s in scales
        )
        self.bottleneck = ConvGN(c_in + c_mid * len(scales), c_mid, 3)
        self.dropout = nn.Dropout2d(dropout)
        self.cls = nn.Conv2d(c_mid, n_out, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        outs = [x] + [F.interpolate(s(x), size=size, mode="bilinear", align_corners=False)
                      for s in self.stages]
        return self.cls(self.dropout(self.bottleneck(torch.cat(outs, dim=1))))


class DilatedBottleneck(nn.Module):
    """1x1 reduce -> 3x3 dilated conv -> 1x1 expand, residual (global-context path)."""

    def __init__(self, c_in: int, c_out: int, dilation: int = 2) -> None:
        super().__init__()
        mid = max(c_out // 4, 8)
        self.reduce = ConvGN(c_in, mid, 1)
        self.dilated = ConvGN(mid, mid, 3, dilation=dilation)
        self.expand = nn.Sequential(nn.Conv2d(mid, c_out, 1, bias=False), _gn(c_out, 8))
        self.shortcut = nn.Conv2d(c_in, c_out, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.shortcut(x) + self.expand(self.dilated(self.reduce(x))))


class HRBackbone(nn.Module):
    """A timm ``features_only`` backbone; features of stride >= 4 fused at stride 4.

    HRNet names use ``feature_location=''`` (the raw high-resolution branches, as in HRNetV2
    segmentation). ``pretrained_path``: local state dict (timm's names) loaded non-strictly.
    """

    def __init__(self, name: str, out_channels: int, pretrained_path: str | None = None) -> None:
        super().__init__()
        import timm

        kwargs: dict[str, Any] = {"features_only": True, "pretrained": False}
        if name.startswith("hrnet"):
            kwargs["feature_location"] = ""
        self.body = timm.create_model(name, **kwargs)
        info: Any = self.body.feature_info
        self.keep = [i for i, r in enumerate(info.reduction()) if r >= 4]
        self.reduction = info.reduction()[self.keep[0]]
        c_cat = sum(info.channels()[i] for i in self.keep)
        self.fuse = ConvGN(c_cat, out_channels, 1)
        if pretrained_path:
            load_backbone_weights(self.body, pretrained_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = self.body(x)
        feats = [feats[i] for i in self.keep]
        size = feats[0].shape[-2:]
        up = [feats[0]] + [F.interpolate(f, size=size, mode="bilinear", align_corners=False)
                           for f in feats[1:]]
        return self.fuse(torch.cat(up, dim=1))


def load_backbone_weights(body: nn.Module, path: str) -> None:
    """Load a local checkpoint (state dict, or dict with 'state_dict'/'model') non-strictly."""
    from pathlib import Path

    from pipeline.errors import TrainingError

    p = Path(path)
    if not p.is_file():
        raise TrainingError(
            f"train.pretrained_path {p} does not exist: download the timm weights elsewhere and "
            "copy them here, or set pretrained_path: null for random init"
        )
    state = torch.load(p, map_location="cpu", weights_only=True)
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and key in state and isinstance(state[key], dict):
            state = state[key]
    if not isinstance(state, dict) or not set(state) & set(body.state_dict()):
        raise TrainingError(
            f"train.pretrained_path {p}: no parameter name matches the backbone; check that the "
            "weights belong to the configured train.hrnet model"
        )
    body.load_state_dict(state, strict=False)


class FusuNet(nn.Module):
    """FUSU-Net; ``use_sentinel=False`` gives the HR-only variant (FUSU's T=0 ablation).

    Args:
        n_classes: output classes incl. background (18).
        backbone: timm model name (``features_only`` capable).
        hr_channels: width of the fused HR features.
        head_channels: width inside the heads.
        ts_channels: U-TAE output channels (paper: 64).
        utae_kwargs: passed to :class:`~pipeline.train.models.utae.UTAE`.
    """

    def __init__(self, n_classes: int = 18, backbone: str = "hrnet_w18_small",
                 hr_channels: int = 128, head_channels: int = 128, ts_channels: int = 64,
                 use_sentinel: bool = True, in_ts: int = 14,
                 utae_kwargs: dict[str, Any] | None = None,
                 pretrained_path: str | None = None,
                 change_fusion: str = "temporal") -> None:
        super().__init__()
        if change_fusion not in ("temporal", "paper"):
            raise ValueError(f"change_fusion must be 'temporal' or 'paper', not {change_fusion!r}")
        self.n_classes = n_classes
        self.use_sentinel = use_sentinel
        self.change_fusion = change_fusion if use_sentinel else "paper"
        self.backbone = HRBackbone(backbone, hr_channels, pretrained_path)
        self.seg_head = ASPPHead(hr_channels, head_channels, n_classes)
        temporal = self.change_fusion == "temporal"
        self.change_head = PPMHead(hr_channels * (2 if temporal else 1), head_channels, 1)
        if use_sentinel:
            self.utae = UTAE(input_dim=in_ts, out_channels=ts_channels, **(utae_kwargs or {}))
            self.ts_head = nn.Conv2d(ts_channels, n_classes, 1)
            self.fuse_local = nn.Conv2d(ts_channels, hr_channels, 1)
            self.fuse_global = DilatedBottleneck(ts_channels, hr_channels, dilation=2)
        if temporal:
            # per-month embedding (shared over months) whose early / late means give the
            # series' own change signal; fused with the U-TAE features for the change head
            self.month_embed = nn.Sequential(nn.Conv2d(in_ts, ts_channels, 1, bias=False),
                                             _gn(ts_channels, 8), nn.ReLU(inplace=True))
            self.fuse_change = ConvGN(2 * ts_channels, hr_channels, 1)

    def change_parameters(self) -> list[nn.Parameter]:
        """Parameters optimised by the change optimizer (AdamW): the change head and, with
        ``change_fusion='temporal'``, the series' change branch feeding it."""
        params = list(self.change_head.parameters())
        if self.change_fusion == "temporal":
            params += list(self.month_embed.parameters()) + list(self.fuse_change.parameters())
        return params

    def series_change(self, x: torch.Tensor, month_mask: torch.Tensor) -> torch.Tensor:
        """The series' change signal ``(B, C_ts, h, w)``: |mean of the later half of the valid
        months - mean of the earlier half| of a per-month embedding (padding ignored; a sample
        with one valid month has none)."""
        B, T = x.shape[:2]
        emb = self.month_embed(x.flatten(0, 1)).view(B, T, -1, *x.shape[-2:])
        m = month_mask.to(emb.dtype)
        rank = torch.cumsum(m, dim=1)
        n = m.sum(dim=1, keepdim=True)
        early = m * (rank <= n / 2).to(emb.dtype)
        late = m - early

        def mean(w: torch.Tensor) -> torch.Tensor:
            w = w[:, :, None, None, None]
            return (emb * w).sum(1) / w.sum(1).clamp(min=1.0)

        e, la = mean(early), mean(late)
        has_both = (early.sum(1) > 0).to(emb.dtype)[:, None, None, None]
        return (la - e).abs() * has_both

    def forward(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        t1, t2 = batch["t1"], batch["t2"]
        B, _, H, W = t1.shape
        f = self.backbone(torch.cat([t1, t2], dim=0))  # shared weights, one pass
        out: dict[str, torch.Tensor] = {}
        fsize = tuple(f.shape[-2:])
        change_ts = None
        if self.use_sentinel:
            ts = self.utae(batch["sentinel"], batch["month_mask"])
            local = self.fuse_local(crop_to_patch(ts, batch["patch_box"], fsize))
            glob = F.interpolate(self.fuse_global(ts), size=fsize, mode="bilinear",
                                 align_corners=False)
            f = f + (local + glob).repeat(2, 1, 1, 1)
            out["seg_ts"] = crop_to_patch(self.ts_head(ts), batch["patch_box"], (H, W))
            if self.change_fusion == "temporal":
                sc = self.series_change(batch["sentinel"], batch["month_mask"])
                change_ts = self.fuse_change(
                    crop_to_patch(torch.cat([sc, ts], dim=1), batch["patch_box"], fsize))
        f1, f2 = f[:B], f[B:]
        seg = self.seg_head(f)
        seg = F.interpolate(seg, size=(H, W), mode="bilinear", align_corners=False)
        out["seg1"], out["seg2"] = seg[:B], seg[B:]
        diff = torch.abs(f1 - f2)
        # 'paper': the fused series was added to both dates and cancels in |f1 - f2| (as in the
        # official code); 'temporal': the series' own change features join the difference
        ch = self.change_head(diff if change_ts is None else torch.cat([diff, change_ts], 1))
        out["change"] = F.interpolate(ch, size=(H, W), mode="bilinear", align_corners=False)
        return out
