"""Cloud probability of Sentinel-2 L1C pixels: s2cloudless (the LightGBM model of
``S2PixelCloudDetector(all_bands=False)``), per pixel as Earth Engine's S2_CLOUD_PROBABILITY
computes it, or per cell of a coarser grid (``sentinel.cloud_grid_factor``). Used by the one
compositor of the scene sources (:mod:`pipeline.sentinel.compositor`).

The model is s2cloudless' own (its LightGBM booster, as the package loads it); it is evaluated
with ONNX Runtime instead of LightGBM's predictor, **bit for bit** the same:

* :func:`lightgbm_to_onnx` translates the booster's trees into one ``ai.onnx.ml``
  ``TreeEnsemble`` (opset 5) with float64 split values and leaf weights, so every split
  compares the float64 input with LightGBM's own float64 threshold (``x <= t`` goes left,
  as LightGBM's numerical decisions without missing-value handling do);
* each row's leaf values are summed in tree order (the runtime's session runs on one thread;
  rows are shared out in chunks over a thread pool instead), as LightGBM sums them;
* rows are evaluated in :func:`similar_first` order (similar reflectances one after the
  other, so the CPU predicts the trees' branches better; about 1.4x faster) and returned in
  the caller's order: a row's result never depends on its neighbours;
* the logistic is ``scipy.special.expit``, the same ``1 / (1 + exp(-x))`` in float64 through
  the C library's ``exp`` that LightGBM's binary objective computes.

:class:`CloudDetector` checks the translation against LightGBM on probe rows (a sample of
the split values, each with its two float64 neighbours) when it builds the session and refuses
to run on any difference; the compositor starts that build in the background
(:meth:`CloudDetector.warm_up`) as soon as a block knows it needs the classifier. Measured on
the real s2cloudless chip (438,272 pixels): identical float64 probabilities, about 2.9x faster
than ``Booster.predict`` on 2 cores (docs/benchmarks.md, Cloud masks).
"""

from __future__ import annotations

import contextlib
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from pipeline.errors import SourceError

#: s2cloudless model input bands (all_bands=False), in the model's order.
S2CLOUDLESS_BANDS: tuple[str, ...] = (
    "B01", "B02", "B04", "B05", "B08", "B8A", "B09", "B10", "B11", "B12",
)

#: rows per ONNX Runtime call: the unit of work the detector's threads share (about 0.1 s)
ROWS_PER_CALL = 16384
#: split values (with both float64 neighbours) checked against LightGBM when a session is built
PROBE_SPLITS = 1024
#: reflectance bin (and bits per feature) of the key that orders rows before evaluation
SORT_BIN, SORT_BITS = 0.05, 5

# LightGBM decision_type bits (include/LightGBM/tree.h): 1 = categorical, 2 = default left,
# (type >> 2) & 3 = missing type (0 None, 1 Zero, 2 NaN)
_CATEGORICAL, _MISSING_SHIFT = 1, 2


@dataclass(frozen=True)
class TreeModel:
    """A LightGBM binary model as flat arrays (the ``TreeEnsemble`` v5 layout): interior
    nodes ``feature`` (int64 (m,)), ``split`` (float64 (m,)), children ``true_id`` /
    ``false_id`` (int64 (m,): a node index, or a leaf index where ``true_leaf`` /
    ``false_leaf`` (int64 0/1 (m,)) is 1), ``roots`` (int64 (trees,) node indices) and
    ``leaf`` weights (float64 (leaves,)); ``n_features`` inputs, ``sigmoid`` the binary
    objective's coefficient."""

    feature: np.ndarray
    split: np.ndarray
    true_id: np.ndarray
    true_leaf: np.ndarray
    false_id: np.ndarray
    false_leaf: np.ndarray
    roots: np.ndarray
    leaf: np.ndarray
    n_features: int
    sigmoid: float


