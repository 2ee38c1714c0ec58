"""The export trains the official FUSU code: its own dataset class (``ChangeDetection``) reads
``export.official_training`` output and its FCN + HRNet-W18 + U-TAE model takes a few Adam steps
of its own loss on CPU (the code vendored in tests/vendor/fusu_official, see PROVENANCE.md).
The release layout (the default export) is what that code cannot train on: the same run fails.

The fixture has FUSU's geometry at a small size: 64 px HR patches at 0.5 m with 16 px Times
(the 5x footprint at 10 m), so the model's HR features (stride 4) and its U-TAE maps line up
as they do at 512 / 128 px."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.aoi import AoiSpec
from pipeline.config import ExportConfig, SplitsConfig
from pipeline.dataset.drivers import assemble_dataset, export_fusu
from pipeline.layout import Layout
from tests.splits_helpers import make_native_aoi

pytest.importorskip("torch")
pytest.importorskip("torchvision")

VENDOR = Path(__file__).resolve().parents[1] / "vendor"
MONTHS = ("2019-08", "2019-09", "2019-10")

# train.py's Trainer.training loop body (commit 317cc6b) without .cuda() / DataParallel
DRIVER = r'''
import json, random, sys
import numpy as np, torch
from torch.nn import BCELoss, CrossEntropyLoss
from torch.optim import Adam
from torch.utils.data import DataLoader
from datasets.change_detection import ChangeDetection
from models.sseg.fcn import FCN
from utils.metric import IOUandSek

random.seed(0); torch.manual_seed(0)
trainset = ChangeDetection(root=sys.argv[1], mode="train")
loader = DataLoader(trainset, batch_size=2, shuffle=True, num_workers=0, drop_last=True)
model = FCN("hrnet_w18", False, len(trainset.CLASSES) - 1, False)
criterion = CrossEntropyLoss(ignore_index=-1, weight=None)
criterion_bin = BCELoss(reduction="none")
lr = 0.00015
optimizer = Adam([{"params": [p for n, p in model.named_parameters() if "backbone" in n], "lr": lr},
                  {"params": [p for n, p in model.named_parameters() if "backbone" not in n],
                   "lr": lr * 10.0}], lr=lr, weight_decay=0.0001)
before = [p.detach().clone() for p in model.parameters()]
model.train()
losses, shapes = [], None
metric = IOUandSek(num_classes=len(trainset.CLASSES) - 1)
for i, (img1, img2, mask1, mask2, mask_bin, sstime_list) in enumerate(loader):
    if i == 3:
        break
    shapes = [list(img1.shape), list(mask1.shape), list(sstime_list.shape)]
    out1, out2, out_bin, out3 = model(img1, img2, sstime_list)
    out1 = out1.clamp(0, 1); out1[out1 != out1] = 0
    out2 = out2.clamp(0, 1); out2[out2 != out2] = 0
    out3 = out3.clamp(0, 1); out3[out3 != out3] = 0
    out_bin = out_bin.clamp(0, 1); out_bin[out_bin != out_bin] = 0
    loss1 = criterion(out1, mask1); loss2 = criterion(out2, mask2); loss3 = criterion(out3, mask1)
    loss_bin = criterion_bin(out_bin, mask_bin)
    loss_bin[mask_bin == 1] *= 2
    loss_bin = loss_bin.mean()
    loss = loss_bin + 0.5 * (loss1 + loss2) + loss3
    optimizer.zero_grad(); loss.backward(); optimizer.step()
    losses.append([float(loss), float(loss1), float(loss2), float(loss3), float(loss_bin)])
    # its metric on the step's predictions (semantic change: class where changed, 0 elsewhere)
    pred1 = torch.argmax(out1, dim=1).numpy() + 1
    changed = (out_bin > 0.5).numpy()
    gt1 = mask1.numpy() + 1
    metric.add_batch(np.where(changed, pred1, 0), np.where(mask_bin.numpy() == 1, gt1, 0))
after = list(model.parameters())
print("RESULT " + json.dumps({
    "n": len(trainset), "steps": len(losses), "losses": losses, "shapes": shapes,
    "moved": sum(int(not torch.equal(a, b)) for a, b in zip(before, after)),
    "finite": all(bool(torch.isfinite(p).all()) for p in after),
    "score": [float(v) for v in metric.evaluate()],
}))
'''


def _export(tmp: Path, official: bool) -> Path:
    lay = Layout(tmp / "ds")
    make_native_aoi(lay, "xa", "xian", nrow=4, ncol=4, months=MONTHS, hr_px=64, hr_gsd=0.5,
                    fp_px=16)
    spec = AoiSpec(name="xa", city="xian", t1="2019-08-14", t2="2019-10-18", template=True)
    assemble_dataset([spec], SplitsConfig(mode="random"), lay)
    export_fusu([spec], ExportConfig(fusu_layout=True, official_training=official), lay,
                progress=False)
    return lay.export_dir()


def _run_official(export: Path, tmp: Path) -> subprocess.CompletedProcess[str]:
    code = VENDOR / "fusu_official"
    script = tmp / "official_train.py"
    script.write_text(DRIVER)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(VENDOR / "osgeo_shim"), str(code)])}
    # cwd: HRNet reads configs/hrnet_w18.yaml relative to it, as the official code expects
    return subprocess.run([sys.executable, str(script), str(export)], cwd=code, env=env,
                          capture_output=True, text=True, timeout=600)


def test_the_official_code_trains_on_the_official_training_export(tmp_path: Path) -> None:
    export = _export(tmp_path / "official", official=True)
    res = _run_official(export, tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    out = json.loads(res.stdout.split("RESULT ", 1)[1])
    n_train = len((export / "train.txt").read_text().split())
    # its dataset reads train/ (for every mode) and the Times of each id: 3 months x 15 bands
    assert out["n"] == n_train >= 6 and out["steps"] == 3
    assert out["shapes"] == [[2, 3, 64, 64], [2, 64, 64], [2, 3, 15, 16, 16]]
    for step in out["losses"]:
        assert all(v == v and abs(v) < 1e6 for v in step), out["losses"]  # finite losses
        assert step[1] > 0 and step[4] > 0  # semantic and binary terms both active
    assert out["moved"] > 100 and out["finite"]  # Adam moved the weights, none became NaN
    score, miou, sek = out["score"]
    assert 0.0 <= miou <= 1.0 and score == pytest.approx(0.5 * miou + 0.5 * sek)


def test_the_release_layout_is_what_the_official_train_py_cannot_train_on(
        tmp_path: Path) -> None:
    """The default export keeps FUSU's release layout (14 bands, labels 0..17, NaN no data);
    the official model's U-TAE expects 15 input channels: the same run stops at once."""
    export = _export(tmp_path / "release", official=False)
    res = _run_official(export, tmp_path)
    assert res.returncode != 0
    assert "to have 15 channels, but got 14 channels" in res.stderr, res.stderr[-2000:]


