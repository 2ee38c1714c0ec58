"""Leakage-free splits (pipeline.dataset.splits): ratios, zero leakage, determinism, per city, bad
input."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import shapely

from pipeline.config import SplitsConfig
from pipeline.dataset.split_report import achieved_ratios, leakage_report, split_summary
from pipeline.dataset.splits import SPLITS, change_subset, make_splits
from pipeline.errors import DatasetError
from tests.splits_helpers import class_l1, lattice


def _run(d: dict, cfg: SplitsConfig, city: str = "c"):
    n = len(d["ids"])
    return make_splits(d["ids"], [city] * n, ["a"] * n, d["patches"], d["fps"], d["hist"], cfg)


def _brute_force_leaks(split: np.ndarray, patches: np.ndarray, fps: np.ndarray) -> int:
    """Pairs (train, held-out) where one's footprint overlaps the other's patch (own check)."""
    tol = 1e-6 * float(np.median(shapely.area(patches)))
    leaks = 0
    train = np.flatnonzero(split == "train")
    held = np.flatnonzero(np.isin(split, ["val", "test"]))
    for i in train:
        a = shapely.area(shapely.intersection(fps[i], patches[held]))
        b = shapely.area(shapely.intersection(fps[held], patches[i]))
        leaks += int(np.count_nonzero(a > tol) + np.count_nonzero(b > tol))
    return leaks


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("block", [2, 4])
def test_block_mode_meets_ratios_without_leakage(seed: int, block: int) -> None:
    d = lattice(seed=seed)  # 180 patches, demo-sized
    assert len(d["ids"]) == 180
    res = _run(d, SplitsConfig(seed=seed, block_size_patches=block))
    ach = achieved_ratios(res.split)
    for s, target in (("train", 0.7), ("val", 0.1), ("test", 0.2)):
        assert abs(ach[s] - target) <= 0.02, (s, ach)
    assert _brute_force_leaks(res.split, d["patches"], d["fps"]) == 0
    rep = leakage_report(res.split, ["c"] * 180, d["patches"], d["fps"], res.info)
    for pair in ("train-val", "train-test"):
        assert rep["overall"][pair]["fp_overlap_frac"] == 0.0
        assert rep["overall"][pair]["patch_in_fp_frac"] == 0.0
        assert rep["overall"][pair]["n_leaking"] == 0
    n_guard = int(np.count_nonzero(res.split == "guard"))
    assert rep["overall"]["guard_patches"] == n_guard == res.counts["c"]["guard"]
    assert 0 < n_guard < 90  # a guard band is needed, but it is not most of the AOI
    assert set(res.split) <= {*SPLITS, "guard"}


def test_block_mode_is_deterministic_under_seed() -> None:
    d = lattice(seed=3)
    a = _run(d, SplitsConfig(seed=7))
    b = _run(d, SplitsConfig(seed=7))
    c = _run(d, SplitsConfig(seed=8))
    assert (a.split == b.split).all()
    assert (a.block == b.block).all()
    assert not (a.split == c.split).all()


def test_random_mode_reproduces_fusu_and_reports_leakage() -> None:
    d = lattice(seed=0)
    res = _run(d, SplitsConfig(mode="random", seed=0))
    counts = {s: int(np.count_nonzero(res.split == s)) for s in SPLITS}
    assert counts == {"train": 126, "val": 18, "test": 36}
    assert "guard" not in set(res.split)
    rep = leakage_report(res.split, ["c"] * 180, d["patches"], d["fps"], res.info)
    # random patches in a 14 x 14 lattice: held-out footprints cover train patches heavily
    assert rep["overall"]["train-test"]["fp_overlap_frac"] > 0.3
    assert rep["overall"]["train-test"]["n_leaking"] > 30
    assert rep["overall"]["guard_patches"] == 0
    assert _brute_force_leaks(res.split, d["patches"], d["fps"]) > 0


def test_block_mode_without_guard_leaks_at_region_borders() -> None:
    d = lattice(seed=0)
    res = _run(d, SplitsConfig(guard=False))
    assert "guard" not in set(res.split)
    assert _brute_force_leaks(res.split, d["patches"], d["fps"]) > 0


@pytest.mark.parametrize("seed", [0, 3])
def test_class_frequencies_are_stratified_better_than_a_blind_split(
    seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With several held-out regions, the stratified greedy balances class frequencies better
    than the same algorithm with its class terms switched off (classes spatially clustered)."""
    import pipeline.dataset.splits as splits_mod

    monkeypatch.setattr(splits_mod, "REGION_PATCHES", 100)  # 30 x 30 patches -> several regions
    d = lattice(seed=seed, nrow=30, ncol=30, drop=0)
    aware = _run(d, SplitsConfig(seed=seed))
    monkeypatch.setattr(splits_mod, "W_CLASS", 0.0)
    monkeypatch.setattr(splits_mod, "W_SELECT_CLASS", 0.0)
    blind = _run(d, SplitsConfig(seed=seed))
    worst = {k: max(class_l1(d["hist"], r.split, s) for s in SPLITS)
             for k, r in (("aware", aware), ("blind", blind))}
    assert worst["aware"] < worst["blind"] - 0.1, worst
    for r in (aware, blind):
        ach = achieved_ratios(r.split)
        assert abs(ach["val"] - 0.1) <= 0.02 and abs(ach["test"] - 0.2) <= 0.02
        assert _brute_force_leaks(r.split, d["patches"], d["fps"]) == 0


