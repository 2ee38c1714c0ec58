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
