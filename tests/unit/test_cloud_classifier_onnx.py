"""s2cloudless' model evaluated with ONNX Runtime (pipeline.sentinel.cloud_probability) gives
LightGBM's probabilities bit for bit: on the real L1C chip of the s2cloudless 1.1.0 sdist, on
every split value of the model and its two float64 neighbours (where float32 thresholds or
``<`` instead of ``<=`` would differ), whatever the threads and chunks; a trained model with a
constant tree and a sigmoid coefficient other than 1 too. Models outside the translation are
refused, and the build-time probe check refuses a translation that scores differently."""

from __future__ import annotations

import re

import numpy as np
import pytest

from pipeline.errors import SourceError
from pipeline.io.scenes import L1C_FILE_BANDS
from pipeline.sentinel import cloud_probability as cp
from pipeline.sentinel.cloud_probability import S2CLOUDLESS_BANDS, CloudDetector


@pytest.fixture(scope="module")
def booster() -> object:
    from s2cloudless import S2PixelCloudDetector

    return S2PixelCloudDetector(all_bands=False).classifier.classifier


@pytest.fixture(scope="module")
def chip_rows() -> np.ndarray:
    """(438272, 10) float32 rows of the real chip, in S2CLOUDLESS_BANDS order."""
    from benchmarks.cloud_mask import reference_chip

    try:
        npz = reference_chip()
    except SystemExit as exc:  # offline: the sdist cannot be downloaded
        pytest.skip(str(exc))
    im = np.load(npz)["s2_im"][0]
    idx = [L1C_FILE_BANDS.index(b) for b in S2CLOUDLESS_BANDS]
    return np.ascontiguousarray(im[..., idx].reshape(-1, len(idx)))


def test_the_real_chip_gets_lightgbms_probabilities_bit_for_bit(
    booster: object, chip_rows: np.ndarray
) -> None:
    from s2cloudless import S2PixelCloudDetector

    ours = CloudDetector().predict(chip_rows)
    theirs = booster.predict(chip_rows)  # type: ignore[attr-defined]
    assert ours.dtype == np.float64 and ours.shape == (len(chip_rows),)
    assert np.array_equal(ours, theirs), int((ours != theirs).sum())
    # and what the pipeline caches (float32) is what s2cloudless itself returns
    package = S2PixelCloudDetector(all_bands=False).get_cloud_probability_maps(
        chip_rows[None, :, None, :])[0, :, 0]
    assert np.array_equal(ours.astype(np.float32), package)
    assert 0.2 < float(np.mean(ours > 0.4)) < 0.8  # a chip with clouds and clear land


def test_every_split_value_and_its_neighbours_score_as_lightgbm(
    booster: object, chip_rows: np.ndarray
) -> None:
    model = cp.parse_lightgbm_text(booster.model_to_string())  # type: ignore[attr-defined]
    assert len(model.roots) == 170 and model.n_features == 10 and model.sigmoid == 1.0
    rows = cp.probe_rows(model, chip_rows[::97], len(model.split))
    assert len(rows) == 3 * len(model.split)
    ours = CloudDetector().predict(rows)
    theirs = booster.predict(rows)  # type: ignore[attr-defined]
    assert np.array_equal(ours, theirs), int((ours != theirs).sum())


