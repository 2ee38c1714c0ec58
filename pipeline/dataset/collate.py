"""Batching for the PyTorch dataset: :func:`fusu_collate` (pads the time axis, stacks into
shared memory in DataLoader workers) and :func:`prepare_batch` (normalises compact batches on
the device). ``torch`` is imported lazily.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from pipeline.dataset.normalize import (
    S2_DN_SCALE,
    S2_NODATA_DN,
    hr_lut,
    parse_stats,
)
from pipeline.errors import DatasetError


def fusu_collate(samples: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Batch samples whose Sentinel series may differ in length (AOIs with different months).

    Tensors are stacked; ``sentinel`` / ``sentinel_valid`` / ``counts`` / ``month_mask`` are
    zero-padded at the end of the time axis to the batch's longest series (``month_mask`` is
    False on padding). ``meta`` becomes a list of the samples' meta dicts. Compact samples'
    ``s2_dn`` / ``s1`` are padded with no data (65535 / NaN), which :func:`prepare_batch` turns
    into the same zeros.

    Raises:
        DatasetError: footprints of different pixel sizes in one batch (batch per AOI group
            or set a common footprint size).
    """
    import torch

    if not samples:
        raise DatasetError("fusu_collate got an empty batch")
    out: dict[str, Any] = {}
    keys = samples[0].keys()
    timed = {"sentinel", "sentinel_valid", "counts", "month_mask", "s2_dn", "s1"}
    pad_value = {"s2_dn": S2_NODATA_DN, "s1": float("nan")}
    t_max = max((s["month_mask"].shape[0] for s in samples if "month_mask" in s), default=0)
    for k in keys:
        if k == "meta":
            out[k] = [s["meta"] for s in samples]
            continue
        vals = [s[k] for s in samples]
        if k in timed:
            shapes = {tuple(v.shape[1:]) for v in vals}
            if len(shapes) > 1:
                raise DatasetError(
                    f"fusu_collate: '{k}' has different footprint shapes {sorted(shapes)} in one "
                    "batch; use a common footprint size (footprints.size_px) or batch per AOI"
                )
            padded = []
            for v in vals:
                pad = t_max - v.shape[0]
                if pad:
                    fill = v.new_full((pad, *v.shape[1:]), pad_value.get(k, 0))
                    v = torch.cat([v, fill], dim=0)
                padded.append(v)
            out[k] = _stack(padded)
        else:
            out[k] = _stack(vals)
    return out


def _stack(vals: list[Any]) -> Any:
    """``torch.stack``; inside a DataLoader worker straight into shared memory (as torch's
    default_collate does), so the batch is not copied again when sent to the main process."""
    import torch

    if torch.utils.data.get_worker_info() is None:
        return torch.stack(vals)
    v0 = vals[0]
    numel = sum(int(v.numel()) for v in vals)
    storage = v0._typed_storage()._new_shared(numel, device=v0.device)
    out = v0.new(storage).resize_(len(vals), *v0.shape)
    return torch.stack(vals, out=out)


# --------------------------------------------------------------------------- device-side prep


def is_compact(batch: dict[str, Any]) -> bool:
    """True for a batch of compact samples (uint8 HR images, see :func:`prepare_batch`)."""
    t1 = batch.get("t1")
    return t1 is not None and hasattr(t1, "dtype") and str(t1.dtype) == "torch.uint8"


