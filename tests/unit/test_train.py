"""Training-loop tests on CPU with tiny synthetic batches (FusuDataset dict form)."""

from __future__ import annotations

import csv
import json
import math

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("timm")

from pipeline.config import TrainConfig
from pipeline.errors import TrainingError
from pipeline.train.batches import EpochSampler, flip_batch
from pipeline.train.losses import compute_losses
from pipeline.train.trainer import Trainer
from tests.train_helpers import SyntheticFusu, collate

pytestmark = pytest.mark.usefixtures("torch_one_thread")


def _cfg(**kw) -> TrainConfig:
    base = dict(tiny=True, batch_size=2, num_workers=0, checkpoint_every=1000, eval_every=1000,
                log_every=1)
    base.update(kw)
    return TrainConfig(**base)


@pytest.fixture(scope="module")
def ds() -> SyntheticFusu:
    return SyntheticFusu(n=4, hr=64, fp=16, t=4)


@pytest.mark.parametrize("model,months", [("fusunet", None), ("fusunet", 0), ("utae", None)])
def test_one_step_per_variant_finite(tmp_path, ds, model, months) -> None:
    tr = Trainer(_cfg(model=model, months=months, max_steps=1), ds, tmp_path, collate,
                 progress=False)
    batch = next(iter(tr._train_loader(0, 0)))
    before = [p.detach().clone() for p in tr.model.parameters()]
    terms = tr.train_step(batch)
    assert all(math.isfinite(v) for v in terms.values())
    assert terms["loss"] > 0
    assert (terms["loss_ts"] > 0) == (model == "fusunet" and months is None)
    assert (terms["loss_change"] > 0) == (model != "utae")
    changed = sum(not torch.equal(a, b) for a, b in zip(before, tr.model.parameters(),
                                                          strict=True))
    assert changed > 0
    assert len(tr.optimizers) == (1 if model == "utae" else 2)


def test_loss_ignores_255_and_weights_change() -> None:
    B, H = 1, 4
    seg = torch.zeros(B, 18, H, H)
    lab = torch.full((B, H, H), 255, dtype=torch.long)
    lab[0, 0, 0] = 3
    out = {"seg1": seg, "seg2": seg, "change": torch.zeros(B, 1, H, H)}
    chg = torch.full((B, H, H), 255, dtype=torch.long)
    chg[0, 0, 0] = 1
    t = compute_losses(out, {"label1": lab, "label2": lab, "change": chg}, change_weight=2.0)
    assert t["loss_seg1"].item() == pytest.approx(math.log(18), rel=1e-5)
    assert t["loss_change"].item() == pytest.approx(math.log(2), rel=1e-5)
    assert t["loss"].item() == pytest.approx(2 * math.log(18) + 2 * math.log(2), rel=1e-5)
    # all-ignored batch: zero loss, not NaN
    t0 = compute_losses(out, {"label1": torch.full_like(lab, 255), "label2": lab,
                              "change": torch.full_like(chg, 255)}, 2.0)
    assert t0["loss_seg1"].item() == 0.0 and t0["loss_change"].item() == 0.0


def test_flip_batch_keeps_patch_box_geometry() -> None:
    s = SyntheticFusu(n=1, hr=64, fp=20, t=2)[0]
    b = collate([s])
    b["patch_box"] = torch.tensor([[3.0, 5.0, 4.0, 6.0]])
    g = torch.Generator().manual_seed(0)
    while True:  # find a draw with both flips
        state = g.get_state()
        if bool((torch.rand(1, 2, generator=g) < 0.5).all()):
            break
    g.set_state(state)
    out = flip_batch(b, generator=g)
    torch.testing.assert_close(out["patch_box"][0], torch.tensor([20 - 3 - 4.0, 20 - 5 - 6.0,
                                                                 4.0, 6.0]))
    torch.testing.assert_close(out["t1"][0], torch.flip(b["t1"][0], dims=(-1, -2)))
    torch.testing.assert_close(out["sentinel"][0], torch.flip(b["sentinel"][0], dims=(-1, -2)))


def test_epoch_sampler_is_resumable() -> None:
    full = list(EpochSampler(10, seed=3, epoch=1))
    assert sorted(full) == list(range(10))
    assert list(EpochSampler(10, seed=3, epoch=1, start=4)) == full[4:]
    assert full != list(EpochSampler(10, seed=3, epoch=2))