def test_results_do_not_depend_on_threads_or_chunks(
    chip_rows: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = chip_rows[:: 50]
    whole = CloudDetector(threads=1).predict(rows)
    monkeypatch.setattr(cp, "ROWS_PER_CALL", 997)
    for threads in (1, 2, 3):
        assert np.array_equal(CloudDetector(threads=threads).predict(rows), whole)
    assert CloudDetector().predict(rows[:0]).shape == (0,)


def test_similar_rows_are_evaluated_together_and_results_come_back_in_order(
    booster: object, chip_rows: np.ndarray
) -> None:
    model = cp.parse_lightgbm_text(booster.model_to_string())  # type: ignore[attr-defined]
    priority = cp.split_priority(model)
    counts = np.bincount(model.feature, minlength=10)
    assert sorted(priority.tolist()) == list(range(10))
    assert (np.diff(counts[priority]) <= 0).all()  # most split-on first
    rows = chip_rows[::7]
    order = cp.similar_first(rows, priority)
    assert sorted(order.tolist()) == list(range(len(rows)))  # a permutation
    ordered = rows[order].astype(np.float64)[:, priority]
    bins = np.clip(np.floor(ordered / cp.SORT_BIN), 0, 2**cp.SORT_BITS - 1)
    # consecutive rows share their first feature's bin except at the few bin changes
    assert (np.diff(bins[:, 0]) >= 0).all()
    assert (np.abs(np.diff(bins, axis=0)).sum(axis=1) == 0).mean() > 0.5
    # rows in any order: each row's own result, in its place
    shuffled = np.random.default_rng(0).permutation(len(rows))
    det = CloudDetector(threads=2)
    assert np.array_equal(det.predict(rows[shuffled]), det.predict(rows)[shuffled])


def _tiny_model_text(sigmoid: float) -> str:
    """A LightGBM binary model trained here (5 features, 6 trees), its second tree replaced by
    a constant one (what LightGBM writes when a tree finds no split)."""
    import lightgbm as lgb

    rng = np.random.default_rng(3)
    x = rng.uniform(0, 1, (400, 5))
    y = (x[:, 0] + 0.5 * x[:, 3] + rng.normal(0, 0.1, 400) > 0.8).astype(int)
    params = {"objective": "binary", "sigmoid": sigmoid, "num_leaves": 7, "verbose": -1,
              "min_data_in_leaf": 5, "seed": 1}
    text = lgb.train(params, lgb.Dataset(x, y), num_boost_round=6).model_to_string()
    constant = ("Tree=1\nnum_leaves=1\nnum_cat=0\nsplit_feature=\nsplit_gain=\nthreshold=\n"
                "decision_type=\nleft_child=\nright_child=\nleaf_value=0.0625\n"
                "leaf_weight=\nleaf_count=\ninternal_value=\ninternal_weight=\n"
                "internal_count=\nis_linear=0\nshrinkage=1\n\n\n")
    text = re.sub(r"Tree=1\n.*?\n\n\n", constant, text, count=1, flags=re.S)
    return re.sub(r"tree_sizes=.*\n", "", text)  # sizes no longer match: parsed in order


@pytest.mark.parametrize("sigmoid", [1.0, 0.7])
def test_a_trained_model_with_a_constant_tree(sigmoid: float) -> None:
    import lightgbm as lgb

    text = _tiny_model_text(sigmoid)
    b = lgb.Booster(model_str=text)
    model = cp.parse_lightgbm_text(text)
    assert model.sigmoid == sigmoid and len(model.roots) == 6
    x = np.random.default_rng(4).uniform(0, 1, (5000, 5))
    x = np.concatenate([x, cp.probe_rows(model, x, len(model.split))])
    ours = CloudDetector(booster=b).predict(x)
    assert np.array_equal(ours, b.predict(x))
    raw = b.predict(x, raw_score=True)
    assert np.ptp(raw) > 1.0  # the trees do split the rows


@pytest.mark.parametrize(("edit", "why"), [
    (lambda t: t.replace("objective=binary sigmoid:1", "objective=regression"), "objective"),
    (lambda t: t.replace("num_tree_per_iteration=1", "num_tree_per_iteration=3"),
     "several outputs"),
    (lambda t: re.sub(r"decision_type=2 ", "decision_type=10 ", t, count=1),
     "handles missing values"),
    (lambda t: re.sub(r"decision_type=2 ", "decision_type=3 ", t, count=1), "categorical"),
    (lambda t: re.sub(r"is_linear=0", "is_linear=1", t, count=1), "linear"),
])
def test_models_outside_the_translation_are_refused(booster: object, edit, why: str) -> None:
    text = edit(booster.model_to_string())  # type: ignore[attr-defined]
    with pytest.raises(SourceError, match=why) as err:
        cp.parse_lightgbm_text(text, "model X")
    assert "model X" in str(err.value) and "s2cloudless version" in str(err.value)


def _translate_with_float32_splits(monkeypatch: pytest.MonkeyPatch) -> None:
    """lightgbm_to_onnx as onnxmltools' converter writes it: float32 split values."""
    import dataclasses

    translate = cp.lightgbm_to_onnx
    monkeypatch.setattr(cp, "lightgbm_to_onnx", lambda model: translate(dataclasses.replace(
        model, split=model.split.astype(np.float32).astype(np.float64))))


def test_the_probe_check_refuses_float32_thresholds(monkeypatch: pytest.MonkeyPatch) -> None:
    """What onnxmltools' LightGBM converter writes (float32 split values): the check at build
    time sees rows that score differently and stops the job instead of changing masks."""
    _translate_with_float32_splits(monkeypatch)
    with pytest.raises(SourceError, match=r"probe rows differently from LightGBM"):
        CloudDetector().predict(np.full((4, 10), 0.2))


def test_warm_up_builds_in_the_background_and_a_failure_reaches_predict(
    booster: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading
    import time

    rows = np.random.default_rng(5).uniform(0, 0.6, (2000, 10))
    started: list[str] = []

    class Counted(threading.Thread):
        def __init__(self, *args: object, **kw: object) -> None:
            super().__init__(*args, **kw)  # type: ignore[arg-type]
            if self.name == "s2cloudless-warm-up":
                time.sleep(0.02)  # widen the window between "none yet?" and "started"

        def start(self) -> None:
            started.append(self.name)
            super().start()

    monkeypatch.setattr(cp.threading, "Thread", Counted)
    det = CloudDetector()
    askers = [Counted(target=det.warm_up) for _ in range(8)]  # blocks asking at once
    for t in askers:
        t.start()
    for t in askers:
        t.join()
    first = det._warming
    assert first is not None and started.count("s2cloudless-warm-up") == 1
    first.join()
    assert det._session is not None
    assert np.array_equal(det.predict(rows), booster.predict(rows))  # type: ignore[attr-defined]
    det.close()

    _translate_with_float32_splits(monkeypatch)
    bad = CloudDetector()
    bad.warm_up()
    assert bad._warming is not None
    bad._warming.join()  # failed quietly in the background ...
    with pytest.raises(SourceError, match="probe rows differently"):
        bad.predict(rows)  # ... and the prediction says why