def parse_lightgbm_text(text: str, what: str = "the LightGBM model") -> TreeModel:
    """The trees of a LightGBM model in its text format (``Booster.model_to_string()``),
    for a binary objective with numerical splits and no missing-value handling (what
    s2cloudless' model is). Thresholds and leaf values are printed by LightGBM with 17
    significant digits, so they parse to LightGBM's own float64 values.

    Raises:
        SourceError: the model uses something the translation does not cover (categorical
            splits, missing-value handling, linear trees, several classes, an objective other
            than ``binary``), naming ``what``.
    """
    head: dict[str, str] = {}
    trees: list[dict[str, str]] = []
    for line in text.splitlines():
        if line.startswith("end of trees"):
            break
        if line.startswith("Tree="):
            trees.append({})
            continue
        key, sep, value = line.partition("=")
        if sep:
            (trees[-1] if trees else head)[key] = value

    def refuse(why: str) -> SourceError:
        return SourceError(
            f"{what}: {why}, which the ONNX translation of the cloud classifier "
            "(pipeline.sentinel.cloud_probability) does not cover; install the s2cloudless "
            "version this pipeline pins in pyproject.toml")

    objective = head.get("objective", "").split()
    if not objective or objective[0] != "binary":
        raise refuse(f"objective {head.get('objective')!r} is not 'binary'")
    sigmoid = 1.0
    for part in objective[1:]:
        if part.startswith("sigmoid:"):
            sigmoid = float(part.split(":", 1)[1])
    if head.get("num_tree_per_iteration", "1") != "1" or head.get("num_class", "1") != "1":
        raise refuse("it has several outputs per iteration")
    if "average_output" in head:
        raise refuse("it averages its trees (random-forest mode)")
    if not trees:
        raise refuse("it has no trees")
    n_features = int(head["max_feature_idx"]) + 1
    parts: dict[str, list[np.ndarray]] = {k: [] for k in (
        "feature", "split", "true_id", "true_leaf", "false_id", "false_leaf", "leaf")}
    roots: list[int] = []
    n_nodes = n_leaves = 0
    for t, tree in enumerate(trees):
        if tree.get("is_linear", "0") != "0":
            raise refuse(f"tree {t} is linear")
        if tree.get("num_cat", "0") != "0":
            raise refuse(f"tree {t} has categorical splits")
        leaf = np.array(tree["leaf_value"].split(), np.float64)
        if int(tree["num_leaves"]) == 1:  # a constant tree: one split whose branches meet
            feature, split = np.zeros(1, np.int64), np.zeros(1, np.float64)
            left = right = np.array([-1], np.int64)
        else:
            decision = np.array(tree["decision_type"].split(), np.int64)
            if (decision & _CATEGORICAL).any():
                raise refuse(f"tree {t} has categorical splits")
            if ((decision >> _MISSING_SHIFT) & 3).any():
                raise refuse(f"tree {t} handles missing values")
            feature = np.array(tree["split_feature"].split(), np.int64)
            split = np.array(tree["threshold"].split(), np.float64)
            left = np.array(tree["left_child"].split(), np.int64)
            right = np.array(tree["right_child"].split(), np.int64)
        roots.append(n_nodes)
        parts["feature"].append(feature)
        parts["split"].append(split)
        # LightGBM's children: a node index >= 0, or ~leaf index
        for side, child in (("true", left), ("false", right)):
            is_leaf = child < 0
            parts[f"{side}_id"].append(np.where(is_leaf, n_leaves + ~child, n_nodes + child))
            parts[f"{side}_leaf"].append(is_leaf.astype(np.int64))
        parts["leaf"].append(leaf)
        n_nodes += len(feature)
        n_leaves += len(leaf)
    flat = {k: np.concatenate(v) for k, v in parts.items()}
    return TreeModel(roots=np.array(roots, np.int64), n_features=n_features,
                     sigmoid=sigmoid, **flat)


def lightgbm_to_onnx(model: TreeModel) -> bytes:
    """One ``ai.onnx.ml`` ``TreeEnsemble`` (opset 5, IR version 10) with float64 splits and
    leaf weights: input ``X`` float64 (n, n_features), output ``Y`` float64 (n, 1), the raw
    score (sum of the trees' leaves, before the logistic)."""
    from onnx import TensorProto, helper, numpy_helper

    node = helper.make_node(
        "TreeEnsemble", ["X"], ["Y"], domain="ai.onnx.ml",
        aggregate_function=1,  # SUM
        post_transform=0,  # NONE: the logistic is applied as LightGBM does (expit)
        n_targets=1,
        tree_roots=model.roots.tolist(),
        nodes_featureids=model.feature.tolist(),
        nodes_splits=numpy_helper.from_array(model.split),
        nodes_modes=numpy_helper.from_array(np.zeros(len(model.feature), np.uint8)),  # <=
        nodes_truenodeids=model.true_id.tolist(),
        nodes_trueleafs=model.true_leaf.tolist(),
        nodes_falsenodeids=model.false_id.tolist(),
        nodes_falseleafs=model.false_leaf.tolist(),
        leaf_targetids=[0] * len(model.leaf),
        leaf_weights=numpy_helper.from_array(model.leaf),
    )
    graph = helper.make_graph(
        [node], "lightgbm",
        [helper.make_tensor_value_info("X", TensorProto.DOUBLE, [None, model.n_features])],
        [helper.make_tensor_value_info("Y", TensorProto.DOUBLE, [None, 1])],
    )
    onnx_model = helper.make_model(graph, opset_imports=[
        helper.make_opsetid("", 21), helper.make_opsetid("ai.onnx.ml", 5)])
    onnx_model.ir_version = 10  # what onnxruntime >= 1.21 reads (newer onnx writes newer)
    return bytes(onnx_model.SerializeToString())


