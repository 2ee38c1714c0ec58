"""Driver of rule ``train``: FUSU-Net (or a baseline) on the built dataset.

Builds the train/val/test :class:`pipeline.dataset.torchds.FusuDataset` splits and runs
:class:`pipeline.train.trainer.Trainer`. Outputs under ``Layout.train_dir(train.run)`` (see
:mod:`pipeline.train.trainer`). Re-running after a kill resumes from
``train/<run>/checkpoints/last.pt``. ``torch`` is imported lazily.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from pipeline.config import TrainConfig
from pipeline.errors import DatasetError, MissingInputError, TrainingError
from pipeline.io.digest import content_digest
from pipeline.io.provenance import code_commit
from pipeline.layout import Layout

log = logging.getLogger(__name__)


def _split_dataset(cfg: TrainConfig, layout: Layout, name: str, required: bool = True) -> Any:
    """The ``name`` split of the dataset ``cfg.dataset`` names (native or expanded); a split
    that cannot be loaded is a TrainingError, or None (logged) when not ``required``."""
    from pipeline.dataset.torchds import FusuDataset
    from pipeline.train.batches import resolve_device
    from pipeline.train.models import model_kind

    try:
        if cfg.dataset == "expanded":
            from pipeline.dataset.torch_expanded import ExpandedDataset

            return ExpandedDataset(layout.root, split=name, hr_size=cfg.hr_size_px or 256,
                                   fp_px=cfg.expanded_fp_px, months=cfg.months)
        # on a GPU: compact samples (stored dtypes through the workers), normalised on the
        # device by Trainer (prepare_batch); on the CPU the workers normalise
        return FusuDataset(layout.root, split=name, months=cfg.months,
                           with_sentinel=model_kind(cfg) != "hr_only", hr_size=cfg.hr_size_px,
                           compact=resolve_device(cfg).type == "cuda")
    except (DatasetError, MissingInputError) as exc:
        if required:
            raise TrainingError(f"cannot load the {name!r} split: {exc}") from None
        log.warning("no %s evaluation: %s", name, exc)
        return None


def _loaded_trainer(cfg: TrainConfig, layout: Layout, threads: int) -> tuple[Any, Any, str]:
    """(a Trainer holding the run's weights, the ``eval_split`` dataset, the weights file)."""
    try:
        import torch
    except ImportError:
        raise TrainingError("evaluation needs torch and timm: pip install -e '.[train]'") from None
    from pipeline.dataset.collate import fusu_collate
    from pipeline.train.trainer import Trainer

    torch.set_num_threads(max(1, threads))
    ds = _split_dataset(cfg, layout, cfg.eval_split)
    if len(ds) == 0:
        raise TrainingError(f"split {cfg.eval_split!r} of {layout.root} is empty")
    run = layout.train_dir(cfg.run)
    weights = run / "checkpoints" / "best.pt"
    if cfg.weights == "final" or not weights.is_file():
        weights = run / "model.pt"
    trainer = Trainer(cfg, ds, run, fusu_collate, progress=False)
    trainer.load_weights(weights)
    return trainer, ds, str(weights)


def den_protocol(trainer: Any, cfg: TrainConfig, layout: Layout, split: str
                 ) -> dict[str, Any] | None:
    """DynamicEarthNet's own protocol on an expanded DynamicEarthNet split (None for other
    datasets): the model predicts every labelled month of every cube (one pass per pair of
    consecutive months: the first month from the first pair's T1 map, every later month from
    its pair's T2 map), and :func:`pipeline.train.metrics.den_scs` scores the cubes' monthly
    maps as the official evaluator does (change between consecutive months, BC / SC / SCS,
    classes 0..5, 255 ignored). Scored at ``hr_size_px`` (labels resized nearest)."""
    import numpy as np

    from pipeline.dataset.torch_expanded import ExpandedDataset
    from pipeline.train.metrics import den_scs

    if cfg.dataset != "expanded":
        return None
    try:
        ds = ExpandedDataset(layout.root, split=split, hr_size=cfg.hr_size_px or 256,
                             fp_px=cfg.expanded_fp_px, months=cfg.months, den_pairs=True)
    except DatasetError:
        return None
    gt: dict[str, dict[int, np.ndarray]] = {}
    pr: dict[str, dict[int, np.ndarray]] = {}
    for batch, p in trainer.predict_batches(ds):
        for b, meta in enumerate(batch["meta"]):
            cube, j = meta["den_cube"], int(meta["den_pair"])
            for t, lab, pred in ((j, "label1", "pred1"), (j + 1, "label2", "pred2")):
                if t == j and j > 0:
                    continue  # a later month comes from its own pair's T2 map
                g = np.asarray(batch[lab][b].cpu().numpy(), np.int64)
                gt.setdefault(cube, {})[t] = np.where(g == 255, 255, g - 1)
                pr.setdefault(cube, {})[t] = np.asarray(p[pred][b], np.int64) - 1
    cubes = sorted(gt)
    scores = den_scs([np.stack([gt[c][t] for t in sorted(gt[c])]) for c in cubes],
                     [np.stack([pr[c][t] for t in sorted(pr[c])]) for c in cubes],
                     num_classes=6, ignore_label=255)
    return {**scores, "cubes": len(cubes), "month_pairs": len(ds),
            "resolution_px": int(cfg.hr_size_px or 256)}


def evaluate_run(cfg: TrainConfig, layout: Layout, threads: int = 1) -> dict[str, Any]:
    """Driver of rule ``evaluate``: the metrics of run ``cfg.run``'s weights (``cfg.weights``)
    on split ``cfg.eval_split`` (the whole split), written to
    ``train/<run>/eval_<split>_<weights>.json``.

    Raises:
        TrainingError: the run has no weights, the split is missing or empty.
    """
    from pipeline.io.jsonfile import write_json
    from pipeline.train.outputs import nan_to_none

    trainer, ds, weights = _loaded_trainer(cfg, layout, threads)
    result = {"run": cfg.run, "split": cfg.eval_split, "weights": weights,
              "model": trainer.kind, "n_patches": len(ds), "commit": code_commit(),
              "data_version": content_digest([layout.index(), layout.stats()]),
              "metrics": trainer.evaluate(ds, None).compute()}
    den = den_protocol(trainer, cfg, layout, cfg.eval_split)
    if den is not None:
        result["metrics"]["den_protocol"] = den
    out = layout.train_dir(cfg.run) / f"eval_{cfg.eval_split}_{cfg.weights}.json"
    write_json(out, nan_to_none(result))
    log.info("%s on %s (%s): %s", cfg.run, cfg.eval_split, weights,
             {k: v for k, v in result["metrics"].items() if isinstance(v, float)})
    return result


def predict_run(cfg: TrainConfig, layout: Layout, threads: int = 1) -> dict[str, Any]:
    """Driver of rule ``predict``: run ``cfg.run``'s predictions on split ``cfg.eval_split`` as
    georeferenced GeoTIFFs on each patch's own grid (the patch's T1 label: same CRS,
    transform and size), under ``train/<run>/predictions/<split>/<aoi>/``:
    ``seg1/<patch>.tif`` and ``seg2/<patch>.tif`` (uint8 classes 0..17 with the class colour
    table), ``change/<patch>.tif`` (uint8 0/1); plus one VRT mosaic per AOI and kind
    (``<aoi>/seg1.vrt`` ...). Predictions made at ``hr_size_px`` are resized back to the
    patch's size (nearest). Returns the summary written to ``.../done.json``.
    """
    import numpy as np
    import torch
    import torch.nn.functional as F  # noqa: N812

    from pipeline.classes import load_schema
    from pipeline.io.geotiff import read_patch, write_mosaic_vrt, write_patch_tif
    from pipeline.io.jsonfile import write_json

    if cfg.dataset != "native":
        raise TrainingError("rule predict writes predictions on native patch grids: set "
                            "train.dataset: native (expanded samples keep their own layouts)")
    trainer, ds, weights = _loaded_trainer(cfg, layout, threads)
    out_root = layout.train_dir(cfg.run) / "predictions" / cfg.eval_split
    colours = load_schema().colormap()  # the dataset's class table (FusuDataset: fusu17)
    change_colours = {0: (0, 0, 0, 255), 1: (255, 255, 255, 255)}
    written: dict[str, dict[str, list[str]]] = {}
    for batch, pred in trainer.predict_batches(ds):
        for b, meta in enumerate(batch["meta"]):
            pid, aoi = meta["patch_id"], meta["aoi"]
            ref = read_patch(ds.label_path(pid, "t1"), "T1 label")
            h, w = ref.shape
            for kind, key in (("seg1", "pred1"), ("seg2", "pred2"), ("change", "pred_change")):
                arr = torch.from_numpy(np.asarray(pred[key][b], dtype=np.uint8))
                if tuple(arr.shape) != (h, w):
                    arr = F.interpolate(arr[None, None].float(), size=(h, w),
                                        mode="nearest")[0, 0].to(torch.uint8)
                path = out_root / aoi / kind / f"{pid}.tif"
                write_patch_tif(path, arr.numpy(), ref.transform, ref.crs, None,
                                colormap=change_colours if kind == "change" else colours)
                written.setdefault(aoi, {}).setdefault(kind, []).append(str(path))
    mosaics = {}
    for aoi, kinds in written.items():
        for kind, paths in kinds.items():
            vrt = write_mosaic_vrt(out_root / aoi / f"{kind}.vrt", paths,
                                   change_colours if kind == "change" else colours)
            mosaics[f"{aoi}/{kind}"] = str(vrt)
    summary = {"run": cfg.run, "split": cfg.eval_split, "weights": weights,
               "patches": sum(len(k.get("seg1", [])) for k in written.values()),
               "mosaics": mosaics, "commit": code_commit()}
    write_json(out_root / "done.json", summary)
    return summary


#: Columns of the ablation table: (header, path into metrics.json).
ABLATION_COLUMNS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("run", ("run",)), ("model", ("model",)), ("months", ("months",)),
    ("months_used", ("months_used",)), ("steps", ("step",)),
    ("seg_miou", ("test", "seg_miou")), ("bcd_iou", ("test", "change_iou")),
    ("scd_miou", ("test", "scd_miou")), ("scs", ("test", "scs")),
    ("sek", ("test", "second", "sek")), ("second_score", ("test", "second", "score")),
    ("bc_den", ("test", "bc_den")), ("best_step", ("best", "step")),
    ("best_seg_miou", ("test_best", "seg_miou")), ("best_bcd_iou", ("test_best", "change_iou")),
)