# the official model on fixed weights and input, run from the vendored official code itself
FORWARD = r'''
import sys, torch
from models.sseg.fcn import FCN
torch.set_num_threads(1)  # one thread on both sides: the same reduction order
torch.manual_seed(3)
model = FCN("hrnet_w18", False, 17, False).eval()
g = torch.Generator().manual_seed(5)
x1, x2 = torch.randn(2, 3, 64, 64, generator=g), torch.randn(2, 3, 64, 64, generator=g)
series = torch.randn(2, 3, 15, 16, 16, generator=g)
with torch.no_grad():
    outs = model(x1, x2, series)
torch.save({"state": model.state_dict(), "x1": x1, "x2": x2, "series": series,
            "outs": list(outs)}, sys.argv[1])
'''


def test_the_official_preset_model_is_the_official_code_forward_pass(tmp_path: Path) -> None:
    """Same weights, same input: the project's official model (the port in
    pipeline/train/models/fusu_official.py and the batch wrapper OfficialFusuNet) gives the
    official code's four outputs exactly; the wrapper's mapping (15th band = clear flag,
    class k+1 = official output k, change = logit of the official probability) checked."""
    import torch

    code = VENDOR / "fusu_official"
    script, saved = tmp_path / "forward.py", tmp_path / "official.pt"
    script.write_text(FORWARD)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(VENDOR / "osgeo_shim"), str(code)])}
    res = subprocess.run([sys.executable, str(script), str(saved)], cwd=code, env=env,
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    ref = torch.load(saved, weights_only=True)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the reference ran: bitwise equality needs one order of sums
    try:
        _check_port_and_wrapper(ref)
    finally:
        torch.set_num_threads(threads)


def _check_port_and_wrapper(ref: dict) -> None:  # type: ignore[type-arg]
    import torch

    from pipeline.train.models.fusu_official import FCN
    from pipeline.train.models.official import NO_BACKGROUND_LOGIT, OfficialFusuNet

    port = FCN("hrnet_w18", False, 17, False).eval()
    port.load_state_dict(ref["state"], strict=True)  # the official names, every tensor
    with torch.no_grad():
        outs = port(ref["x1"], ref["x2"], ref["series"])
    for ours, theirs in zip(outs, ref["outs"], strict=True):
        assert torch.equal(ours, theirs)
    wrapped = OfficialFusuNet().eval()
    wrapped.net.load_state_dict(ref["state"], strict=True)
    series = ref["series"].clone()
    clear = (series[:, :, 14] > 0).to(torch.uint8)  # a binary 15th band, as the export writes
    series[:, :, 14] = clear.float()
    batch = {"t1": ref["x1"], "t2": ref["x2"], "sentinel": series[:, :, :14],
             "counts": torch.stack([clear, torch.ones_like(clear)], dim=2),
             "month_mask": torch.ones(2, 3, dtype=torch.bool)}
    with torch.no_grad():
        direct = wrapped.net(ref["x1"], ref["x2"], series)
        got = wrapped(batch)
    assert torch.equal(got["seg1"][:, 1:], direct[0]) and torch.equal(got["seg2"][:, 1:],
                                                                      direct[1])
    assert torch.equal(got["seg_ts"][:, 1:], direct[3])
    assert (got["seg1"][:, 0] == NO_BACKGROUND_LOGIT).all()
    assert torch.equal(got["change"][:, 0] > 0, direct[2] > 0.5)
    assert torch.equal(got["official"][2], direct[2])


def test_the_official_loss_is_train_py_s() -> None:
    """official_losses against train.py's lines (the DRIVER above) on the official labels:
    y = class - 1, background and no data -1; label_bin 1 = changed."""
    import torch
    from torch.nn import BCELoss, CrossEntropyLoss

    from pipeline.train.losses import official_losses

    g = torch.Generator().manual_seed(0)
    out1, out2, out3 = (torch.randn(2, 17, 8, 8, generator=g) for _ in range(3))
    out_bin = torch.rand(2, 8, 8, generator=g)
    out1[0, 0, 0, 0] = float("nan")
    label1 = torch.randint(0, 18, (2, 8, 8), generator=g)
    label2 = torch.randint(0, 18, (2, 8, 8), generator=g)
    label1[:, 0] = 255
    change = torch.where(label1 != label2, 1, 0)
    change[:, 0] = 255
    got = official_losses({"official": (out1, out2, out_bin, out3)},
                          {"label1": label1, "label2": label2, "change": change})

    def off(x):  # type: ignore[no-untyped-def]
        x = x.clamp(0, 1)
        x[x != x] = 0
        return x

    mask1 = torch.where((label1 >= 1) & (label1 <= 17), label1 - 1, -1)
    mask2 = torch.where((label2 >= 1) & (label2 <= 17), label2 - 1, -1)
    mask_bin = (change == 1).float()
    ce = CrossEntropyLoss(ignore_index=-1, weight=None)
    loss1, loss2 = ce(off(out1.clone()), mask1), ce(off(out2.clone()), mask2)
    loss3 = ce(off(out3.clone()), mask1)
    loss_bin = BCELoss(reduction="none")(off(out_bin.clone()), mask_bin)
    loss_bin[mask_bin == 1] *= 2
    loss_bin = loss_bin.mean()
    expect = loss_bin + 0.5 * (loss1 + loss2) + loss3
    assert torch.allclose(got["loss"], expect, rtol=1e-6, atol=0)
    assert torch.allclose(got["loss_change"], loss_bin) and torch.allclose(got["loss_ts"], loss3)
