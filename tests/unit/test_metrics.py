"""Known-answer tests for pipeline.train.metrics (hand-computed values)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pipeline.train import metrics as pm


def test_confusion_matrix_counts_and_ignore() -> None:
    t = np.array([[0, 1, 1], [2, 255, 2]])
    p = np.array([[0, 1, 2], [2, 0, 1]])
    cm = pm.confusion_matrix(t, p, n_classes=3)
    expected = np.array([[1, 0, 0], [0, 1, 1], [0, 1, 1]])
    np.testing.assert_array_equal(cm, expected)
    assert cm.dtype == np.int64
    # mask restricts further
    cm2 = pm.confusion_matrix(t, p, 3, mask=np.array([[1, 1, 0], [0, 1, 0]], bool))
    np.testing.assert_array_equal(cm2, [[1, 0, 0], [0, 1, 0], [0, 0, 0]])


def test_confusion_matrix_rejects_bad_values() -> None:
    with pytest.raises(ValueError, match="outside"):
        pm.confusion_matrix(np.array([0, 5]), np.array([0, 1]), n_classes=3)
    with pytest.raises(ValueError, match="same shape"):
        pm.confusion_matrix(np.array([0, 1]), np.array([0]), n_classes=3)


def test_iou_and_miou_foreground_only() -> None:
    # 3 classes: 0 background, 1, 2
    cm = np.array([[5, 1, 0], [2, 3, 1], [0, 0, 0]])
    iou = pm.iou_per_class(cm)
    assert iou[0] == pytest.approx(5 / (5 + 2 + 1))
    assert iou[1] == pytest.approx(3 / (3 + 1 + 3))
    assert iou[2] == pytest.approx(0 / 1)  # predicted once, never true -> 0
    assert pm.mean_iou(cm, classes=(1, 2)) == pytest.approx((3 / 7 + 0) / 2)
    # a class never present nor predicted is excluded (NaN), not counted as 0
    cm3 = np.array([[5, 1, 0], [2, 3, 0], [0, 0, 0]])
    assert math.isnan(pm.iou_per_class(cm3)[2])
    assert pm.mean_iou(cm3, classes=(1, 2)) == pytest.approx(3 / 6)


def test_global_accumulation_differs_from_mean_of_patches() -> None:
    # patch A: class 1 perfect (1 px); patch B: class 1 with 1 TP, 3 FN -> global 2/5
    a = pm.confusion_matrix(np.array([1]), np.array([1]), 2)
    b = pm.confusion_matrix(np.array([1, 1, 1, 1]), np.array([1, 0, 0, 0]), 2)
    assert pm.iou_per_class(a + b)[1] == pytest.approx(2 / 5)


def test_binary_scores() -> None:
    t = np.array([1, 1, 1, 0, 0, 0, 255])
    p = np.array([1, 1, 0, 1, 0, 0, 1])
    s = pm.binary_scores(pm.confusion_matrix(t, p, 2))
    # tp=2 fn=1 fp=1 tn=2
    assert s["iou"] == pytest.approx(2 / 4)
    assert s["precision"] == pytest.approx(2 / 3)
    assert s["recall"] == pytest.approx(2 / 3)
    assert s["f1"] == pytest.approx(4 / 6)
    assert s["oa"] == pytest.approx(4 / 6)
    empty = pm.binary_scores(np.zeros((2, 2), np.int64))
    assert math.isnan(empty["iou"])


def test_scs_known_answer() -> None:
    # GT: 4 px, T2 labels; changed pixels 0..2
    label2 = np.array([1, 2, 2, 3])
    change = np.array([1, 1, 1, 0])
    pred2 = np.array([1, 2, 1, 3])
    pred_change = np.array([1, 0, 1, 1])
    mt = pm.ChangeSegMetrics(n_classes=4)
    mt.update(label2, label2, change, None, pred2, pred_change)
    out = mt.compute()
    # BC: tp=2 (px0, px2), fn=1 (px1), fp=1 (px3) -> 2/4
    assert out["bc"] == pytest.approx(0.5)
    # SC on changed px {0,1,2}: class1: tp1 fp1 (px2) -> 1/2 ; class2: tp1 fn1 -> 1/2
    # class 3 is not among GT-changed pixels -> excluded from the mean
    assert out["sc"] == pytest.approx(0.5)
    assert out["scs"] == pytest.approx(0.5)
    direct = pm.scs_score(mt.change, mt.sc)
    assert direct["scs"] == pytest.approx(0.5)


def test_semantic_change_miou_known_answer() -> None:
    n = 4
    label1 = np.array([[1, 1, 2, 255]])
    label2 = np.array([[1, 3, 3, 2]])
    change = np.array([[0, 1, 1, 255]])
    pred1 = np.array([[1, 1, 1, 0]])
    pred2 = np.array([[1, 3, 3, 0]])
    pred_change = np.array([[0, 1, 0, 1]])
    mt = pm.ChangeSegMetrics(n_classes=n)
    mt.update(label1, label2, change, pred1, pred2, pred_change)
    # masked GT  d1: [0,1,2,ign] d2: [0,3,3,ign]; masked pred d1: [0,1,0,-] d2: [0,3,0,-]
    np.testing.assert_array_equal(
        mt.scd,
        [[2, 0, 0, 0], [0, 1, 0, 0], [1, 0, 0, 0], [1, 0, 0, 1]],
    )
    out = mt.compute()
    # class1 IoU 1, class2 IoU 0, class3 IoU 1/2 -> mean over present foreground
    assert out["scd_iou_per_class"][1] == pytest.approx(1.0)
    assert out["scd_iou_per_class"][2] == pytest.approx(0.0)
    assert out["scd_iou_per_class"][3] == pytest.approx(0.5)
    assert out["scd_miou"] == pytest.approx(0.5)
    assert out["scd_iou_nochange"] == pytest.approx(2 / 4)
    # segmentation over both dates, 7 valid px (label1 has one 255)
    assert mt.seg.sum() == 7
    assert out["seg_miou"] == pytest.approx(pm.mean_iou(mt.seg, classes=(1, 2, 3)))
    # binary change: tp1 fn1 fp0 (px3 is ignored)
    assert out["change_iou"] == pytest.approx(0.5)


def test_den_protocol_change_is_p1_differs_from_p2() -> None:
    """bc_den scores change derived from the segmentations (DynamicEarthNet's evaluator),
    independent of the change head's prediction."""
    from pipeline.train.metrics import ChangeSegMetrics

    lab1 = np.array([[1, 1, 2, 2]])
    lab2 = np.array([[1, 3, 2, 4]])
    change = np.array([[0, 1, 0, 1]])
    p1 = np.array([[1, 1, 2, 2]])
    p2 = np.array([[1, 3, 2, 2]])  # finds the first change only
    head = np.zeros_like(change)  # a change head that sees nothing
    acc = ChangeSegMetrics()
    acc.update(lab1, lab2, change, p1, p2, head)
    out = acc.compute()
    assert out["bc"] == 0.0  # the head: IoU of change 0
    assert out["bc_den"] == pytest.approx(0.5)  # p1 != p2: 1 of the 2 changed pixels
    assert out["pixels"] == {"seg": 8, "change": 4, "changed": 2, "den": 4}


def test_den_scs_known_answer() -> None:
    """DynamicEarthNet's SCS on one 3-month cube, counted by hand: consecutive-month change,
    BC over every pair, SC on the ground-truth change pixels of month t+1."""
    from pipeline.train.metrics import den_scs

    gt = np.array([[[0, 0, 1, 1]], [[0, 2, 1, 1]], [[0, 2, 1, 3]]])  # (T=3, 1, 4)
    pr = np.array([[[0, 0, 1, 1]], [[0, 2, 2, 1]], [[0, 2, 2, 3]]])
    out = den_scs([gt], [pr])
    # pairs (0,1): gt change at px1, pred change at px1, px2; (1,2): gt px3, pred px3
    # BC: tp = 2, fp = 1, fn = 0 -> 2/3
    assert out["bc"] == pytest.approx(2 / 3)
    # SC: changed gt pixels: (pair 1, px1) gt 2 pred 2; (pair 2, px3) gt 3 pred 3 -> IoU 1, 1
    assert out["sc"] == pytest.approx(1.0) and out["scs"] == pytest.approx(5 / 6)
    ignored = gt.copy()
    ignored[2, 0, 3] = 255  # an ignored label is still a change, but no SC row
    out2 = den_scs([ignored], [pr])
    assert out2["bc"] == pytest.approx(2 / 3) and out2["sc"] == pytest.approx(1.0)


def _official_iou_and_sek():  # type: ignore[no-untyped-def]
    """The official FUSU code's metric class (tests/vendor/fusu_official/utils/metric.py)."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "vendor" / "fusu_official" / "utils" / "metric.py"
    spec = importlib.util.spec_from_file_location("fusu_official_metric", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.IOUandSek


def test_sek_scores_equal_the_official_fusu_metric() -> None:
    """sek_scores on a confusion matrix equals the official code's IOUandSek fed the same maps
    (its add_batch / evaluate), for random semantic change maps with ignored pixels."""
    from pipeline.train.metrics import confusion_matrix, sek_scores

    official_cls = _official_iou_and_sek()
    rng = np.random.default_rng(3)
    for trial in range(5):
        gt = rng.integers(0, 18, (3, 32, 32))
        gt[rng.random(gt.shape) < 0.5] = 0  # plenty of "no change"
        pred = np.where(rng.random(gt.shape) < 0.7, gt, rng.integers(0, 18, gt.shape))
        ref = official_cls(num_classes=18)
        ref.add_batch(pred, gt)
        want = ref.evaluate()
        got = sek_scores(confusion_matrix(gt, pred, 18))
        assert (got["score"], got["miou"], got["sek"]) == pytest.approx(want, abs=1e-12), trial


def test_sek_scores_known_answer() -> None:
    """A 3-class matrix worked by hand: binary [[5, 1], [2, 4+1+1+3=9]] -> IoU 5/8, 9/12;
    kappa of [[0,1,0],[1,4,1],[1,1,3]]: po 7/12, pe (1*2 + 6*6 + 5*4)/144 = 58/144."""
    import math

    from pipeline.train.metrics import sek_scores

    cm = np.array([[5, 1, 0], [1, 4, 1], [1, 1, 3]])
    out = sek_scores(cm)
    miou = 0.5 * (5 / 8 + 9 / 12)
    po, pe = 7 / 12, 58 / 144
    sek = (po - pe) / (1 - pe) * math.exp(9 / 12 - 1)
    assert out["miou"] == pytest.approx(miou) and out["sek"] == pytest.approx(sek)
    assert out["score"] == pytest.approx(0.5 * miou + 0.5 * sek)


def test_evaluation_reports_the_official_scores_beside_the_projects() -> None:
    from pipeline.train.metrics import ChangeSegMetrics, sek_scores

    rng = np.random.default_rng(5)
    l1 = rng.integers(1, 18, (2, 16, 16))
    l2 = np.where(rng.random(l1.shape) < 0.3, rng.integers(1, 18, l1.shape), l1)
    change = (l1 != l2).astype(np.int64)
    p1 = np.where(rng.random(l1.shape) < 0.8, l1, 0)
    p2 = np.where(rng.random(l1.shape) < 0.8, l2, 0)
    pc = np.where(rng.random(l1.shape) < 0.9, change, 1 - change)
    m = ChangeSegMetrics()
    m.update(l1, l2, change, p1, p2, pc)
    out = m.compute()
    assert out["second"] == sek_scores(m.scd) and out["fusu_official_val"] == sek_scores(m.seg)
    assert 0.0 < out["second"]["score"] < 1.0 and "scd_miou" in out
