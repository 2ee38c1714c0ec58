"""Compact samples (stored dtypes) + prepare_batch reproduce the normal FusuDataset batches."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pipeline.errors import DatasetError
from pipeline.io.mosaic_read import read_footprint_cube
from tests.torchds_helpers import make_dataset, s2_dn

torch = pytest.importorskip("torch")

from pipeline.dataset.collate import fusu_collate, is_compact, prepare_batch
from pipeline.dataset.torchds import FusuDataset

# a batch mixing both AOIs (3 and 2 months: time padding) and the nodata pixel of alpha month 0
_PIDS = ("beta_r000_c000", "alpha_r000_c000", "alpha_r001_c001")


pytestmark = pytest.mark.usefixtures("torch_one_thread")


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    r = tmp_path_factory.mktemp("native_compact")
    make_dataset(r)
    return r


def _batch(ds: FusuDataset, pids=_PIDS) -> dict:
    return fusu_collate([ds[ds.patch_ids.index(p)] for p in pids])


def _assert_same(got: dict, want: dict) -> None:
    assert list(got) == list(want)
    for k, w in want.items():
        g = got[k]
        if k == "meta":
            assert g == w
            continue
        assert g.dtype == w.dtype, k
        assert g.shape == w.shape, k
        if w.dtype.is_floating_point:
            torch.testing.assert_close(g, w, rtol=1e-6, atol=1e-6, msg=k)
        else:
            assert torch.equal(g, w), k


def test_raw_cube_matches_decoded(root: Path) -> None:
    store = root / "sentinel" / "alpha.zarr"
    dec = read_footprint_cube(store, 0, 0, 40)
    raw = read_footprint_cube(store, 0, 0, 40, raw=True)
    assert "x" not in raw and raw["s2"].dtype == np.uint16 and raw["s1"].dtype == np.float32
    assert raw["s2"].shape == (3, 12, 40, 40) and raw["s1"].shape == (3, 2, 40, 40)
    # known values of the fixture: DN = 1000 + 100 band + 10 t + x % 7, 65535 at (t0, 0, 0)
    assert raw["s2"][1, 2, 5, 9] == s2_dn(1, 2, np.int64(9))
    assert raw["s2"][0, 0, 0, 0] == 65535
    x = np.where(raw["s2"] == 65535, np.float32(np.nan), raw["s2"] / np.float32(10000))
    np.testing.assert_array_equal(np.concatenate([x, raw["s1"]], axis=1), dec["x"])
    np.testing.assert_array_equal(raw["counts"], dec["counts"])
    assert raw["months"] == dec["months"] and raw["bands"] == dec["bands"]


def test_compact_sample_dtypes(root: Path) -> None:
    s = FusuDataset(root, split=None, compact=True)[0]
    assert s["t1"].dtype == torch.uint8 and s["t1"].shape == (3, 32, 32)
    assert all(s[k].dtype == torch.uint8 and s[k].shape == (32, 32)
               for k in ("label1", "label2", "change"))
    assert s["s2_dn"].dtype == torch.uint16 and s["s2_dn"].shape == (3, 12, 40, 40)
    assert s["s1"].dtype == torch.float32 and s["s1"].shape == (3, 2, 40, 40)
    assert s["counts"].dtype == torch.uint8 and "sentinel" not in s
    assert int(s["s2_dn"][0, 0, 0, 0]) == 65535  # alpha_r000_c000's footprint starts at (0, 0)
    assert is_compact(fusu_collate([s])) and not is_compact(
        fusu_collate([FusuDataset(root, split=None)[0]]))


@pytest.mark.parametrize("normalize", [True, False])
def test_prepare_batch_equals_normal_collate(root: Path, normalize: bool) -> None:
    want = _batch(FusuDataset(root, split=None, normalize=normalize))
    cds = FusuDataset(root, split=None, normalize=normalize, compact=True)
    compact = _batch(cds)
    assert compact["s2_dn"].shape == (3, 3, 12, 40, 40)
    assert int(compact["s2_dn"][0, 2].int().min()) == 65535  # beta padded with no data
    got = prepare_batch(compact, cds.norm_stats, "cpu")
    _assert_same(got, want)
    assert float(got["sentinel"][0, 2].abs().sum()) == 0.0  # padding -> 0 as before
    assert compact["t1"].dtype == torch.uint8  # input untouched


def test_prepare_batch_raw_stats_months_and_hr_size(root: Path) -> None:
    stats = json.loads((root / "stats.json").read_text())
    pids = ("alpha_r000_c000", "alpha_r001_c001")
    want = _batch(FusuDataset(root, split=None, months=2, hr_size=16), pids)
    cds = FusuDataset(root, split=None, compact=True)
    got = prepare_batch(_batch(cds, pids), stats, torch.device("cpu"), months=2, hr_size=16)
    _assert_same(got, want)
    with pytest.raises(DatasetError, match="months"):
        prepare_batch(_batch(cds), stats, "cpu", months=3)  # beta has only 2 months


def test_prepare_batch_passes_normal_batches_through(root: Path) -> None:
    want = _batch(FusuDataset(root, split=None, months=1))
    _assert_same(prepare_batch(want, None, "cpu"), want)


def test_compact_through_dataloader_workers(root: Path) -> None:
    cds = FusuDataset(root, split=None, months=2, compact=True)
    dl = torch.utils.data.DataLoader(cds, batch_size=3, num_workers=2, collate_fn=fusu_collate)
    ref = FusuDataset(root, split=None, months=2)
    for i, batch in enumerate(dl):
        pids = [m["patch_id"] for m in batch["meta"]]
        assert pids == ref.patch_ids[3 * i : 3 * i + 3]
        _assert_same(prepare_batch(batch, cds.norm_stats, "cpu"), _batch(ref, pids))


def test_trainer_same_losses_compact_or_not(root: Path, tmp_path: Path) -> None:
    """Trainer decodes compact batches on its device: identical first-step losses."""
    pytest.importorskip("timm")
    from pipeline.config import TrainConfig
    from pipeline.train.trainer import Trainer

    cfg = TrainConfig(tiny=True, batch_size=2, num_workers=0, max_steps=1, log_every=1,
                      checkpoint_every=1000, eval_every=1000, augment=False, device="cpu")
    losses = []
    for compact in (False, True):
        ds = FusuDataset(root, split=None, months=2, hr_size=64, compact=compact)
        tr = Trainer(cfg, ds, tmp_path / str(compact), fusu_collate, progress=False)
        losses.append(tr.train_step(next(iter(tr._train_loader(0, 0)))))
    assert losses[0] == losses[1]