def test_tiny_model_overfits(tmp_path, ds) -> None:
    small = SyntheticFusu(n=4, hr=32, fp=16, t=3)
    cfg = _cfg(batch_size=4, max_steps=60, seg_lr=0.05, change_lr=3e-3, augment=False)
    tr = Trainer(cfg, small, tmp_path, collate, val_ds=small, test_ds=small, progress=False)
    res = tr.fit()
    with (tmp_path / "log.csv").open() as fh:
        losses = [float(r["loss"]) for r in csv.DictReader(fh)]
    assert len(losses) == 60
    assert losses[-1] < 0.5 * losses[0], losses
    assert res["test"]["seg_miou"] > 0.3
    assert res["test"]["change_iou"] > 0.8
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert set(metrics) >= {"val", "test", "model", "step"}
    for key in ("seg_miou", "change_iou", "change_f1", "scd_miou", "scs", "bc", "sc"):
        assert key in metrics["test"]
    assert (tmp_path / "confusion_test.png").stat().st_size > 0
    assert (tmp_path / "model.pt").exists()


def _params(tr: Trainer) -> list:
    return [p.detach().clone() for p in tr.model.parameters()]


def test_resume_after_kill_matches_uninterrupted(tmp_path, ds) -> None:
    # 3 samples, batch 2 -> 2 steps per epoch: the kill at step 3 is mid-epoch
    data = SyntheticFusu(n=3, hr=64, fp=16, t=3)
    cfg = _cfg(max_steps=5, checkpoint_every=3, augment=True, seed=7)
    a = Trainer(cfg, data, tmp_path / "a", collate, progress=False)
    a.fit()
    ref = _params(a)

    b = Trainer(cfg, data, tmp_path / "b", collate, progress=False)
    assert b.fit(stop_at=3) == {}
    assert b.step == 3 and (tmp_path / "b" / "checkpoints" / "last.pt").exists()
    torch.manual_seed(999)  # the "new process" has a different RNG state until resumed
    c = Trainer(cfg, data, tmp_path / "b", collate, progress=False)
    assert c.step == 0
    c.load_checkpoint()
    assert c.step == 3
    # optimizer and scheduler state restored
    assert c.schedulers[0].last_epoch == 3
    assert c.optimizers[0].state_dict()["state"]
    torch.manual_seed(999)
    c2 = Trainer(cfg, data, tmp_path / "b", collate, progress=False)
    c2.fit()
    assert c2.step == 5
    for p, q in zip(ref, _params(c2), strict=True):
        torch.testing.assert_close(p, q, rtol=0, atol=0)
    with (tmp_path / "b" / "log.csv").open() as fh:
        steps = [int(r["step"]) for r in csv.DictReader(fh)]
    assert steps == [1, 2, 3, 4, 5]


def test_resume_refuses_other_model(tmp_path, ds) -> None:
    Trainer(_cfg(max_steps=1), ds, tmp_path, collate, progress=False).fit()
    other = Trainer(_cfg(max_steps=2, model="utae"), ds, tmp_path, collate, progress=False)
    with pytest.raises(TrainingError, match="checkpoint"):
        other.fit()
    lr = Trainer(_cfg(max_steps=2, seg_lr=0.5), ds, tmp_path, collate, progress=False)
    with pytest.raises(TrainingError, match=r"different train settings \['max_steps', 'seg_lr'\]"):
        lr.fit()
    ok = Trainer(_cfg(max_steps=1, log_every=5, num_workers=0), ds, tmp_path, collate,
                 progress=False)
    assert ok.fit()["step"] == 1


def test_cuda_requested_without_gpu(tmp_path, ds) -> None:
    if torch.cuda.is_available():
        pytest.skip("has a GPU")
    with pytest.raises(TrainingError, match="no CUDA GPU"):
        Trainer(_cfg(device="cuda"), ds, tmp_path, collate, progress=False)


