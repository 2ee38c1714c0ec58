"""Segmentation and change-detection metrics (pure numpy, no torch).

All scores are computed from confusion matrices accumulated over the **whole** evaluation set
(global, not a mean of per-patch scores), as FUSU and DynamicEarthNet do.

Conventions (FUSU class schema: 0 = background, 1..17 land-use classes, 255 = no data):

* Confusion matrices have rows = ground truth, columns = prediction, dtype int64.
  Pixels whose ground truth is ``ignore_index`` (255) are skipped.
* **Segmentation mIoU** (FUSU Tables 3/4): per-class IoU ``TP / (TP + FP + FN)``; the mean is
  over the 17 land-use classes 1..17 (``FOREGROUND``). Background (0) is a normal class in the
  confusion matrix (predicting background on a class-c pixel is a false negative of c) but is
  **not** part of the mean, following the paper's "mIoU across all 17 land use classes".
  A class whose union is empty in the whole set (absent from ground truth and never
  predicted) has IoU NaN and is excluded from the mean.
* **Binary change** (FUSU Table 6): IoU of the changed class, plus F1, precision, recall,
  overall accuracy, from a 2x2 matrix; change ground truth 255 is ignored.
* **Semantic change mIoU** (FUSU Table 5, "IoU per class and mIoU over all 17 land use
  classes" for semantic change detection). The paper does not spell the formula out; we use the
  SECOND / Bi-SRNet convention its SCD baselines come from: each date's semantic map is masked
  by change (ground truth: class where the GT change is 1, else 0 = "no change"; prediction:
  predicted class where predicted change is 1, else 0), both dates are accumulated into one
  18x18 matrix (from-class and to-class), and per-class IoU / mIoU are reported over the 17
  land-use classes 1..17 (class 0 here means "unchanged" and is reported separately as
  ``iou_nochange``). Pixels with GT change 255 or GT label 255 are ignored.
* **SCS** (DynamicEarthNet, Eq. 2-5): ``SCS = (BC + SC) / 2``. BC = IoU of the changed class
  (binary change matrix over the whole set). SC = mIoU of the **later** date's (T2) semantic
  prediction restricted to pixels whose ground truth changed; as in the official DEN evaluator
  the mean runs over the classes **present in the ground truth of the changed pixels**
  (``TP + FN > 0``); classes absent from the changed pixels are excluded from the mean. Both
  matrices are accumulated over the whole set before scoring.

* **SECOND score / SeK** (:func:`sek_scores`): exactly the official FUSU code's
  ``utils/metric.py`` (``IOUandSek``): reported on the change-masked matrix (``second``, the
  SECOND / Bi-SRNet protocol) and on the plain segmentation matrix (``fusu_official_val``,
  what the official ``train.py`` validation feeds it). The official code's ``label_bin`` is
  1 = changed (its loss weights ``mask_bin == 1`` by 2; a commented-out variant built 1 where
  the T1 class is 0); the export writes 1 = changed.

Scores are fractions in [0, 1] (multiply by 100 for the papers' percentages).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

N_CLASSES = 18
IGNORE_INDEX = 255
FOREGROUND: tuple[int, ...] = tuple(range(1, N_CLASSES))


def confusion_matrix(
    target: np.ndarray,
    pred: np.ndarray,
    n_classes: int = N_CLASSES,
    ignore_index: int = IGNORE_INDEX,
    mask: np.ndarray | None = None,
) -> np.ndarray:
    """Confusion matrix of one array pair.

    Args:
        target: ground truth, any integer shape; ``ignore_index`` pixels are skipped.
        pred: prediction, same shape, values in ``[0, n_classes)``.
        n_classes: number of classes.
        ignore_index: ground-truth value to skip.
        mask: optional bool array of the same shape; only True pixels are counted.

    Returns:
        ``(n_classes, n_classes)`` int64, rows = ground truth, columns = prediction.

    Raises:
        ValueError: shapes differ, or a valid pixel holds a value outside ``[0, n_classes)``.
    """
    t = np.asarray(target).astype(np.int64, copy=False).ravel()
    p = np.asarray(pred).astype(np.int64, copy=False).ravel()
    if t.shape != p.shape:
        raise ValueError(
            f"confusion_matrix: target has {t.size} pixels, prediction {p.size}; pass arrays "
            "of the same shape"
        )
    keep = t != ignore_index
    if mask is not None:
        keep &= np.asarray(mask, dtype=bool).ravel()
    t, p = t[keep], p[keep]
    if t.size and (t.min() < 0 or t.max() >= n_classes or p.min() < 0 or p.max() >= n_classes):
        raise ValueError(
            f"confusion_matrix: values outside [0, {n_classes}) in target or prediction "
            f"(target {t.min()}..{t.max()}, pred {p.min()}..{p.max()}); check n_classes and "
            "the ignore value"
        )
    return np.bincount(t * n_classes + p, minlength=n_classes * n_classes).reshape(
        n_classes, n_classes
    )


def iou_per_class(cm: np.ndarray) -> np.ndarray:
    """Per-class IoU ``TP / (TP + FP + FN)`` from a confusion matrix.

    Returns:
        float64 ``(n,)``; NaN where the class's union is empty (absent and never predicted).
    """
    cm = np.asarray(cm, dtype=np.float64)
    tp = np.diag(cm)
    union = cm.sum(0) + cm.sum(1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, tp / np.where(union > 0, union, 1), np.nan)


def mean_iou(cm: np.ndarray, classes: tuple[int, ...] | None = None) -> float:
    """Mean IoU over ``classes``, skipping classes with an empty union.

    ``classes=None`` means the foreground classes ``1..n-1`` (1..17 for FUSU: background 0 is
    excluded from the mean). Returns NaN if every selected class has an empty union.
    """
    iou = iou_per_class(cm)
    sel = iou[1:] if classes is None else iou[list(classes)]
    sel = sel[~np.isnan(sel)]
    return float(sel.mean()) if sel.size else float("nan")


def overall_accuracy(cm: np.ndarray) -> float:
    """Fraction of counted pixels on the diagonal (NaN for an empty matrix)."""
    total = cm.sum()
    return float(np.trace(cm) / total) if total else float("nan")


def binary_scores(cm2: np.ndarray) -> dict[str, float]:
    """IoU, F1, precision, recall of the positive (changed) class and OA from a 2x2 matrix.

    Undefined ratios (0 / 0) are NaN.
    """
    cm2 = np.asarray(cm2, dtype=np.float64)
    if cm2.shape != (2, 2):
        raise ValueError(f"binary_scores expects a 2x2 confusion matrix, got {cm2.shape}")
    tp, fn, fp = cm2[1, 1], cm2[1, 0], cm2[0, 1]

    def ratio(a: float, b: float) -> float:
        return float(a / b) if b > 0 else float("nan")

    precision = ratio(tp, tp + fp)
    recall = ratio(tp, tp + fn)
    return {
        "iou": ratio(tp, tp + fp + fn),
        "f1": ratio(2 * tp, 2 * tp + fp + fn),
        "precision": precision,
        "recall": recall,
        "oa": overall_accuracy(cm2),
    }


def semantic_change_maps(
    label: np.ndarray, change: np.ndarray, ignore_index: int = IGNORE_INDEX
) -> np.ndarray:
    """Change-masked semantic map: ``label`` where ``change == 1``, 0 where 0, ignore elsewhere.

    Args:
        label: int class map 0..17 (255 = no data).
        change: int/bool map 0/1 (255 = ignored).
    """
    out = np.where(np.asarray(change) == 1, label, 0).astype(np.int64)
    out[(np.asarray(change) == ignore_index) | (np.asarray(label) == ignore_index)] = ignore_index
    return out


def sc_class_mean(cm: np.ndarray) -> float:
    """DEN's SC average: mean IoU over classes present in the ground truth (TP + FN > 0)."""
    iou = iou_per_class(cm)
    present = np.asarray(cm).sum(1) > 0
    vals = np.nan_to_num(iou[present], nan=0.0)
    return float(vals.mean()) if vals.size else float("nan")