def prepare_batch(
    batch: dict[str, Any],
    stats: dict[str, Any] | None,
    device: Any,
    months: int | None = None,
    hr_size: int | None = None,
) -> dict[str, Any]:
    """Move a collated compact batch to ``device`` and decode / normalise it there.

    The result equals ``fusu_collate`` of the same samples read with ``compact=False`` (same
    ``normalize``, ``hr_size``): HR float32 ``(DN / 255 - mean) / std`` (same look-up table),
    labels / change int64, ``sentinel`` float32 (B, T, 14, h, w) ``(x - mean) / std`` with
    no data (and month padding) -> 0, ``sentinel_valid`` from ``counts``. Non-compact batches
    are just moved to the device. Pure: the input batch is not modified.

    Args:
        batch: :func:`fusu_collate` output of compact samples (CPU, possibly pinned).
        stats: :attr:`FusuDataset.norm_stats` (or the raw ``stats.json`` dict, parsed here);
            None = no normalisation (``normalize=False``: HR in [0, 1], Sentinel in
            reflectance / dB).
        device: target ``torch.device`` (or its name).
        months: keep only the last N time steps (all samples must have N real months).
        hr_size: resize HR images (bilinear, antialiased) and labels (nearest) to this side,
            as ``FusuDataset(hr_size=...)`` does per sample.

    Raises:
        DatasetError: unparseable stats, or ``months`` longer than a sample's series.
    """
    import torch

    dev = torch.device(device)

    def move(v: Any) -> Any:
        return v.to(dev, non_blocking=True) if torch.is_tensor(v) else v

    if not is_compact(batch):
        return {k: move(v) for k, v in batch.items()}
    st: dict[str, np.ndarray] | None
    if stats is None:
        st = None
    elif "s_mean" in stats:
        st = {k: np.asarray(v, np.float32) for k, v in stats.items()}
    else:
        st = parse_stats(stats)
    out: dict[str, Any] = {}
    lut = torch.from_numpy(
        hr_lut(st["hr_mean"], st["hr_std"]) if st else hr_lut(None, None)
    ).to(dev)
    chan = torch.arange(3, device=dev).view(1, 3, 1, 1)
    for k in ("t1", "t2"):
        if k in batch:
            img = move(batch[k]).long()
            out[k] = lut[chan, img]  # (B, 3, H, W) float32, same values as apply_hr_lut
    for k in ("label1", "label2", "change"):
        if k in batch:
            out[k] = move(batch[k]).long()
    if hr_size is not None and "t1" in out and hr_size != out["t1"].shape[-1]:
        import torch.nn.functional as F  # noqa: N812

        for k in ("t1", "t2"):
            out[k] = F.interpolate(
                out[k], size=(hr_size, hr_size), mode="bilinear", antialias=True,
                align_corners=False,
            )
        for k in ("label1", "label2", "change"):
            if k in out:
                out[k] = F.interpolate(
                    out[k][:, None].float(), size=(hr_size, hr_size), mode="nearest"
                )[:, 0].long()
    if "s2_dn" in batch:
        dn = move(batch["s2_dn"])
        s1 = move(batch["s1"])
        counts = move(batch["counts"])
        mask = move(batch["month_mask"])
        if months is not None:
            n = int(months)
            t = dn.shape[1]
            if n > t or (n and not bool(mask[:, t - n :].all())):
                raise DatasetError(
                    f"prepare_batch: months={n} but the batch has series of "
                    f"{mask.sum(dim=1).tolist()} months; select months in FusuDataset instead"
                )
            sl = slice(t - n, t)
            dn, s1, counts, mask = dn[:, sl], s1[:, sl], counts[:, sl], mask[:, sl]
            if isinstance(batch.get("meta"), list):  # copies: the input batch stays as it was
                out["meta"] = [
                    {**m, "months": list(m.get("months", []))[len(m.get("months", [])) - n :]}
                    for m in batch["meta"]
                ]
        b, t, nb2, h, w = dn.shape
        x = torch.empty((b, t, nb2 + s1.shape[2], h, w), dtype=torch.float32, device=dev)
        xs2 = x[:, :, :nb2]
        xs2.copy_(dn)  # uint16 -> float32 is exact; few uint16 kernels exist on CUDA
        nodata = xs2 == float(S2_NODATA_DN)
        xs2 /= S2_DN_SCALE  # float32 division, as read_footprint_cube does in numpy
        xs2.masked_fill_(nodata, float("nan"))
        x[:, :, nb2:] = s1
        if st is not None:
            mean = torch.from_numpy(st["s_mean"]).to(dev).view(1, 1, -1, 1, 1)
            inv = torch.from_numpy((1.0 / st["s_std"]).astype(np.float32)).to(dev)
            x -= mean
            x *= inv.view(1, 1, -1, 1, 1)
        x.masked_fill_(torch.isnan(x), 0.0)
        out["sentinel"] = x
        out["sentinel_valid"] = (counts > 0).any(dim=2)
        out["counts"] = counts
        out["month_mask"] = mask
    for k, v in batch.items():
        if k not in out and k not in ("s2_dn", "s1"):
            out[k] = move(v)
    return {k: out[k] for k in _key_order(batch, out)}


def _key_order(batch: dict[str, Any], out: dict[str, Any]) -> list[str]:
    """The non-compact batch's key order (sentinel / sentinel_valid before counts)."""
    order: list[str] = []
    for k in batch:
        if k == "s2_dn":
            order += ["sentinel", "sentinel_valid"]
        elif k != "s1":
            order.append(k)
    return [k for k in order if k in out]