@pytest.mark.parametrize("model,months", [("fusunet", None), ("fusunet", 0)])
def test_stage_on_native_dataset(tmp_path, model, months) -> None:
    """stages.train.run on a tiny native-layout dataset read by pipeline.dataset.torchds (2 AOIs
    with
    3 and 2 months: variable T, padded by fusu_collate)."""
    pytest.importorskip("pipeline.dataset.torchds")
    from pipeline.train.drivers import train_model as run
    from tests.torchds_helpers import make_dataset

    layout = make_dataset(tmp_path / "ds")
    cfg = _cfg(model=model, months=months, max_steps=2, eval_every=1, checkpoint_every=1)
    res = run(cfg, layout, threads=1, progress=False)
    out = layout.train_dir()
    assert out == layout.root / "train" / "default"
    assert res["step"] == 2
    assert res["model"] == ("hr_only" if months == 0 else "fusunet")
    for name in ("metrics.json", "model.pt", "log.csv", "val_log.csv", "confusion_test.png",
                 "checkpoints/last.pt", "checkpoints/best.pt"):
        assert (out / name).exists(), name
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["config"]["months"] == months and saved["run"] == "default"
    assert saved["commit"] and len(saved["data_version"]) == 16
    assert "hr_size_px" in saved and saved["test"]["pixels"]["seg"] > 0
    assert saved["best"]["step"] in (1, 2) and "test_best" in saved
    assert 0.0 <= res["test"]["seg_oa"] <= 1.0
    # a rerun resumes from the final checkpoint: no extra steps, same metrics
    again = run(cfg, layout, threads=1, progress=False)
    assert again["step"] == 2
    assert again["test"]["seg_oa"] == res["test"]["seg_oa"]


@pytest.mark.gpu
def test_bf16_step_on_gpu(tmp_path, ds) -> None:
    tr = Trainer(_cfg(device="cuda", max_steps=2), ds, tmp_path, collate, progress=False)
    assert tr.autocast and tr.device.type == "cuda"
    terms = tr.train_step(next(iter(tr._train_loader(0, 0))))
    assert all(math.isfinite(v) for v in terms.values())


def test_named_runs_best_on_val_and_full_final_test(tmp_path) -> None:
    """Several named runs per dataset, each resumable on its own; the best-on-val weights are
    kept and tested; max_eval_batches never shortens the final test; DEN-protocol BC."""
    pytest.importorskip("pipeline.dataset.torchds")
    from pipeline.train.drivers import train_model as run
    from tests.torchds_helpers import make_dataset

    layout = make_dataset(tmp_path / "ds")
    a = _cfg(run="t2", months=2, max_steps=3, eval_every=1, checkpoint_every=1,
             batch_size=1, max_eval_batches=1)
    b = _cfg(run="hr", months=0, max_steps=2, eval_every=1, checkpoint_every=1)
    ra = run(a, layout, threads=1, progress=False)
    rb = run(b, layout, threads=1, progress=False)  # another run: no settings clash
    assert (layout.train_dir("t2") / "model.pt").exists()
    assert (layout.train_dir("hr") / "model.pt").exists()
    assert ra["model"] == "fusunet" and rb["model"] == "hr_only"
    # the final test covers the whole split although validation was capped at one batch
    import csv as _csv

    from pipeline.dataset.torchds import FusuDataset

    test = FusuDataset(layout.root, split="test", months=2)
    assert len(test) >= 2  # more than the one batch (batch_size 1) validation is capped at
    labelled = sum(int((test[i]["change"] != 255).sum()) for i in range(len(test)))
    assert ra["test"]["pixels"]["change"] == labelled
    # best-on-val: the step whose validation score is the highest
    rows = list(_csv.DictReader((layout.train_dir("t2") / "val_log.csv").open()))
    scores = {int(r["step"]): float(r["scs"]) for r in rows if r["scs"] not in ("", "nan")}
    if scores:
        assert ra["best"]["metric"] == "scs"
        assert ra["best"]["value"] == pytest.approx(max(scores.values()))
    # DEN protocol (change = p1 != p2) is reported beside the change head's BC
    assert "bc_den" in ra["test"] and "bc" in ra["test"]
    # rerunning run t2 resumes it (same step, no clash with run hr's settings)
    again = run(a, layout, threads=1, progress=False)
    assert again["step"] == 3 and again["best"] == ra["best"]