def ablation_runs(cfg: TrainConfig) -> dict[str, TrainConfig]:
    """The runs of the Table-7 ablation: ``t<N>`` per ``cfg.ablation_months`` (``t0`` = HR
    only) and the U-TAE baseline ``utae``, each this config with its run name, months and
    model."""
    runs = {f"t{m}": cfg.model_copy(update={"run": f"t{m}", "months": int(m),
                                            "model": "fusunet"})
            for m in cfg.ablation_months}
    runs["utae"] = cfg.model_copy(update={"run": "utae", "months": None, "model": "utae"})
    return runs


def ablation_table(cfg: TrainConfig, layout: Layout) -> list[dict[str, Any]]:
    """Driver of rule ``ablation``: one row per ablation run (test metrics of the final and of
    the best-on-val weights), written to ``train/ablation.csv`` and ``train/ablation.md``.

    Raises:
        MissingInputError: a run has no ``metrics.json`` (run rule ablation, which trains them).
    """
    return compare_runs(layout, list(ablation_runs(cfg)), "ablation", "rule ablation")


RUNS_TABLE_NOTE = "Scores in % on the test split (final weights; best_*: best-on-val weights).\n\n"


def compare_runs(layout: Layout, runs: Sequence[str], stem: str = "compare",
                 how: str = "python -m pipeline.train") -> list[dict[str, Any]]:
    """One row per trained run (:data:`ABLATION_COLUMNS`: the project's scores and the SECOND
    score / SeK of the official code, final and best-on-val weights), written to
    ``train/<stem>.csv`` and ``train/<stem>.md`` (scores in %).

    Raises:
        MissingInputError: a run has no ``metrics.json`` (train it first: ``how``).
    """
    from pipeline.io.atomic import write_text_atomic
    from pipeline.io.jsonfile import read_json

    rows = []
    for name in runs:
        m = read_json(layout.train_dir(name) / "metrics.json", "run metrics",
                      f"train run {name} ({how})")
        row: dict[str, Any] = {}
        for header, path in ABLATION_COLUMNS:
            v: Any = m
            for k in path:
                v = v.get(k) if isinstance(v, dict) else None
            row[header] = v
        rows.append(row)
    heads = [h for h, _ in ABLATION_COLUMNS]

    def cell(v: Any) -> str:
        if v is None:
            return ""
        return f"{100 * v:.2f}" if isinstance(v, float) else str(v)

    csv = "\n".join([",".join(heads)] + [",".join(cell(r[h]) for h in heads) for r in rows])
    md = "\n".join(["| " + " | ".join(heads) + " |", "|" + "---|" * len(heads)]
                   + ["| " + " | ".join(cell(r[h]) for h in heads) + " |" for r in rows])
    root = layout.root / "train"
    write_text_atomic(root / f"{stem}.csv", csv + "\n")
    write_text_atomic(root / f"{stem}.md", RUNS_TABLE_NOTE + md + "\n")
    return rows


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
    from pipeline.train.batches import resolve_device
    from pipeline.train.models import model_kind
    from pipeline.train.trainer import Trainer

    torch.set_num_threads(max(1, threads))
    kind = model_kind(cfg)
    with_sentinel = kind != "hr_only"
    train_ds = _split_dataset(cfg, layout, "train")
    val_ds = _split_dataset(cfg, layout, "val", required=False)
    test_ds = _split_dataset(cfg, layout, "test", required=False)
    log.info("train %s: %d train / %s val / %s test patches, months=%s", kind, len(train_ds),
             len(val_ds) if val_ds else 0, len(test_ds) if test_ds else 0, cfg.months)
    data_files = ([layout.expand_samples(), layout.expand_layout().stats()]
                  if cfg.dataset == "expanded" else [layout.index(), layout.stats()])
    provenance = {"commit": code_commit(), "dataset": cfg.dataset,
                  "data_version": content_digest(data_files),
                  "months_used": (len(train_ds[0]["meta"]["months"]) if with_sentinel else 0)}
    from pipeline.train.distributed import init_from_env

    dist, device = init_from_env(resolve_device(cfg))
    trainer = Trainer(cfg, train_ds, layout.train_dir(cfg.run), fusu_collate, val_ds=val_ds,
                      test_ds=test_ds, progress=progress, provenance=provenance, dist=dist,
                      device=device)
    log.info("device %s, %d steps (%d per epoch)", trainer.device, trainer.total_steps,
             trainer.steps_per_epoch)
    try:
        result = trainer.fit()
        # every rank predicts (a DDP forward is collective), rank 0 writes
        den = den_protocol(trainer, cfg, layout, "test")
        if den is not None and dist.is_main:  # DynamicEarthNet: its own protocol too
            from pipeline.io.jsonfile import read_json, write_json

            result["test"]["den_protocol"] = den
            metrics = layout.train_dir(cfg.run) / "metrics.json"
            saved = read_json(metrics, "run metrics")
            saved["test"] = {**saved.get("test", {}), "den_protocol": den}
            write_json(metrics, saved)
    finally:
        dist.shutdown()
    log.info("test metrics: %s", {k: v for k, v in result.get("test", {}).items()
                                  if not isinstance(v, dict)})
    return result
