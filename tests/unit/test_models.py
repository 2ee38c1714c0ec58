"""Model tests: shapes, padding, centre crop geometry, variants, local weights."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("timm")

from pipeline.config import TrainConfig
from pipeline.errors import TrainingError
from pipeline.train.models import build_model, model_kind
from pipeline.train.models.fusunet import crop_to_patch
from pipeline.train.models.utae import UTAE, aggregate_with_attention
from tests.train_helpers import SyntheticFusu, collate

pytestmark = pytest.mark.usefixtures("torch_one_thread")


@pytest.fixture(scope="module")
def batch() -> dict:
    torch.manual_seed(0)
    return collate([SyntheticFusu(n=2, hr=64, fp=16, t=4)[i] for i in range(2)])


def test_crop_to_patch_known_answer() -> None:
    # feature = x coordinate of the pixel centre: bilinear sampling of a linear ramp is exact
    h = w = 20
    xs = torch.arange(w, dtype=torch.float32) + 0.5
    feat = xs.expand(1, 1, h, w).clone()
    box = torch.tensor([[8.0, 6.0, 4.0, 4.0]])
    out = crop_to_patch(feat, box, (8, 8))
    expected = 8.0 + (torch.arange(8) + 0.5) * 4.0 / 8
    torch.testing.assert_close(out[0, 0, 3], expected, atol=1e-4, rtol=0)
    # the same box on a 2x coarser feature map (footprint 20 px -> feature 10 px)
    coarse = (torch.arange(10, dtype=torch.float32) + 0.5).expand(1, 1, 10, 10) * 2
    out2 = crop_to_patch(coarse, box, (8, 8), footprint_size=(h, w))
    torch.testing.assert_close(out2[0, 0, 3], expected, atol=1e-4, rtol=0)


def test_utae_padding_gets_zero_attention_and_changes_nothing() -> None:
    torch.manual_seed(0)
    net = UTAE(14, (16, 16, 32), (16, 16, 32), out_channels=8, n_head=4, d_k=4, d_model=32).eval()
    x = torch.randn(1, 3, 14, 16, 16)
    padded = torch.cat([x, torch.zeros(1, 2, 14, 16, 16)], dim=1)
    mask = torch.tensor([[True, True, True, False, False]])
    out_p, att = net(padded, mask, return_att=True)
    out = net(x, torch.ones(1, 3, dtype=torch.bool))
    assert att.shape == (4, 1, 5, 4, 4)
    assert torch.all(att[:, :, 3:] == 0)
    torch.testing.assert_close(att[:, :, :3].sum(2), torch.ones(4, 1, 4, 4))
    torch.testing.assert_close(out_p, out, atol=1e-5, rtol=1e-4)


def test_grouped_aggregation_uses_head_per_channel_group() -> None:
    x = torch.zeros(1, 2, 4, 2, 2)
    x[:, 0] = 1.0
    x[:, 1] = 3.0
    att = torch.zeros(2, 1, 2, 1, 1)
    att[0, :, 0] = 1.0  # head 0 -> first date
    att[1, :, 1] = 1.0  # head 1 -> second date
    out = aggregate_with_attention(x, att, torch.ones(1, 2, dtype=torch.bool))
    assert torch.all(out[:, :2] == 1.0) and torch.all(out[:, 2:] == 3.0)


@pytest.mark.parametrize(
    ("model", "months", "kind", "keys"),
    [
        ("fusunet", None, "fusunet", {"seg1", "seg2", "change", "seg_ts"}),
        ("fusunet", 0, "hr_only", {"seg1", "seg2", "change"}),
        ("hr_only", None, "hr_only", {"seg1", "seg2", "change"}),
        ("utae", None, "utae", {"seg1", "seg2"}),
    ],
)
def test_variants_output_shapes(batch: dict, model: str, months: int | None, kind: str,
                                keys: set) -> None:
    cfg = TrainConfig(model=model, months=months, tiny=True)
    assert model_kind(cfg) == kind
    net = build_model(cfg).eval()
    with torch.no_grad():
        out = net(batch)
    assert set(out) == keys
    for k in keys:
        c = 1 if k == "change" else 18
        assert out[k].shape == (2, c, 64, 64)
        assert torch.isfinite(out[k]).all()
    if kind == "hr_only":
        assert not hasattr(net, "utae")


def test_other_timm_backbone(batch: dict) -> None:
    net = build_model(TrainConfig(tiny=True, hrnet="resnet18")).eval()
    with torch.no_grad():
        out = net(batch)
    assert out["seg1"].shape == (2, 18, 64, 64)


def test_local_pretrained_weights(tmp_path, batch: dict) -> None:
    ref = build_model(TrainConfig(tiny=True, model="hr_only"))
    path = tmp_path / "hrnet.pth"
    torch.save(ref.backbone.body.state_dict(), path)
    net = build_model(TrainConfig(tiny=True, model="hr_only", pretrained_path=str(path)))
    for (k, a), b in zip(ref.backbone.body.state_dict().items(),
                         net.backbone.body.state_dict().values(), strict=True):
        assert torch.equal(a, b), k
    with pytest.raises(TrainingError, match="does not exist"):
        build_model(TrainConfig(tiny=True, pretrained_path=str(tmp_path / "missing.pth")))
    junk = tmp_path / "junk.pth"
    torch.save({"nothing.here": torch.zeros(1)}, junk)
    with pytest.raises(TrainingError, match="no parameter name matches"):
        build_model(TrainConfig(tiny=True, pretrained_path=str(junk)))


def test_utae_needs_months() -> None:
    with pytest.raises(TrainingError, match="months"):
        build_model(TrainConfig(model="utae", months=0, tiny=True))


def _change_response(fusion: str, batch: dict) -> tuple[float, float, float]:
    """(max |change logits(cube A) - change logits(cube B)|, |grad| of the change loss on the
    U-TAE, on the series' change branch) for one tiny FUSU-Net, same HR inputs."""
    torch.manual_seed(0)
    net = build_model(TrainConfig(tiny=True, change_fusion=fusion)).eval()
    a, b = dict(batch), dict(batch)
    g = torch.Generator().manual_seed(1)
    a["sentinel"] = torch.randn(batch["sentinel"].shape, generator=g)
    b["sentinel"] = torch.randn(batch["sentinel"].shape, generator=g)
    with torch.no_grad():
        delta = (net(a)["change"] - net(b)["change"]).abs().max().item()
    net.zero_grad()
    out = net(a)
    target = (torch.rand(out["change"].shape, generator=g) > 0.5).float()
    torch.nn.functional.binary_cross_entropy_with_logits(out["change"], target).backward()

    def norm(mod: torch.nn.Module) -> float:
        return float(sum(p.grad.abs().sum() for p in mod.parameters() if p.grad is not None))

    branch = norm(net.month_embed) if hasattr(net, "month_embed") else 0.0
    return delta, norm(net.utae), branch


def test_change_head_sees_the_time_series(batch: dict) -> None:
    """'temporal' (default): two different Sentinel cubes give different change logits and the
    change loss trains the U-TAE and the series' change branch."""
    delta, g_utae, g_branch = _change_response("temporal", batch)
    assert delta > 1e-3 and g_utae > 0 and g_branch > 0
    net = build_model(TrainConfig(tiny=True))
    change_ids = {id(p) for p in net.change_parameters()}
    assert {id(p) for p in net.month_embed.parameters()} <= change_ids


def test_paper_fusion_cancels_the_series_in_the_change_head(batch: dict) -> None:
    """'paper' (the paper's and the official code's fusion, kept for the ablation): the same
    fused series is added to both dates, so it cancels in |f1 - f2|."""
    delta, g_utae, g_branch = _change_response("paper", batch)
    assert delta < 1e-5 and g_utae == 0.0 and g_branch == 0.0
    net = build_model(TrainConfig(tiny=True, change_fusion="paper", months=0))
    assert net.change_fusion == "paper"  # HR-only models have nothing to fuse