def test_paper_preset_and_optimizer_recipes() -> None:
    """'paper' = FUSU A.5.2 per task (HRNet-W18, batch 8, the task's optimizer, LR, schedule and
    length); explicit keys win; each recipe covers every parameter exactly once."""
    from pipeline.train.models import build_model
    from pipeline.train.optimizers import make_optimizers

    seg = TrainConfig(preset="paper")
    assert (seg.hrnet, seg.batch_size, seg.optimizer, seg.seg_lr, seg.max_steps) == (
        "hrnet_w18", 8, "sgd", 0.01, 80_000)
    scd = TrainConfig(preset="paper", paper_task="scd")
    assert (scd.optimizer, scd.change_lr, scd.change_betas, scd.epochs, scd.max_steps) == (
        "adamw", 3e-4, (0.5, 0.999), 200, None)
    assert TrainConfig(preset="paper", paper_task="bcd").change_lr == 1e-3
    mine = TrainConfig(preset="paper", batch_size=2, hrnet="hrnet_w18_small")
    assert (mine.batch_size, mine.hrnet, mine.optimizer) == (2, "hrnet_w18_small", "sgd")
    fast = TrainConfig()
    assert (fast.preset, fast.hrnet, fast.optimizer) == ("fast", "hrnet_w18_small", "split")
    # the reference presets use the reference model's change fusion; explicit keys win
    assert (seg.change_fusion, scd.change_fusion, fast.change_fusion) == (
        "paper", "paper", "temporal")
    assert TrainConfig(preset="official").change_fusion == "paper"
    assert TrainConfig(preset="official", change_fusion="temporal").change_fusion == "temporal"
    net = build_model(TrainConfig(preset="paper", months=0))
    n = sum(p.numel() for p in net.backbone.body.parameters())
    assert 9.5e6 < n < 9.7e6  # HRNet-W18 as in the paper (hrnet_w18_small: 1.5M)
    for cfg, kinds in ((seg, ["SGD"]), (scd, ["AdamW"]), (fast, ["SGD", "AdamW"])):
        opts, scheds = make_optimizers(net, cfg.model_copy(update={"tiny": True}), 10)
        assert [type(o).__name__ for o in opts] == kinds and len(scheds) == len(opts)
        ids = [id(p) for o in opts for g in o.param_groups for p in g["params"]]
        assert len(ids) == len(set(ids)) == len(list(net.parameters()))
    # the official train.py: one Adam, lr 1.5e-4 on the backbone and 10x on the rest, L2 1e-4,
    # poly 0.9 per step on both groups, 100 epochs, batch 8
    off = TrainConfig(preset="official")
    assert (off.optimizer, off.hrnet, off.batch_size, off.epochs, off.official_lr) == (
        "official", "hrnet_w18", 8, 100, 1.5e-4)
    (adam,), (sched,) = make_optimizers(net, off, 10)
    assert type(adam).__name__ == "Adam" and adam.defaults["weight_decay"] == 1e-4
    back, rest = adam.param_groups
    backbone = {id(p) for p in net.backbone.parameters()}
    assert {id(p) for p in back["params"]} == backbone and back["lr"] == 1.5e-4
    assert not backbone & {id(p) for p in rest["params"]}
    assert rest["lr"] == pytest.approx(1.5e-3)
    assert len(back["params"]) + len(rest["params"]) == len(list(net.parameters()))
    for _ in range(5):
        adam.step()
        sched.step()
    assert back["lr"] == pytest.approx(1.5e-4 * 0.5 ** 0.9)
    assert rest["lr"] == pytest.approx(10 * back["lr"])


