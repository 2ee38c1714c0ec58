"""Driver of rule ``train``: FUSU-Net (or a baseline) on the built dataset.

Builds the train/val/test :class:`pipeline.dataset.torchds.FusuDataset` splits and runs
:class:`pipeline.train.trainer.Trainer`. Outputs under ``Layout.train_dir(train.run)`` (see
:mod:`pipeline.train.trainer`). Re-running after a kill resumes from
``train/<run>/checkpoints/last.pt``. ``torch`` is imported lazily.
"""

from __future__ import annotations

import logging
from typing import Any

from pipeline.config import TrainConfig
from pipeline.errors import DatasetError, MissingInputError, TrainingError
from pipeline.io.provenance import code_commit, files_digest
from pipeline.layout import Layout

log = logging.getLogger(__name__)


def train_model(
    cfg: TrainConfig, layout: Layout, threads: int = 1, progress: bool = True
) -> dict[str, Any]:
    """Driver of rule ``train``: train and evaluate the configured model; returns the final
    metrics dict.

    Args:
        cfg: the ``train`` config section.
        layout: dataset layout (reads ``patches.parquet``, ``stats.json``, HR/labels/change
            GeoTIFFs, Sentinel mosaics; writes ``train/``).
        threads: CPU threads for torch intra-op work (Snakemake ``threads``).

    Raises:
        TrainingError: torch/timm missing, empty training split, CUDA requested without GPU.
    """
    try:
        import torch
    except ImportError:
        raise TrainingError(
            "the train stage needs torch and timm: pip install -e '.[train]'"
        ) from None
    from pipeline.dataset.collate import fusu_collate
    from pipeline.dataset.torchds import FusuDataset
    from pipeline.train.models import model_kind
    from pipeline.train.trainer import Trainer, resolve_device

    torch.set_num_threads(max(1, threads))
    kind = model_kind(cfg)
    with_sentinel = kind != "hr_only"
    # on a GPU: compact samples (stored dtypes through the workers), normalised on the device
    # by Trainer (prepare_batch); on the CPU the workers normalise (in parallel) as before
    compact = resolve_device(cfg).type == "cuda"

    def split(name: str, required: bool) -> Any:
        try:
            return FusuDataset(layout.root, split=name, months=cfg.months,
                               with_sentinel=with_sentinel, hr_size=cfg.hr_size_px,
                               compact=compact)
        except (DatasetError, MissingInputError) as exc:
            if required:
                raise TrainingError(f"cannot load the {name!r} split: {exc}") from None
            log.warning("no %s evaluation: %s", name, exc)
            return None

    train_ds = split("train", True)
    val_ds, test_ds = split("val", False), split("test", False)
    log.info("train %s: %d train / %s val / %s test patches, months=%s", kind, len(train_ds),
             len(val_ds) if val_ds else 0, len(test_ds) if test_ds else 0, cfg.months)
    provenance = {"commit": code_commit(),
                  "data_version": files_digest([layout.index(), layout.stats()])}
    trainer = Trainer(cfg, train_ds, layout.train_dir(cfg.run), fusu_collate, val_ds=val_ds,
                      test_ds=test_ds, progress=progress, provenance=provenance)
    log.info("device %s, %d steps (%d per epoch)", trainer.device, trainer.total_steps,
             trainer.steps_per_epoch)
    result = trainer.fit()
    log.info("test metrics: %s", {k: v for k, v in result.get("test", {}).items()
                                  if not isinstance(v, dict)})
    return result