@dataclass
class ChangeSegMetrics:
    """Accumulates every metric of the training stage over a whole evaluation set.

    Call :meth:`update` once per batch with numpy arrays of shape ``(B, H, W)``:
    ground-truth ``label1``, ``label2`` (0..17, 255 = no data), ``change`` (0/1, 255 = ignored)
    and predictions ``pred1``, ``pred2`` (0..17) and ``pred_change`` (0/1). Any prediction may
    be None (that model has no such output): its metrics are then left out.
    """

    n_classes: int = N_CLASSES
    seg: np.ndarray = field(init=False)
    change: np.ndarray = field(init=False)
    scd: np.ndarray = field(init=False)
    sc: np.ndarray = field(init=False)
    change_den: np.ndarray = field(init=False)
    has_seg: bool = field(init=False, default=False)
    has_change: bool = field(init=False, default=False)

    def __post_init__(self) -> None:
        n = self.n_classes
        self.seg = np.zeros((n, n), np.int64)
        self.change = np.zeros((2, 2), np.int64)
        self.scd = np.zeros((n, n), np.int64)
        self.sc = np.zeros((n, n), np.int64)
        self.change_den = np.zeros((2, 2), np.int64)

    def update(
        self,
        label1: np.ndarray,
        label2: np.ndarray,
        change: np.ndarray,
        pred1: np.ndarray | None,
        pred2: np.ndarray | None,
        pred_change: np.ndarray | None,
    ) -> None:
        n = self.n_classes
        for lab, pred in ((label1, pred1), (label2, pred2)):
            if pred is not None:
                self.seg += confusion_matrix(lab, pred, n)
                self.has_seg = True
        if pred_change is not None:
            pc = np.asarray(pred_change).astype(np.int64)
            self.change += confusion_matrix(change, pc, 2)
            self.has_change = True
            if pred1 is not None and pred2 is not None:
                for lab, pred in ((label1, pred1), (label2, pred2)):
                    gt_sem = semantic_change_maps(lab, change)
                    pr_sem = np.where(pc == 1, pred, 0)
                    self.scd += confusion_matrix(gt_sem, pr_sem, n)
        if pred1 is not None and pred2 is not None:
            # DynamicEarthNet's protocol: change = the two segmentations disagree
            den = (np.asarray(pred1) != np.asarray(pred2)).astype(np.int64)
            self.change_den += confusion_matrix(change, den, 2)
        if pred2 is not None:
            changed = np.asarray(change) == 1
            self.sc += confusion_matrix(label2, pred2, n, mask=changed)

    def reduce(self, all_sum: Any) -> ChangeSegMetrics:
        """The metrics over every DDP rank: ``all_sum(array) -> array`` sums across ranks
        (:meth:`pipeline.train.distributed.Dist.all_sum`); confusion matrices add up, so
        the scores equal those of one process over the whole set."""
        n = self.n_classes
        flat = np.concatenate([self.seg.ravel(), self.change.ravel(), self.scd.ravel(),
                               self.sc.ravel(), self.change_den.ravel(),
                               [int(self.has_seg), int(self.has_change)]]).astype(np.int64)
        tot = np.asarray(all_sum(flat), np.int64)
        out = ChangeSegMetrics(n)
        sizes = [n * n, 4, n * n, n * n, 4]
        parts = np.split(tot[:-2], np.cumsum(sizes)[:-1])
        out.seg, out.change = parts[0].reshape(n, n), parts[1].reshape(2, 2)
        out.scd, out.sc = parts[2].reshape(n, n), parts[3].reshape(n, n)
        out.change_den = parts[4].reshape(2, 2)
        out.has_seg, out.has_change = bool(tot[-2]), bool(tot[-1])
        return out

    def compute(self) -> dict[str, Any]:
        """All scores as a JSON-ready dict (fractions; NaN for undefined)."""
        out: dict[str, Any] = {}
        if self.has_seg:
            iou = iou_per_class(self.seg)
            out["seg_miou"] = mean_iou(self.seg)
            out["seg_iou_per_class"] = {c: _f(iou[c]) for c in range(1, self.n_classes)}
            out["seg_iou_background"] = _f(iou[0])
            out["seg_oa"] = overall_accuracy(self.seg)
            # what the official FUSU train.py validation reports: IOUandSek on the two dates'
            # plain segmentation maps, background (0) playing "no change"
            out["fusu_official_val"] = sek_scores(self.seg)
        if self.has_change:
            bc = binary_scores(self.change)
            out.update({f"change_{k}": v for k, v in bc.items()})
            if self.scd.any():
                iou = iou_per_class(self.scd)
                # the SECOND-lineage score / SeK of the official code, on the change-masked maps
                out["second"] = sek_scores(self.scd)
                out["scd_miou"] = mean_iou(self.scd)
                out["scd_iou_per_class"] = {c: _f(iou[c]) for c in range(1, self.n_classes)}
                out["scd_iou_nochange"] = _f(iou[0])
            sc = sc_class_mean(self.sc)
            out["bc"] = bc["iou"]
            out["sc"] = sc
            out["scs"] = 0.5 * (bc["iou"] + sc)
        if self.change_den.any():
            # BC / SCS with change derived as p1 != p2 (the DEN evaluator), beside the
            # change-head BC above
            bc_den = binary_scores(self.change_den)["iou"]
            out["bc_den"] = bc_den
            out["scs_den"] = 0.5 * (bc_den + sc_class_mean(self.sc))
        out["pixels"] = {"seg": int(self.seg.sum()), "change": int(self.change.sum()),
                         "changed": int(self.change[1].sum()),
                         "den": int(self.change_den.sum())}
        return out

    def matrices(self) -> dict[str, np.ndarray]:
        """The accumulated confusion matrices (rows = ground truth)."""
        return {"seg": self.seg, "change": self.change, "scd": self.scd, "sc": self.sc,
                "change_den": self.change_den}