def test_evaluate_and_predict_a_saved_run(tmp_path) -> None:
    """A saved run is evaluated on any split (same metrics as its own final test) and writes
    its predictions as GeoTIFFs on each patch's grid, with colour tables, plus VRT mosaics."""
    pytest.importorskip("pipeline.dataset.torchds")
    import rasterio

    from pipeline.train.drivers import evaluate_run, predict_run
    from pipeline.train.drivers import train_model as run
    from tests.torchds_helpers import make_dataset

    layout = make_dataset(tmp_path / "ds")
    cfg = _cfg(run="r1", max_steps=2, eval_every=1, checkpoint_every=1)
    res = run(cfg, layout, threads=1, progress=False)
    final = evaluate_run(cfg.model_copy(update={"weights": "final"}), layout)
    assert final["metrics"]["seg_oa"] == pytest.approx(res["test"]["seg_oa"])
    assert (layout.train_dir("r1") / "eval_test_final.json").exists()
    best = evaluate_run(cfg, layout)  # the best-on-val weights
    assert best["weights"].endswith("best.pt")
    assert best["metrics"]["seg_oa"] == pytest.approx(res["test_best"]["seg_oa"])
    val = evaluate_run(cfg.model_copy(update={"eval_split": "val"}), layout)
    assert val["split"] == "val" and val["n_patches"] > 0
    summary = predict_run(cfg, layout)
    out = layout.train_dir("r1") / "predictions" / "test"
    assert summary["patches"] > 0 and (out / "done.json").exists()
    from pipeline.dataset.torchds import FusuDataset

    ds = FusuDataset(layout.root, split="test")
    pid = ds.patch_ids[0]
    aoi = pid.rsplit("_r", 1)[0]
    pred = out / aoi / "seg1" / f"{pid}.tif"
    with rasterio.open(pred) as p, rasterio.open(ds.label_path(pid)) as lab:
        assert p.transform == lab.transform and p.crs == lab.crs and p.shape == lab.shape
        from pipeline.classes import load_schema

        assert p.colormap(1)[1] == load_schema().colormap()[1]  # the class colours
        assert p.read(1).max() <= 17
    with rasterio.open(out / aoi / "change.vrt") as m:
        assert m.count == 1 and m.read(1).max() <= 1
        assert m.transform.a == lab.transform.a  # the patches' own resolution


def test_ablation_runs_and_table(tmp_path) -> None:
    """The ablation's runs (t<N> per train.ablation_months, t0 = HR only, plus utae) and its
    table: one row per run, read from each run's metrics.json."""
    from pipeline.layout import Layout
    from pipeline.train.drivers import ablation_runs, ablation_table
    from pipeline.train.models import model_kind

    cfg = _cfg(ablation_months=[0, 9, 25])
    runs = ablation_runs(cfg)
    assert list(runs) == ["t0", "t9", "t25", "utae"]
    assert [model_kind(r) for r in runs.values()] == ["hr_only", "fusunet", "fusunet", "utae"]
    assert runs["t9"].months == 9 and runs["t9"].run == "t9" and runs["utae"].months is None
    lay = Layout(tmp_path)
    with pytest.raises(FileNotFoundError, match="rule ablation"):
        ablation_table(cfg, lay)
    for i, name in enumerate(runs):
        d = lay.train_dir(name)
        d.mkdir(parents=True)
        (d / "metrics.json").write_text(json.dumps({
            "run": name, "model": model_kind(runs[name]), "months": runs[name].months,
            "months_used": min(runs[name].months or 13, 13), "step": 30,
            "test": {"seg_miou": 0.1 * i, "change_iou": 0.5, "scd_miou": None},
            "best": {"step": 20}, "test_best": {"seg_miou": 0.2}}))
    rows = ablation_table(cfg, lay)
    assert [r["run"] for r in rows] == list(runs) and rows[2]["months_used"] == 13
    md = (tmp_path / "train" / "ablation.md").read_text()
    assert "| t25 | fusunet | 25 | 13 | 30 | 20.00 | 50.00 |  |" in md
    csv_text = (tmp_path / "train" / "ablation.csv").read_text().splitlines()
    assert csv_text[0].startswith("run,model,months,months_used") and len(csv_text) == 5


def test_predictions_stay_within_the_datasets_classes() -> None:
    """A dataset with its own classes (DynamicEarthNet: ids 1..6 of the 18 outputs) gets
    argmaxes over those only; change from the change head is unaffected."""
    from pipeline.train.prediction import predictions

    seg = torch.zeros((1, 18, 2, 2))
    seg[:, 10] = 5.0  # a class the dataset cannot hold wins the plain argmax
    seg[:, 3, 0, 0] = 1.0
    out = {"seg1": seg, "seg2": seg.clone(), "change": torch.ones((1, 1, 2, 2))}
    assert (predictions(out)["pred1"] == 10).all()
    p = predictions(out, (1, 2, 3, 4, 5, 6))
    assert p["pred1"][0, 0, 0] == 3 and set(p["pred2"].ravel().tolist()) <= set(range(1, 7))
    assert p["pred_change"].all()
