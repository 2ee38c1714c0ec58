"""The training loop of FUSU-Net and its baselines (torch; imported only by the train stage,
tests and benchmarks): :class:`Trainer` (steps, evaluation, checkpoints, logs). The parts it
composes live in their own modules: the loss (:mod:`pipeline.train.losses`, FUSU Eq. 4), the
optimizer recipes (:mod:`pipeline.train.optimizers`, paper A.5.2 and the official code's),
data order and RNG (:mod:`pipeline.train.batches`), logits -> predictions
(:mod:`pipeline.train.prediction`; models without a change head predict
``argmax(seg1) != argmax(seg2)``) and run outputs (:mod:`pipeline.train.outputs`).

Robustness: a checkpoint (``train/checkpoints/last.pt``, written atomically) every
``checkpoint_every`` steps holds step, model, both optimizers and schedulers, python / numpy /
torch (and CUDA) RNG states; the data order is a pure function of (seed, epoch), so a resumed run
continues mid-epoch exactly where the killed one stopped and reproduces an uninterrupted run.

Outputs under ``Layout.train_dir(run)``: ``log.csv`` (training losses), ``val_log.csv``
(validation metrics during training), ``metrics.json`` (final val and test metrics on the whole
splits, the test metrics of the best-on-val weights, pixel counts, config, commit, data
version), ``confusion_test.png``, ``model.pt`` (final weights), ``checkpoints/last.pt``,
``checkpoints/best.pt`` (best-on-val weights: ``scs``, else ``seg_miou``, else
``change_iou``), optional ``tensorboard/``.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset

from pipeline.config import TrainConfig
from pipeline.errors import TrainingError
from pipeline.io.atomic import atomic_path, ensure_dir, remove_tree
from pipeline.io.jsonfile import write_json
from pipeline.io.tables import append_csv_row, truncate_csv_log
from pipeline.train.batches import (
    EpochSampler,
    flip_batch,
    resolve_device,
    rng_state,
    seed_everything,
    set_rng_state,
    to_device,
)
from pipeline.train.distributed import Dist, eval_shard
from pipeline.train.losses import compute_losses, official_losses
from pipeline.train.metrics import ChangeSegMetrics
from pipeline.train.models import build_model, model_kind
from pipeline.train.optimizers import make_optimizers
from pipeline.train.outputs import nan_to_none, write_confusion_png
from pipeline.train.prediction import predictions

log = logging.getLogger(__name__)

TRAIN_LOG_FIELDS = ("step", "epoch", "loss", "loss_seg1", "loss_seg2", "loss_ts", "loss_change",
                    "lr_seg", "lr_change", "samples_per_s")
#: Settings that may differ between a checkpoint and the resuming run.
RESUME_SAFE_KEYS = frozenset({"resume", "max_eval_batches", "num_workers", "eval_every",
                              "log_every", "tensorboard", "checkpoint_every", "device", "run",
                              "eval_split", "weights"})
#: Validation score that picks the best checkpoint, first present wins (higher is better).
SELECTION_METRICS = ("scs", "seg_miou", "change_iou")
VAL_LOG_FIELDS = ("step", "seg_miou", "change_iou", "change_f1", "scd_miou", "scs")


class Trainer:
    """Trains one configured model on map-style datasets returning FusuDataset samples.

    Args:
        cfg: the ``train`` config section.
        train_ds, val_ds, test_ds: datasets (val/test may be None: evaluation skipped).
        out_dir: ``Layout.train_dir()``.
        collate_fn: batch collation (``pipeline.dataset.torchds.fusu_collate``).
        progress: show a tqdm bar.
    """

    def __init__(self, cfg: TrainConfig, train_ds: Dataset, out_dir: str | Path,
                 collate_fn: Any, val_ds: Dataset | None = None, test_ds: Dataset | None = None,
                 progress: bool = True, provenance: dict[str, Any] | None = None,
                 dist: Dist | None = None, device: torch.device | None = None) -> None:
        self.cfg = cfg
        self.dist = dist or Dist()
        self.provenance = dict(provenance or {})
        #: best validation so far: {"metric", "value", "step"} (``best.pt`` holds its weights)
        self.best: dict[str, Any] = {}
        self.out_dir = Path(out_dir)
        self.train_ds, self.val_ds, self.test_ds = train_ds, val_ds, test_ds
        self.collate_fn = collate_fn
        self.progress = progress
        n = len(train_ds)  # type: ignore[arg-type]
        if n == 0:
            raise TrainingError(f"the training split is empty ({out_dir}): build splits first")
        per_rank = n // self.dist.world
        if per_rank == 0:
            raise TrainingError(f"the training split ({n} patches) is smaller than the "
                                f"{self.dist.world} processes: use fewer processes")
        # one step = one batch per process (global batch = batch_size x processes)
        self.steps_per_epoch = math.ceil(per_rank / cfg.batch_size)
        self.total_steps = cfg.max_steps or cfg.epochs * self.steps_per_epoch
        self.device = device or resolve_device(cfg)
        self.kind = model_kind(cfg)
        seed_everything(cfg.seed)
        self.model = build_model(cfg).to(self.device)
        self.net: nn.Module = self.model
        if self.dist.enabled:
            from torch.nn.parallel import DistributedDataParallel

            self.net = DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda"
                else None, find_unused_parameters=True)
        self.optimizers, self.schedulers = make_optimizers(self.model, cfg, self.total_steps)
        self.step = 0
        self.autocast = self.device.type == "cuda" and cfg.bf16
        self._tb: Any = None

    # ---- paths
    @property
    def ckpt_path(self) -> Path:
        return self.out_dir / "checkpoints" / "last.pt"

    @property
    def best_path(self) -> Path:
        return self.out_dir / "checkpoints" / "best.pt"

    def _consider_best(self, res: dict[str, Any]) -> None:
        """Keep the weights of the best validation so far (``checkpoints/best.pt``)."""
        metric = next((m for m in SELECTION_METRICS if m in res), None)
        if metric is None:
            return
        value = float(res[metric]) if res[metric] is not None else float("nan")
        if math.isnan(value):
            return
        if not self.best or value > float(self.best["value"]):
            if self.dist.is_main:  # every rank holds the same weights and the same metrics
                with atomic_path(self.best_path) as tmp:
                    torch.save(self.model.state_dict(), tmp)
            self.best = {"metric": metric, "value": value, "step": self.step}

    # ---- checkpoints
    def state_dict(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "model": self.model.state_dict(),
            "optimizers": [o.state_dict() for o in self.optimizers],
            "schedulers": [s.state_dict() for s in self.schedulers],
            "rng": rng_state(),
            "config": self.cfg.model_dump(mode="json"),
            "kind": self.kind,
            "best": dict(self.best),
        }

    def save_checkpoint(self, path: Path | None = None) -> Path:
        """Write the full training state atomically (temp file + rename); under DDP rank 0
        writes and every rank waits for it."""
        path = path or self.ckpt_path
        if self.dist.is_main:
            with atomic_path(path) as tmp:
                torch.save(self.state_dict(), tmp)
        self.dist.barrier()
        return path

    def load_checkpoint(self, path: Path | None = None) -> None:
        """Restore step, model, optimizers, schedulers and RNG states."""
        path = path or self.ckpt_path
        try:
            state = torch.load(path, map_location=self.device, weights_only=False)
        except Exception as exc:  # corrupt / truncated file
            raise TrainingError(
                f"checkpoint {path} cannot be read ({exc}); delete it to restart training"
            ) from None
        if state.get("kind") != self.kind:
            raise TrainingError(
                f"checkpoint {path} is for model {state.get('kind')!r}, config asks for "
                f"{self.kind!r}: delete {path.parent} or set train.resume: false"
            )
        saved = state.get("config", {})
        now = self.cfg.model_dump(mode="json")
        changed = sorted(k for k in now if k not in RESUME_SAFE_KEYS and saved.get(k) != now[k])
        if changed:
            raise TrainingError(
                f"checkpoint {path} was written with different train settings {changed}: "
                f"delete {path.parent} (or set train.resume: false) to start over with the new "
                "settings, or restore the old ones to resume"
            )
        self.model.load_state_dict(state["model"])
        for o, s in zip(self.optimizers, state["optimizers"], strict=True):
            o.load_state_dict(s)
        for sch, s in zip(self.schedulers, state["schedulers"], strict=True):
            sch.load_state_dict(s)
        set_rng_state(state["rng"])
        self.step = int(state["step"])
        self.best = dict(state.get("best") or {})
        log.info("resumed from %s at step %d", path, self.step)

    # ---- data
    def _train_loader(self, epoch: int, start_batch: int) -> DataLoader:
        sampler = EpochSampler(len(self.train_ds), self.cfg.seed, epoch,  # type: ignore[arg-type]
                               start_batch * self.cfg.batch_size, self.dist)
        # A private generator: creating the loader iterator must not draw from the global
        # torch RNG, or a resumed (mid-epoch) run would diverge from an uninterrupted one.
        gen = torch.Generator().manual_seed(self.cfg.seed * 100_003 + epoch)
        return DataLoader(self.train_ds, batch_size=self.cfg.batch_size, sampler=sampler,
                          num_workers=self.cfg.num_workers, collate_fn=self.collate_fn,
                          pin_memory=self.device.type == "cuda", generator=gen)

    def _eval_loader(self, ds: Dataset, sharded: bool = False) -> DataLoader:
        """Batches of ``ds`` in order; ``sharded``: this rank's share only
        (:func:`pipeline.train.distributed.eval_shard`)."""
        if sharded and self.dist.enabled:
            ds = Subset(ds, eval_shard(len(ds), self.dist))  # type: ignore[arg-type]
        return DataLoader(ds, batch_size=self.cfg.batch_size, shuffle=False,
                          num_workers=self.cfg.num_workers, collate_fn=self.collate_fn,
                          generator=torch.Generator().manual_seed(self.cfg.seed))

    def _on_device(self, batch: dict[str, Any], ds: Any) -> dict[str, Any]:
        """Move a batch to the device; compact batches (``FusuDataset(compact=True)``: stored
        dtypes through the workers) are decoded and normalised there with the dataset's
        statistics / HR size (:func:`pipeline.dataset.torchds.prepare_batch`, same values)."""
        t1 = batch.get("t1")
        if torch.is_tensor(t1) and t1.dtype == torch.uint8:
            from pipeline.dataset.collate import prepare_batch

            return prepare_batch(batch, getattr(ds, "norm_stats", None), self.device,
                                 hr_size=getattr(ds, "hr_size", None))
        return to_device(batch, self.device)

    # ---- one step
    def train_step(self, batch: dict[str, Any]) -> dict[str, float]:
        """Forward, loss, backward and both optimizer + scheduler steps on one batch."""
        self.model.train()
        batch = self._on_device(batch, self.train_ds)
        if self.cfg.augment:
            batch = flip_batch(batch)
        for o in self.optimizers:
            o.zero_grad(set_to_none=True)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.autocast):
            out = self.net(batch)  # the DDP wrapper under torchrun: gradients all-reduced
        if self.cfg.loss == "official":
            if "official" not in out:
                raise TrainingError("train.loss 'official' needs train.model 'official' (the "
                                    "official model's raw outputs)")
            terms = official_losses(out, batch)
        else:
            terms = compute_losses(out, batch, self.cfg.change_loss_weight)
        if not torch.isfinite(terms["loss"]):
            raise TrainingError(
                f"non-finite loss at step {self.step}: lower train.seg_lr / train.change_lr or "
                "check the inputs (stats.json normalisation)"
            )
        terms["loss"].backward()
        for o in self.optimizers:
            o.step()
        for s in self.schedulers:
            s.step()
        self.step += 1
        return {k: float(v.detach()) for k, v in terms.items()}

    # ---- evaluation
    @torch.no_grad()
    def predict_batches(self, ds: Dataset, max_batches: int | None = None,
                        sharded: bool = False
                        ) -> Iterator[tuple[dict[str, Any], dict[str, np.ndarray]]]:
        """(batch on the device, predictions) for every batch of ``ds`` in order (eval mode,
        no gradients): ``pred1`` / ``pred2`` int64 (B, H, W) classes, ``pred_change`` 0/1 (None
        where the model has no such output). ``sharded``: this DDP rank's share only."""
        self.model.eval()
        class_ids = getattr(ds, "class_ids", None)
        with torch.no_grad():
            for i, batch in enumerate(self._eval_loader(ds, sharded)):
                if max_batches is not None and i >= max_batches:
                    break
                batch = self._on_device(batch, ds)
                with torch.autocast(self.device.type, dtype=torch.bfloat16,
                                    enabled=self.autocast):
                    out = self.model(batch)
                yield batch, predictions(out, class_ids)

    def evaluate(self, ds: Dataset, max_batches: int | None = None) -> ChangeSegMetrics:
        """Accumulate every metric of :class:`~pipeline.train.metrics.ChangeSegMetrics` over
        ``ds``. Under DDP every rank evaluates its share (``max_batches`` per rank) and the
        accumulators are summed over the ranks, so every rank returns the metrics of the whole
        set (call it on every rank)."""
        acc = ChangeSegMetrics()
        for batch, p in self.predict_batches(ds, max_batches, sharded=True):
            acc.update(batch["label1"].cpu().numpy(), batch["label2"].cpu().numpy(),
                       batch["change"].cpu().numpy(), p["pred1"], p["pred2"], p["pred_change"])
        if not self.dist.enabled:
            return acc
        device = self.device if self.device.type == "cuda" else torch.device("cpu")
        return acc.reduce(lambda a: self.dist.all_sum(a, device))

    def load_weights(self, path: Path) -> None:
        """Load model weights (``model.pt`` / ``checkpoints/best.pt``) into the model.

        Raises:
            TrainingError: missing or unreadable file, or weights of another model.
        """
        if not Path(path).is_file():
            raise TrainingError(f"{path} does not exist: train run {self.cfg.run!r} first "
                                "(rule train)")
        try:
            state = torch.load(path, map_location=self.device, weights_only=True)
            self.model.load_state_dict(state)
        except Exception as exc:  # truncated file, other architecture
            raise TrainingError(
                f"{path} cannot be loaded into the configured {self.kind} model ({exc}): use "
                "the train settings it was trained with"
            ) from None

    # ---- logging
    def _csv(self, name: str, fields: tuple[str, ...], row: dict[str, Any]) -> None:
        if self.dist.is_main:
            append_csv_row(self.out_dir / name, fields, row)

    def _truncate_logs(self) -> None:
        """Drop log rows written after the checkpoint we resume from (they will be redone)."""
        for name in ("log.csv", "val_log.csv"):
            truncate_csv_log(self.out_dir / name, self.step)

    def _tensorboard(self, tag: str, values: dict[str, Any]) -> None:
        if not self.cfg.tensorboard or not self.dist.is_main:
            return
        if self._tb is None:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                raise TrainingError(
                    "train.tensorboard is true but the 'tensorboard' package is missing: "
                    "pip install tensorboard, or set train.tensorboard: false"
                ) from None
            self._tb = SummaryWriter(str(self.out_dir / "tensorboard"))
        for k, v in values.items():
            if isinstance(v, (int, float)) and not (isinstance(v, float) and math.isnan(v)):
                self._tb.add_scalar(f"{tag}/{k}", v, self.step)

    # ---- main loop
    def fit(self, stop_at: int | None = None) -> dict[str, Any]:
        """Train to ``total_steps`` (resuming if a checkpoint exists and ``cfg.resume``).

        ``stop_at``: stop after this many steps (as if the job had been killed right after its
        checkpoint); used by tests and for chunked jobs. Returns the final metrics dict
        (empty when stopped early).
        """
        from tqdm import tqdm

        main = self.dist.is_main
        if main:
            ensure_dir(self.out_dir)
        self.dist.barrier()
        if self.cfg.resume and self.ckpt_path.exists():
            self.load_checkpoint()  # every rank: the same state
            if main:
                self._truncate_logs()
        elif main:
            for name in ("log.csv", "val_log.csv"):
                remove_tree(self.out_dir / name)
        self.dist.barrier()
        end = self.total_steps if stop_at is None else min(stop_at, self.total_steps)
        bar = tqdm(total=self.total_steps, initial=self.step,
                   disable=not self.progress or not main,
                   desc=f"train {self.kind}", unit="step")
        t_last, n_last = time.perf_counter(), 0
        while self.step < end:
            epoch, done = divmod(self.step, self.steps_per_epoch)
            for batch in self._train_loader(epoch, done):
                terms = self.train_step(batch)
                n_last += int(batch["t1"].shape[0])
                bar.update(1)
                bar.set_postfix(loss=f"{terms['loss']:.3f}")
                if self.step % self.cfg.log_every == 0 or self.step == end:
                    dt = time.perf_counter() - t_last
                    row = {"step": self.step, "epoch": epoch, **terms,
                           "lr_seg": self.optimizers[0].param_groups[0]["lr"],
                           "lr_change": (self.optimizers[1].param_groups[0]["lr"]
                                         if len(self.optimizers) > 1 else ""),
                           "samples_per_s": n_last / dt if dt > 0 else ""}
                    self._csv("log.csv", TRAIN_LOG_FIELDS, row)
                    self._tensorboard("train", row)
                    t_last, n_last = time.perf_counter(), 0
                if self.val_ds is not None and self.step % self.cfg.eval_every == 0 \
                        and self.step < self.total_steps:  # every rank evaluates its share
                    res = self.evaluate(self.val_ds, self.cfg.max_eval_batches).compute()
                    self._csv("val_log.csv", VAL_LOG_FIELDS, {"step": self.step, **res})
                    self._tensorboard("val", res)
                    self._consider_best(res)
                if self.step % self.cfg.checkpoint_every == 0 or self.step == end:
                    self.save_checkpoint()
                if self.step >= end:
                    break
        bar.close()
        if self.step < self.total_steps:
            return {}
        result = self.finish()  # every rank evaluates; rank 0 writes
        self.dist.barrier()
        return result if main else {}

    def finish(self) -> dict[str, Any]:
        """Final evaluation on val and test (always the whole splits: ``max_eval_batches`` is
        for the validations during training only); the test split is also evaluated with the
        best-on-val weights when those are another step's. Writes ``metrics.json`` (metrics,
        pixel counts, the config, code commit, data version, ``hr_size_px``, the best step),
        ``model.pt`` (final weights), ``best.pt`` (best-on-val weights) and the confusion PNG.
        Under DDP every rank runs it (the evaluations are sharded and summed); rank 0 writes.
        """
        main = self.dist.is_main
        result: dict[str, Any] = {"model": self.kind, "step": self.step,
                                  "months": self.cfg.months, "device": str(self.device),
                                  "processes": self.dist.world,
                                  "global_batch": self.cfg.batch_size * self.dist.world,
                                  "run": self.cfg.run, "hr_size_px": self.cfg.hr_size_px,
                                  "config": self.cfg.model_dump(mode="json"),
                                  **self.provenance}
        for name, ds in (("val", self.val_ds), ("test", self.test_ds)):
            if ds is None:
                continue
            acc = self.evaluate(ds, None)
            result[name] = acc.compute()
            if main and (name == "test" or self.test_ds is None):
                write_confusion_png(acc.seg, self.out_dir / f"confusion_{name}.png",
                                    f"{self.kind} {name} (step {self.step})")
            if name == "val":
                self._csv("val_log.csv", VAL_LOG_FIELDS, {"step": self.step, **result[name]})
                self._consider_best(result[name])
        if main:
            with atomic_path(self.out_dir / "model.pt") as tmp:
                torch.save(self.model.state_dict(), tmp)
        self.dist.barrier()  # best.pt is complete before any rank reads it
        if self.best:
            result["best"] = dict(self.best)
            if self.test_ds is not None and self.best["step"] != self.step:
                final = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
                self.model.load_state_dict(torch.load(self.best_path, map_location=self.device))
                result["test_best"] = self.evaluate(self.test_ds, None).compute()
                self.model.load_state_dict(final)
            elif "test" in result:
                result["test_best"] = result["test"]
        if main:
            write_json(self.out_dir / "metrics.json", nan_to_none(result))
        if self._tb is not None:
            self._tb.close()
        return result