def sek_scores(cm: np.ndarray) -> dict[str, float]:
    """The SECOND-lineage score as the official FUSU code computes it (its
    ``utils/metric.py``: ``IOUandSek.evaluate``, reimplemented on a confusion matrix).

    Args:
        cm: (n, n) int confusion matrix, rows = ground truth, columns = prediction, class 0 =
            "no change" (the change-masked maps of :meth:`ChangeSegMetrics.update`'s ``scd``,
            as SECOND / Bi-SRNet build them; or the plain two-date segmentation matrix, which
            is what the official FUSU ``train.py`` validation feeds it, with background as 0).

    Returns:
        ``{"score", "miou", "sek"}``: ``miou`` = mean IoU of the binary no-change / change
        split (class 0 vs the rest), ``sek`` = Cohen's kappa of the matrix without its (0, 0)
        cell, times ``exp(IoU_change - 1)``; ``score = 0.5 * miou + 0.5 * sek``. Fractions.
    """
    h = np.asarray(cm, dtype=np.float64)
    bin_cm = np.array([[h[0, 0], h.sum(1)[0] - h[0, 0]],
                       [h.sum(0)[0] - h[0, 0], h[1:, 1:].sum()]])
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.diag(bin_cm) / (bin_cm.sum(0) + bin_cm.sum(1) - np.diag(bin_cm))
    miou = float(np.mean(iou))
    h2 = h.copy()
    h2[0, 0] = 0
    total = h2.sum()
    if total == 0:
        kappa = 0.0
    else:
        po = np.diag(h2).sum() / total
        pe = float(np.matmul(h2.sum(1), h2.sum(0).T)) / total**2
        kappa = 0.0 if pe == 1 else float((po - pe) / (1 - pe))
    sek = kappa * math.exp(float(iou[1]) - 1)
    return {"score": 0.5 * miou + 0.5 * sek, "miou": miou, "sek": sek}