def test_leakage_report_known_answer() -> None:
    # unit squares A=[0,1]x[0,1] (train), B=[1,2]x[0,1] (val); footprints 2x2 centred
    patches = np.array([shapely.box(0, 0, 1, 1), shapely.box(1, 0, 2, 1)])
    fps = np.array([shapely.box(-0.5, -0.5, 1.5, 1.5), shapely.box(0.5, -0.5, 2.5, 1.5)])
    split = np.array(["train", "val"], dtype=object)
    rep = leakage_report(split, ["c", "c"], patches, fps)
    tv = rep["overall"]["train-val"]
    assert tv["fp_overlap_frac"] == pytest.approx(0.5 / 4.0)  # B's footprint over A
    assert tv["patch_in_fp_frac"] == pytest.approx(0.5)  # half of B inside A's footprint
    assert tv["n_leaking"] == 1
    assert rep["per_city"]["c"]["train-val"]["n_patches"] == 1
    assert rep["overall"]["train-test"]["fp_overlap_frac"] == 0.0


def test_cities_are_split_separately() -> None:
    a = lattice(seed=0)
    b = lattice(seed=1, nrow=10, ncol=10, drop=0, x0=300000.0)
    ids = np.concatenate([a["ids"], np.char.replace(b["ids"], "demo", "other")])
    cities = ["xian"] * len(a["ids"]) + ["jiaxing"] * len(b["ids"])
    res = make_splits(
        ids, cities, cities,
        np.concatenate([a["patches"], b["patches"]]), np.concatenate([a["fps"], b["fps"]]),
        np.concatenate([a["hist"], b["hist"]]), SplitsConfig(),
    )
    assert set(res.counts) == {"xian", "jiaxing"}
    for city in ("xian", "jiaxing"):
        m = np.asarray(cities) == city
        ach = achieved_ratios(res.split[m])
        assert abs(ach["train"] - 0.7) <= 0.02 and abs(ach["test"] - 0.2) <= 0.02, city
    summ = split_summary(res.split, cities, np.ones(len(ids)))
    for s in SPLITS:
        assert summ["complete"][s] == summ["xian"][s] + summ["jiaxing"][s]
        assert summ["change_detection"][s] == summ["complete"][s]


def test_change_subset_keeps_changed_patches_in_their_split() -> None:
    split = np.array(["train", "val", "test", "guard", "train"], dtype=object)
    out = change_subset(split, np.array([3, 0, 1, 5, 0]))
    assert out.tolist() == ["train", None, "test", None, None]


def test_too_few_patches_for_the_splits_is_an_error_naming_the_aoi() -> None:
    d = lattice(nrow=1, ncol=2, drop=0)
    with pytest.raises(DatasetError, match=r"'tiny'.*2 patch.*3 non-zero splits"):
        make_splits(d["ids"], ["tiny"] * 2, ["tiny-aoi"] * 2, d["patches"], d["fps"], d["hist"],
                    SplitsConfig())


def test_ratios_not_summing_to_one_rejected_in_the_function() -> None:
    d = lattice(nrow=4, ncol=4, drop=0)
    bad = SimpleNamespace(ratios={"train": 0.7, "val": 0.2, "test": 0.2}, mode="block",
                          block_size_patches=2, guard=True, seed=0)
    with pytest.raises(DatasetError, match="sum to 1"):
        _run(d, bad)


def test_zero_ratio_split_stays_empty_and_two_splits_work() -> None:
    d = lattice(seed=0)
    cfg = SplitsConfig(ratios={"train": 0.8, "val": 0.0, "test": 0.2})
    res = _run(d, cfg)
    ach = achieved_ratios(res.split)
    assert ach["val"] == 0.0
    assert abs(ach["train"] - 0.8) <= 0.02
    assert _brute_force_leaks(res.split, d["patches"], d["fps"]) == 0


def test_guard_band_that_eats_a_split_is_an_error() -> None:
    # 3 x 3 patches: every held-out patch conflicts with every train patch
    d = lattice(nrow=3, ncol=3, drop=0)
    with pytest.raises(DatasetError, match="empty after the leakage guard"):
        _run(d, SplitsConfig())
