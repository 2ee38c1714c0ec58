"""U-TAE: U-Net with Temporal Attention Encoder (Garnot & Landrieu, ICCV 2021), re-implemented.

Input: a Sentinel cube ``x`` float32 ``(B, T, C, H, W)`` (C = 14: 12 S2 bands + VV, VH, already
normalised, NaN -> 0) and ``month_mask`` bool ``(B, T)`` (True = real month, False = padding).
Output: features float32 ``(B, out_channels, H, W)`` on the input grid (10 m footprint pixels)
and, optionally, the temporal attention masks ``(n_head, B, T, h, w)`` at the lowest level.

Structure (as in the paper): a U-Net encoder shared over time (every date goes through the same
convolutions, GroupNorm); at the lowest resolution a lightweight temporal attention encoder
(L-TAE) with ``n_head`` grouped heads and learned master queries computes one attention mask
per head and pixel; these masks are upsampled (bilinear) to every skip resolution and reused to
collapse the skip connections over time (channel group g attends with head g); a convolutional
decoder merges the aggregated skips. Padded months get exactly zero attention.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn


def _gn(c: int, groups: int = 4) -> nn.GroupNorm:
    g = math.gcd(groups, c)
    return nn.GroupNorm(g, c)


class ConvBlock(nn.Module):
    """(conv3x3 -> GroupNorm -> ReLU) x len(widths)-1 with reflect padding."""

    def __init__(self, widths: Sequence[int], groups: int = 4) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for a, b in itertools.pairwise(widths):
            layers += [nn.Conv2d(a, b, 3, padding=1, padding_mode="reflect"), _gn(b, groups),
                       nn.ReLU(inplace=True)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class DownBlock(nn.Module):
    """Strided conv (k=4, s=2) down-sampling followed by a residual conv block."""

    def __init__(self, c_in: int, c_out: int, groups: int = 4) -> None:
        super().__init__()
        self.down = nn.Sequential(
            nn.Conv2d(c_in, c_in, 4, stride=2, padding=1, padding_mode="reflect"),
            _gn(c_in, groups), nn.ReLU(inplace=True),
        )
        self.conv1 = ConvBlock([c_in, c_out], groups)
        self.conv2 = ConvBlock([c_out, c_out], groups)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(self.down(x))
        return x + self.conv2(x)


class UpBlock(nn.Module):
    """Transposed-conv up-sampling, 1x1 conv on the skip, concat, residual conv block."""

    def __init__(self, c_in: int, c_skip: int, c_out: int, groups: int = 4) -> None:
        super().__init__()
        self.up = nn.Sequential(nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1),
                                _gn(c_out, groups), nn.ReLU(inplace=True))
        self.skip = nn.Sequential(nn.Conv2d(c_skip, c_skip, 1), _gn(c_skip, groups),
                                  nn.ReLU(inplace=True))
        self.conv1 = ConvBlock([c_out + c_skip, c_out], groups)
        self.conv2 = ConvBlock([c_out, c_out], groups)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = self.up(x)
        if x.shape[-2:] != skip.shape[-2:]:  # odd sizes
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
        x = self.conv1(torch.cat([x, self.skip(skip)], dim=1))
        return x + self.conv2(x)


def positional_encoding(positions: torch.Tensor, d: int, period: float = 1000.0) -> torch.Tensor:
    """Sinusoidal encoding of (B, T) positions -> (B, T, d)."""
    i = torch.arange(d, device=positions.device, dtype=torch.float32)
    denom = torch.pow(torch.tensor(period, device=positions.device), 2 * (i // 2) / d)
    ang = positions.float().unsqueeze(-1) / denom
    return torch.where(i % 2 == 0, torch.sin(ang), torch.cos(ang))


class LTAE2d(nn.Module):
    """Lightweight Temporal Attention Encoder applied pixel-wise on a (B, T, C, h, w) map.

    Each of ``n_head`` heads has a learned master query (``d_k``); keys come from a linear map of
    the (position-encoded) input; values are the input split into ``n_head`` channel groups.
    Returns the aggregated map ``(B, mlp[-1], h, w)`` and attention ``(n_head, B, T, h, w)``.
    """

    def __init__(self, in_channels: int, n_head: int = 16, d_k: int = 4, d_model: int = 256,
                 mlp: Sequence[int] = (256, 128), dropout: float = 0.2,
                 positional_period: float = 1000.0) -> None:
        super().__init__()
        if d_model % n_head:
            raise ValueError(f"LTAE2d: d_model {d_model} must be divisible by n_head {n_head}")
        if mlp[0] != d_model:
            raise ValueError("LTAE2d: mlp[0] must equal d_model")
        self.n_head, self.d_k, self.d_model = n_head, d_k, d_model
        self.period = positional_period
        self.in_norm = _gn(in_channels, n_head)
        self.inconv = nn.Conv1d(in_channels, d_model, 1)
        self.query = nn.Parameter(torch.randn(n_head, d_k) * math.sqrt(2.0 / d_k))
        self.fc_k = nn.Linear(d_model, n_head * d_k)
        layers: list[nn.Module] = []
        for a, b in itertools.pairwise(mlp):
            layers += [nn.Linear(a, b), nn.BatchNorm1d(b), nn.ReLU(inplace=True)]
        self.mlp = nn.Sequential(*layers) if layers else nn.Identity()
        self.dropout = nn.Dropout(dropout)
        self.out_norm = _gn(mlp[-1], n_head)
        self.out_channels = mlp[-1]

    def forward(self, x: torch.Tensor, month_mask: torch.Tensor,
                positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        B, T, C, h, w = x.shape
        seq = x.permute(0, 3, 4, 1, 2).reshape(B * h * w, T, C)  # (N, T, C)
        # normalise each date on its own so padded months cannot leak into real ones
        seq = self.in_norm(seq.reshape(-1, C)).view(-1, T, C)
        seq = self.inconv(seq.transpose(1, 2)).transpose(1, 2)  # (N, T, d_model)
        pos = positions.repeat_interleave(h * w, dim=0)  # (N, T)
        seq = seq + positional_encoding(pos, self.d_model, self.period).to(seq.dtype)
        k = self.fc_k(seq).view(-1, T, self.n_head, self.d_k)  # (N, T, H, dk)
        scores = torch.einsum("nthd,hd->nht", k, self.query.to(k.dtype)) / math.sqrt(self.d_k)
        valid = month_mask.repeat_interleave(h * w, dim=0)[:, None, :]  # (N, 1, T)
        scores = scores.masked_fill(~valid, float("-inf"))
        att = torch.softmax(scores.float(), dim=-1)
        att = torch.nan_to_num(att, nan=0.0).to(seq.dtype)  # all-padded pixel -> zeros
        att = self.dropout(att)
        v = seq.view(-1, T, self.n_head, self.d_model // self.n_head)
        out = torch.einsum("nht,nthc->nhc", att, v).reshape(-1, self.d_model)
        out = self.mlp(out)
        out = out.view(B, h, w, -1).permute(0, 3, 1, 2)
        out = self.out_norm(out)
        att = att.view(B, h, w, self.n_head, T).permute(3, 0, 4, 1, 2)  # (H, B, T, h, w)
        return out, att


def aggregate_with_attention(x: torch.Tensor, att: torch.Tensor,
                             month_mask: torch.Tensor) -> torch.Tensor:
    """Collapse time of a skip map ``x`` (B, T, C, H, W) with grouped attention masks.

    ``att`` (n_head, B, T, h, w) is upsampled bilinearly to (H, W); channel group g (C/n_head
    channels) is averaged over time with head g's weights. Padded months (``month_mask`` False)
    get weight 0 even after upsampling.
    """
    n_head, B, T = att.shape[:3]
    H, W = x.shape[-2:]
    a = att.reshape(n_head * B, T, *att.shape[-2:])
    if a.shape[-2:] != (H, W):
        a = F.interpolate(a, size=(H, W), mode="bilinear", align_corners=False)
    a = a.view(n_head, B, T, H, W) * month_mask[None, :, :, None, None].to(a.dtype)
    C = x.shape[2]
    if C % n_head:
        raise ValueError(f"skip channels {C} not divisible by the {n_head} attention heads")
    xg = x.view(B, T, n_head, C // n_head, H, W)
    out = torch.einsum("hbtyx,bthcyx->bhcyx", a, xg)
    return out.reshape(B, C, H, W)


class UTAE(nn.Module):
    """U-TAE feature extractor.

    Args:
        input_dim: channels per date (14).
        encoder_widths: channels per encoder level (first = full resolution).
        decoder_widths: channels per decoder level (same length).
        out_channels: channels of the output feature map (paper: 64).
        n_head, d_k, d_model: L-TAE settings; every skip width must be divisible by n_head.
    """

    def __init__(self, input_dim: int = 14, encoder_widths: Sequence[int] = (64, 64, 64, 128),
                 decoder_widths: Sequence[int] = (32, 32, 64, 128), out_channels: int = 64,
                 n_head: int = 16, d_k: int = 4, d_model: int = 256, groups: int = 4) -> None:
        super().__init__()
        if len(encoder_widths) != len(decoder_widths) or encoder_widths[-1] != decoder_widths[-1]:
            raise ValueError("UTAE: encoder/decoder widths need the same length and last width")
        self.n_levels = len(encoder_widths)
        self.in_conv = ConvBlock([input_dim, encoder_widths[0], encoder_widths[0]], groups)
        self.down = nn.ModuleList(
            DownBlock(encoder_widths[i], encoder_widths[i + 1], groups)
            for i in range(self.n_levels - 1)
        )
        self.ltae = LTAE2d(encoder_widths[-1], n_head=n_head, d_k=d_k, d_model=d_model,
                           mlp=(d_model, encoder_widths[-1]))
        self.up = nn.ModuleList(
            UpBlock(decoder_widths[i + 1], encoder_widths[i], decoder_widths[i], groups)
            for i in reversed(range(self.n_levels - 1))
        )
        self.out_conv = ConvBlock([decoder_widths[0], out_channels, out_channels], groups)
        self.out_channels = out_channels

    def forward(self, x: torch.Tensor, month_mask: torch.Tensor,
                positions: torch.Tensor | None = None,
                return_att: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        B, T, C, H, W = x.shape
        if positions is None:
            positions = torch.arange(T, device=x.device).expand(B, T)
        month_mask = month_mask.to(torch.bool)
        feats = [self.in_conv(x.reshape(B * T, C, H, W))]
        for down in self.down:
            feats.append(down(feats[-1]))
        maps = [f.view(B, T, *f.shape[1:]) for f in feats]
        out, att = self.ltae(maps[-1], month_mask, positions)
        for i, up in enumerate(self.up):
            skip_level = self.n_levels - 2 - i
            skip = aggregate_with_attention(maps[skip_level], att, month_mask)
            out = up(out, skip)
        out = self.out_conv(out)
        return (out, att) if return_att else out