def probe_rows(model: TreeModel, base: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """float64 (3k, n_features) rows that put a sample of ``k <= n`` split values, and their
    two float64 neighbours, on the split's feature (the other features from rows of ``base``
    (m, n_features)): the inputs where a float32 threshold or a ``<`` for ``<=`` would
    differ from LightGBM."""
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(model.split), size=min(n, len(model.split)), replace=False)
    rows = np.asarray(base, np.float64)[rng.integers(0, len(base), len(pick))]
    out = []
    for value in (model.split[pick], np.nextafter(model.split[pick], -np.inf),
                  np.nextafter(model.split[pick], np.inf)):
        r = rows.copy()
        r[np.arange(len(pick)), model.feature[pick]] = value
        out.append(r)
    return np.concatenate(out)


def split_priority(model: TreeModel) -> np.ndarray:
    """int64 (n_features,): the model's features, those most split on first (ties by index)."""
    counts = np.bincount(model.feature, minlength=model.n_features)
    return np.asarray(np.argsort(-counts, kind="stable"), np.int64)


def similar_first(x: np.ndarray, priority: np.ndarray) -> np.ndarray:
    """int64 (n,) permutation of the rows of ``x`` (n, f) that puts similar rows next to
    each other: sorted by one integer key of their values in :data:`SORT_BIN` bins
    (:data:`SORT_BITS` bits per feature, clipped), features in ``priority`` order (as many
    as fit in 62 bits). Walking the trees for similar rows one after the other lets the CPU
    predict the trees' branches: about 1.4x faster on the real chip than image order
    (docs/benchmarks.md). Only the order of the rows changes, never a row's result."""
    rows = np.asarray(x)
    key = np.zeros(len(rows), np.int64)
    for f in np.asarray(priority, np.int64)[: 62 // SORT_BITS]:  # one column at a time
        col = np.floor(np.asarray(rows[:, f], np.float64) / SORT_BIN)
        key = (key << SORT_BITS) | np.clip(col, 0, 2**SORT_BITS - 1).astype(np.int64)
    return np.asarray(np.argsort(key, kind="stable"), np.int64)


def classifier_threads() -> int:
    """Threads the classifier uses: ``OMP_NUM_THREADS`` when set (Snakemake sets it to the
    job's threads, and LightGBM's OpenMP predictor honoured it), else the CPUs this process
    may run on."""
    env = os.environ.get("OMP_NUM_THREADS", "")
    if env.strip().isdigit() and int(env) > 0:
        return int(env)
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (
        os.cpu_count() or 1)


class CloudDetector:
    """s2cloudless' classifier, thread-safe; built once, on first use.

    Args:
        threads: threads the predictions use (default :func:`classifier_threads`); rows are
            shared out in chunks of :data:`ROWS_PER_CALL`, so the result never depends on it.
        booster: the LightGBM booster to evaluate (default: s2cloudless' own model, as
            ``S2PixelCloudDetector(all_bands=False)`` loads it).
    """

    def __init__(self, threads: int | None = None, booster: Any = None) -> None:
        self._lock = threading.Lock()
        self._booster = booster
        self._threads = int(threads) if threads else classifier_threads()
        self._session: Any = None
        self._sigmoid = 1.0
        self._priority = np.zeros(0, np.int64)
        self._pool: ThreadPoolExecutor | None = None
        self._warming: threading.Thread | None = None
        self._warm_lock = threading.Lock()

    def warm_up(self) -> None:
        """Start building the session in a background thread (imports, translation, probe
        check: about a second), so that it overlaps a month job's first reads; the first
        prediction waits for it. A failure is raised by that prediction."""
        with self._warm_lock:  # blocks of a month ask at once: one warm-up thread
            if self._session is None and self._warming is None:
                self._warming = threading.Thread(target=self._build_quietly, daemon=True,
                                                 name="s2cloudless-warm-up")
                self._warming.start()

    def _build_quietly(self) -> None:
        with contextlib.suppress(Exception):  # predict() builds again and raises it
            self._build()

    def _build(self) -> Any:
        with self._lock:
            if self._session is None:
                import onnxruntime as ort
                from s2cloudless import S2PixelCloudDetector

                booster: Any = self._booster
                what = "the LightGBM model handed to CloudDetector"
                if booster is None:
                    booster = S2PixelCloudDetector(all_bands=False).classifier.classifier
                    what = "s2cloudless' LightGBM model"
                model = parse_lightgbm_text(booster.model_to_string(), what)
                opts = ort.SessionOptions()
                opts.intra_op_num_threads = 1  # one thread per call: leaves summed in tree order
                opts.inter_op_num_threads = 1
                session = ort.InferenceSession(lightgbm_to_onnx(model), opts,
                                               providers=["CPUExecutionProvider"])
                base = np.random.default_rng(1).uniform(0.0, 0.8, (256, model.n_features))
                rows = probe_rows(model, base, PROBE_SPLITS)
                ours = session.run(None, {"X": rows})[0][:, 0]
                theirs = booster.predict(rows, raw_score=True)
                if not np.array_equal(ours, theirs):
                    bad = int((ours != theirs).sum())
                    raise SourceError(
                        f"{what}: onnxruntime {ort.__version__} scores {bad} of {len(rows)} "
                        "probe rows differently from LightGBM; install onnxruntime >= 1.21 "
                        "(tested with 1.30) from PyPI")
                self._sigmoid = model.sigmoid
                self._priority = split_priority(model)
                if self._threads > 1:
                    self._pool = ThreadPoolExecutor(self._threads,
                                                    thread_name_prefix="s2cloudless")
                self._session = session
            return self._session

    def predict(self, px: np.ndarray) -> np.ndarray:
        """s2cloudless' cloud probability of (n, 10) L1C TOA reflectances (any float dtype,
        finite) in :data:`S2CLOUDLESS_BANDS` order: float64 (n,) in [0, 1], bit for bit
        LightGBM's ``Booster.predict`` (cast to float32, s2cloudless'
        ``get_cloud_probability_maps``). Rows are evaluated in :func:`similar_first` order
        and returned in theirs."""
        from scipy.special import expit

        session = self._build()
        x = np.asarray(px)
        order = similar_first(x, self._priority)

        def run(lo: int) -> np.ndarray:  # float64 one chunk at a time (memory: the chunk)
            rows = np.asarray(x[order[lo : lo + ROWS_PER_CALL]], np.float64, order="C")
            return np.asarray(session.run(None, {"X": rows})[0][:, 0])

        starts = range(0, len(x), ROWS_PER_CALL)
        if self._pool is None or len(starts) < 2:
            raw = [run(lo) for lo in starts]
        else:
            raw = list(self._pool.map(run, starts))
        score = np.zeros(len(x), np.float64)
        if raw:
            score[order] = np.concatenate(raw)
        return np.asarray(expit(self._sigmoid * score), np.float64)

    def close(self) -> None:
        """Stop the prediction threads (a later prediction starts them again)."""
        with self._warm_lock:
            if self._warming is not None:
                self._warming.join()
                self._warming = None
        with self._lock:
            if self._pool is not None:
                self._pool.shutdown()
                self._pool = None
            self._session = None

    def probability(self, bands: np.ndarray, valid: np.ndarray) -> np.ndarray:
        """Cloud probability of (10, h, w) L1C TOA reflectances in :data:`S2CLOUDLESS_BANDS`
        order; float32 (h, w) in [0, 1], NaN where ``valid`` (h, w) is False."""
        out = np.full(bands.shape[1:], np.nan, np.float32)
        if valid.any():
            out[valid] = self.predict(bands[:, valid].T).astype(np.float32)
        return out

    def cell_probability(
        self, bands: np.ndarray, valid: np.ndarray, need: np.ndarray, factor: int
    ) -> tuple[np.ndarray, int]:
        """Cloud probability on a ``factor`` x ``factor`` cell grid (``cloud_grid_factor``):
        the classifier runs once per cell, on the mean of the cell's valid pixels, and every
        pixel takes its cell's value (nearest upsampling).

        ``bands`` (10, h, w) float32 TOA reflectance, ``valid`` / ``need`` (h, w) bool; the
        window's upper-left pixel must be a cell corner (cells are anchored at the frame's
        origin, so a cell's mean never depends on the block plan); a last partial row or
        column of cells holds the pixels there are (the frame's edge). Returns float32 (h, w)
        in [0, 1] (NaN outside the cells holding a ``need`` pixel, and where not ``valid``)
        and the number of cells classified.
        """
        f = int(factor)
        h, w = valid.shape
        ch, cw = -(-h // f), -(-w // f)
        pad = ((0, ch * f - h), (0, cw * f - w))
        okp = np.pad(valid, pad)
        n = okp.reshape(ch, f, cw, f).sum(axis=(1, 3))
        cells = np.pad(need & valid, pad).reshape(ch, f, cw, f).any(axis=(1, 3)) & (n > 0)
        vals = np.pad(np.where(valid, bands, np.float32(0.0)), ((0, 0), *pad))
        sums = vals.reshape(len(bands), ch, f, cw, f).sum(axis=(2, 4), dtype=np.float64)
        means = (sums / np.maximum(n, 1)).astype(np.float32)
        pc = self.probability(means, cells)
        out = np.repeat(np.repeat(pc, f, axis=0), f, axis=1)[:h, :w]
        return np.where(valid, out, np.float32(np.nan)).astype(np.float32), int(cells.sum())