def _f(x: float) -> float | None:
    """NaN -> None for JSON."""
    return None if np.isnan(x) else float(x)


def scs_score(change_cm: np.ndarray, sc_cm: np.ndarray) -> dict[str, float]:
    """DynamicEarthNet's SCS from a global 2x2 change matrix and a changed-pixel class matrix."""
    bc = binary_scores(change_cm)["iou"]
    sc = sc_class_mean(sc_cm)
    return {"bc": bc, "sc": sc, "scs": 0.5 * (bc + sc)}


def den_scs(gt: Sequence[np.ndarray], pred: Sequence[np.ndarray], num_classes: int = 6,
            ignore_label: int = 255) -> dict[str, float]:
    """DynamicEarthNet's semantic change segmentation score over cubes of monthly maps, as its
    evaluator (``codalab_eval/semantic_change_segmentation.py``) computes it.

    For every cube and every consecutive month pair (t, t+1): change is ``map_t != map_t+1``
    (ground truth and prediction alike, ignored values included); BC is the IoU of the change
    class over all pairs of all cubes; SC is the mIoU of the semantic maps of month t+1 on the
    ground-truth change pixels (rows of ``ignore_label`` removed; classes counted where they
    occur in the ground truth or are hit); SCS = (BC + SC) / 2.

    Args:
        gt, pred: one (T, H, W) integer array per cube (classes 0..num_classes-1,
            ``ignore_label`` in the ground truth), same shapes.

    Returns:
        {"bc", "sc", "scs"} fractions.
    """
    size = num_classes + 1 if ignore_label >= num_classes else num_classes
    include = (np.arange(num_classes) if ignore_label >= num_classes
               else np.array([i for i in range(num_classes) if i != ignore_label]))
    sc_cm = np.zeros((size, size), np.int64)
    bc_cm = np.zeros((2, 2), np.int64)
    for g, p in zip(gt, pred, strict=True):
        g, p = np.asarray(g, np.int64), np.asarray(p, np.int64)
        if g.shape != p.shape:
            raise ValueError(f"den_scs: shapes differ {g.shape} != {p.shape}")
        for t in range(g.shape[0] - 1):
            gc, pc = g[t] != g[t + 1], p[t] != p[t + 1]
            lab, prd = g[t + 1], p[t + 1]
            if ignore_label >= num_classes:
                lab = np.where(lab != ignore_label, lab, num_classes)
                prd = np.where(prd != ignore_label, prd, num_classes)
            np.add.at(sc_cm, (lab[gc], prd[gc]), 1)
            np.add.at(bc_cm, (gc.ravel().astype(np.int64), pc.ravel().astype(np.int64)), 1)
    keep = np.zeros_like(sc_cm)
    keep[include, :] = 1
    sc_cm = sc_cm * keep
    inter = sc_cm.diagonal().astype(np.float64)
    union = sc_cm.sum(0) + sc_cm.sum(1) - inter
    n = np.count_nonzero(inter + (sc_cm.sum(1) - inter))
    sc = float(np.sum(inter / np.maximum(union, 1e-15)) / n) if n else 0.0
    tp, fp, fn = bc_cm[1, 1], bc_cm[0, 1], bc_cm[1, 0]
    bc = float(tp / max(tp + fp + fn, 1e-15))
    return {"bc": bc, "sc": sc, "scs": 0.5 * (bc + sc)}
