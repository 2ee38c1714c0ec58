"""Train / val / test splits without footprint leakage (pure functions).

Why a guard is needed
---------------------
Every HR patch comes with a Sentinel footprint 5x its side, centred on it: the footprint of a
patch covers about two neighbouring patches on every side. With a FUSU-style random split, the
Sentinel input of a test patch therefore shows the ground (and the labels' content) of training
patches, and vice versa. :func:`make_splits` prevents that.

Definitions
-----------
*Conflict*: patches ``i`` and ``j`` conflict when the footprint of one overlaps the HR extent of
the other with positive area (more than ``AREA_TOL`` of a patch; touching edges do not count).
The split is *leakage-free* when no kept train patch conflicts with a kept val or test patch,
i.e. no val/test footprint overlaps a train HR patch and no val/test HR patch lies inside a
train footprint. Val and test may touch each other (both are held out).

Block mode (default), per city
------------------------------
1. **Blocks and regions.** Patches are grouped into square blocks of ``block_size_patches`` x
   ``block_size_patches`` patch sides, by patch centre coordinates in a metric CRS common to the
   city (so several AOIs of one city share one lattice). Blocks are grouped into square
   *regions* of R x R blocks, R chosen so that a region holds about ``REGION_PATCHES`` patches
   (or the whole held-out share on small AOIs): held-out data then forms a few compact clusters
   whose guard band is short relative to their area.
2. **Regions -> train / held-out** by a stratified greedy pass (regions in seeded random order;
   each goes to the side with the lowest ``fill + W_OVER * overfill + W_CLASS * class_l1``,
   ``fill`` = patches of the side after adding the region / its target, ``class_l1`` = L1
   distance between the side's class-pixel distribution (T1 + T2 histograms) and the city's).
3. **Held-out blocks -> val / test** by the same stratified greedy at block level (val and test
   may touch, so no guard is needed between them).
4. **Guard carving** (``guard: true``). While a train patch conflicts with a held-out patch,
   one conflicting patch is dropped (split ``guard``): from the side that is furthest above its
   target share of the kept patches, the one with the most conflicts (ties: lowest index).
5. **Peeling.** While the train share of the kept patches is more than ``PEEL_TOL`` from its
   ratio, the over-represented side loses its most exposed edge patch (most dropped
   neighbours) to the guard; dropping never creates leakage.
6. **Val/test balance.** Patches move between val and test (no leakage cost) until their counts
   match their ratios, taking the over-full split's patch closest to the other split.
7. Steps 1-6 run for ``N_CANDIDATES`` seeded candidates (region lattice offset and visiting
   orders); the candidate with the lowest ``guard share + W_SELECT_CLASS * mean class L1`` wins.

Result: leakage-free by construction; on a demo-sized AOI (~180 patches) every ratio is met
within ~0.5 percentage points of the kept patches, at the cost of ~25-30 % guard patches
(footprints reach 2.5 patch sides, and the 10 m snapping can add a sliver, so guard bands are
2-3 patches wide); at FUSU scale (tens of thousands of patches per city) several held-out
regions per city keep class frequencies balanced and the guard share lower. Everything is
deterministic for a given ``seed``.

Random mode
-----------
FUSU-style: per city, a seeded permutation of patches is cut by the ratios. No guard; the
leakage report shows how much the held-out footprints overlap train patches.

Per city & change-detection subset
----------------------------------
Each city is split separately and the results are united (FUSU Table 11: the complete split is
the union of the Xi'an and Jiaxing splits). The change-detection subset is the patches with at
least one changed pixel, in the split they already have (:func:`change_subset`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import shapely
from shapely import STRtree

from pipeline.errors import DatasetError

SPLITS: tuple[str, str, str] = ("train", "val", "test")
GUARD = "guard"
#: Overlaps smaller than this fraction of the median patch area are numerical noise.
AREA_TOL = 1e-6
W_CLASS = 0.5
W_OVER = 10.0
#: Target size (patches) of one held-out region: guard bands cost ~3 patch rows around each
#: region, so regions must be large enough (~40 x 40 patches at FUSU scale: ~25 % overhead).
REGION_PATCHES = 1600
#: Ratio tolerance (share of kept patches) the final peeling step enforces.
PEEL_TOL = 0.005
#: Candidate splits tried per city (seeded region offsets and visiting orders); the one with
#: the lowest ``guard share + W_SELECT_CLASS * mean class L1`` is kept.
N_CANDIDATES = 8
W_SELECT_CLASS = 0.25


@dataclass(frozen=True)
class SplitResult:
    """Split assignment of N patches.

    Attributes:
        split: (N,) object array of ``train`` / ``val`` / ``test`` / ``guard``.
        block: (N,) int64 block id within the patch's city (-1 in random mode).
        counts: {city: {split: n}} including ``guard``.
        info: algorithm parameters used (mode, block size, seed, ...).
    """

    split: np.ndarray
    block: np.ndarray
    counts: dict[str, dict[str, int]]
    info: dict[str, Any] = field(default_factory=dict)


def _ratios(cfg: Any) -> dict[str, float]:
    r = cfg.ratios
    ratios = {s: float(getattr(r, s) if not isinstance(r, Mapping) else r[s]) for s in SPLITS}
    if any(v < 0 for v in ratios.values()) or abs(sum(ratios.values()) - 1.0) > 1e-6:
        raise DatasetError(
            f"splits.ratios {ratios} must be >= 0 and sum to 1 (got {sum(ratios.values()):.4f}): "
            "fix splits.ratios in the config"
        )
    if ratios["train"] <= 0:
        raise DatasetError("splits.ratios.train must be > 0: a dataset needs a training split")
    return ratios


def conflict_pairs(
    patch_geoms: np.ndarray, fp_geoms: np.ndarray, area_tol: float = AREA_TOL
) -> tuple[np.ndarray, np.ndarray]:
    """Directed overlaps ``footprint[i]`` x ``patch[j]`` (i != j) with positive area.

    Args:
        patch_geoms: (N,) shapely polygons of the HR patches (metric CRS, shared with fp_geoms).
        fp_geoms: (N,) shapely polygons of the footprints, same CRS and order.
        area_tol: overlaps below ``area_tol`` x median patch area are ignored.

    Returns:
        (i, j) int64 arrays: the footprint of patch i overlaps the HR extent of patch j.
    """
    patch_geoms = np.asarray(patch_geoms, dtype=object)
    fp_geoms = np.asarray(fp_geoms, dtype=object)
    if len(patch_geoms) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    tree = STRtree(patch_geoms)
    fi, pj = tree.query(fp_geoms, predicate="intersects")
    keep = fi != pj
    fi, pj = fi[keep], pj[keep]
    if len(fi):
        area = overlap_area(fp_geoms, patch_geoms, fi, pj)
        tol = area_tol * float(np.median(shapely.area(patch_geoms)))
        keep = area > tol
        fi, pj = fi[keep], pj[keep]
    return fi.astype(np.int64), pj.astype(np.int64)


def _is_box(geoms: np.ndarray) -> np.ndarray:
    b = shapely.bounds(geoms)
    box_area = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return np.abs(shapely.area(geoms) - box_area) <= 1e-9 * np.maximum(box_area, 1e-300)


def overlap_area(a: np.ndarray, b: np.ndarray, ia: np.ndarray, ib: np.ndarray) -> np.ndarray:
    """Area of ``a[ia] & b[ib]`` per pair: exact axis-aligned-box arithmetic where both are
    boxes (the usual case: same CRS), shapely intersection otherwise."""
    ba, bb = shapely.bounds(a)[ia], shapely.bounds(b)[ib]
    w = np.clip(np.minimum(ba[:, 2], bb[:, 2]) - np.maximum(ba[:, 0], bb[:, 0]), 0, None)
    h = np.clip(np.minimum(ba[:, 3], bb[:, 3]) - np.maximum(ba[:, 1], bb[:, 1]), 0, None)
    area = w * h
    slow = ~(_is_box(a)[ia] & _is_box(b)[ib])
    if slow.any():
        area[slow] = shapely.area(shapely.intersection(a[ia[slow]], b[ib[slow]]))
    return area


def _neighbours(n: int, fi: np.ndarray, pj: np.ndarray) -> list[np.ndarray]:
    """Undirected adjacency lists of the conflict graph."""
    a = np.concatenate([fi, pj])
    b = np.concatenate([pj, fi])
    order = np.lexsort((b, a))
    a, b = a[order], b[order]
    pairs = np.unique(np.stack([a, b], axis=1), axis=0) if len(a) else np.zeros((0, 2), np.int64)
    starts = np.searchsorted(pairs[:, 0], np.arange(n + 1))
    return [pairs[starts[k] : starts[k + 1], 1] for k in range(n)]


def _lattice(centres: np.ndarray, side_m: float, block_size: int) -> tuple[np.ndarray, np.ndarray]:
    """(bx, by) int64 block lattice indices of each patch (x right, y down)."""
    x, y = centres[:, 0], centres[:, 1]
    bside = side_m * block_size
    bx = np.floor((x - x.min() + side_m / 2) / bside).astype(np.int64)
    by = np.floor((y.max() - y + side_m / 2) / bside).astype(np.int64)
    return bx, by


def _dist(h: np.ndarray) -> np.ndarray:
    s = h.sum()
    return h / s if s > 0 else np.zeros_like(h, dtype=np.float64)


def _greedy(
    groups: np.ndarray,
    order: np.ndarray,
    hist: np.ndarray,
    targets: dict[int, float],
) -> dict[int, int]:
    """Stratified greedy: each group (in ``order``) goes to the label with the lowest
    ``fill + W_OVER * overfill + W_CLASS * class_l1``. Returns {group: label}."""
    global_dist = _dist(hist.sum(axis=0))
    labels = list(targets)
    count = {k: 0.0 for k in labels}
    hsum = {k: np.zeros(hist.shape[1]) for k in labels}
    out: dict[int, int] = {}
    for g in order:
        members = groups == g
        n_g = float(members.sum())
        hg = hist[members].sum(axis=0)
        best, best_cost = labels[0], math.inf
        for k in labels:
            fill = (count[k] + n_g) / targets[k]
            cost = fill + W_OVER * max(0.0, fill - 1.0)
            cost += W_CLASS * float(np.abs(_dist(hsum[k] + hg) - global_dist).sum())
            if cost < best_cost - 1e-12:
                best, best_cost = k, cost
        out[int(g)] = best
        count[best] += n_g
        hsum[best] += hg
    return out


def _split_city_block(
    patch_geoms: np.ndarray,
    fp_geoms: np.ndarray,
    hist: np.ndarray,
    ratios: dict[str, float],
    block_size: int,
    guard: bool,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Best of ``N_CANDIDATES`` seeded candidate splits (lowest guard share + class L1)."""
    n = len(patch_geoms)
    hist = np.asarray(hist, dtype=np.float64)
    centres = shapely.get_coordinates(shapely.centroid(patch_geoms))
    side_m = float(np.median(np.sqrt(shapely.area(patch_geoms))))
    bx, by = _lattice(centres, side_m, block_size)
    block = by * (int(bx.max()) + 1) + bx
    fi, pj = conflict_pairs(patch_geoms, fp_geoms)
    nbrs = _neighbours(n, fi, pj)
    gdist = _dist(hist.sum(axis=0))
    best: tuple[float, np.ndarray] | None = None
    for _ in range(N_CANDIDATES):
        labels = _block_candidate(bx, by, block, centres, nbrs, hist, ratios, block_size,
                                  guard, rng)
        l1 = [float(np.abs(_dist(hist[labels == s].sum(axis=0)) - gdist).sum())
              for s in SPLITS if ratios[s] > 0]
        score = float(np.mean(labels == GUARD)) + W_SELECT_CLASS * float(np.mean(l1))
        if best is None or score < best[0] - 1e-12:
            best = (score, labels)
    assert best is not None
    return best[1], block.astype(np.int64)


def _block_candidate(
    bx: np.ndarray,
    by: np.ndarray,
    block: np.ndarray,
    centres: np.ndarray,
    nbrs: list[np.ndarray],
    hist: np.ndarray,
    ratios: dict[str, float],
    block_size: int,
    guard: bool,
    rng: np.random.Generator,
) -> np.ndarray:
    n = len(block)
    code = {s: k for k, s in enumerate(SPLITS)}
    r_held = ratios["val"] + ratios["test"]

    # (1) regions of R x R blocks -> train / held-out (stratified greedy, seeded order)
    held_patches = max(r_held * n / max(1, round(r_held * n / REGION_PATCHES)), 1.0)
    r_side = max(1, round(math.sqrt(held_patches) / block_size))
    off_x, off_y = (int(v) for v in rng.integers(0, r_side, 2))
    rx, ry = (bx + off_x) // r_side, (by + off_y) // r_side
    region = ry * (int(rx.max()) + 1) + rx
    assigned = np.full(n, code["train"], np.int64)
    if r_held > 0:
        regions = np.unique(region)
        side = _greedy(region, rng.permutation(regions), hist,
                       {0: ratios["train"] * n, 1: r_held * n})
        held = np.isin(region, [g for g, s in side.items() if s == 1])
        # (2) held-out blocks -> val / test (no leakage constraint between them)
        active = {code[s]: ratios[s] * n for s in ("val", "test") if ratios[s] > 0}
        hb = np.unique(block[held])
        if len(active) == 1:
            assigned[held] = next(iter(active))
        elif len(hb):
            vt = _greedy(np.where(held, block, -1), rng.permutation(hb), hist, active)
            assigned[held] = [vt[int(b)] for b in block[held]]

    kept = np.ones(n, bool)
    if guard and r_held > 0:
        _carve_guard(assigned, kept, nbrs, ratios, code)
        _peel(assigned, kept, nbrs, ratios, code)
    _balance_val_test(assigned, kept, centres, ratios, code)
    labels = np.array([SPLITS[a] for a in assigned], dtype=object)
    labels[~kept] = GUARD
    return labels


def _peel(
    assigned: np.ndarray,
    kept: np.ndarray,
    nbrs: list[np.ndarray],
    ratios: dict[str, float],
    code: dict[str, int],
    tol: float = PEEL_TOL,
) -> None:
    """Drop (in place) edge patches of the over-represented side (train or held-out) until its
    share of the kept patches is within ``tol`` of its ratio. Dropping never creates leakage;
    the dropped patch is the one with the most dropped neighbours (ties: lowest index)."""
    is_train = assigned == code["train"]
    r_train = ratios["train"]
    n_train = int(np.count_nonzero(kept & is_train))
    n_held = int(np.count_nonzero(kept & ~is_train))
    edge = np.array([np.count_nonzero(~kept[nb]) for nb in nbrs], dtype=np.int64)
    while n_train + n_held > 0:
        share = n_train / (n_train + n_held)
        if abs(share - r_train) <= tol:
            return
        side_train = share > r_train
        if (n_train if side_train else n_held) <= 1:
            return
        cand = np.flatnonzero(kept & (is_train if side_train else ~is_train))
        i = int(cand[np.argmax(edge[cand])])
        kept[i] = False
        edge[nbrs[i]] += 1
        if side_train:
            n_train -= 1
        else:
            n_held -= 1



def _carve_guard(
    assigned: np.ndarray,
    kept: np.ndarray,
    nbrs: list[np.ndarray],
    ratios: dict[str, float],
    code: dict[str, int],
) -> None:
    """Drop conflicting patches (in place) until train and held-out no longer conflict."""
    train = code["train"]
    is_train = assigned == train
    deg = np.zeros(len(assigned), np.int64)
    for i, nb in enumerate(nbrs):
        if len(nb):
            deg[i] = int(np.count_nonzero(is_train[nb] != is_train[i]))
    r_train = ratios["train"]
    r_held = 1.0 - r_train
    while True:
        live = kept & (deg > 0)
        if not live.any():
            return
        n_train = int(np.count_nonzero(kept & is_train))
        n_held = int(np.count_nonzero(kept & ~is_train))
        over_train = (n_train / r_train) >= (n_held / r_held) if r_held > 0 else True
        side = live & (is_train if over_train else ~is_train)
        if not side.any():
            side = live
        cand = np.flatnonzero(side)
        i = int(cand[np.argmax(deg[cand])])
        kept[i] = False
        nb = nbrs[i]
        opp = nb[is_train[nb] != is_train[i]]
        deg[opp] -= 1
        deg[i] = 0


def _balance_val_test(
    assigned: np.ndarray,
    kept: np.ndarray,
    centres: np.ndarray,
    ratios: dict[str, float],
    code: dict[str, int],
) -> None:
    """Move kept patches between val and test (in place) until counts match their ratios: the
    over-full split's patches closest to the other split move first (ties: lowest index)."""
    from scipy.spatial import cKDTree

    rv, rt = ratios["val"], ratios["test"]
    if rv <= 0 or rt <= 0:
        return
    v, t = code["val"], code["test"]
    nv = int(np.count_nonzero(kept & (assigned == v)))
    nt = int(np.count_nonzero(kept & (assigned == t)))
    want_v = round((nv + nt) * rv / (rv + rt))
    if nv == want_v or nv + nt < 2:
        return
    src, dst, k = (v, t, nv - want_v) if nv > want_v else (t, v, want_v - nv)
    srcs = np.flatnonzero(kept & (assigned == src))
    dsts = np.flatnonzero(kept & (assigned == dst))
    k = min(k, len(srcs) - 1)
    if k <= 0:
        return
    if len(dsts):
        d, _ = cKDTree(centres[dsts]).query(centres[srcs])
        pick = srcs[np.lexsort((srcs, d))[:k]]
    else:
        pick = srcs[:k]
    assigned[pick] = dst



def _split_city_random(n: int, ratios: dict[str, float], rng: np.random.Generator) -> np.ndarray:
    perm = rng.permutation(n)
    active = [s for s in SPLITS if ratios[s] > 0]
    sizes = {s: round(ratios[s] * n) for s in active}
    for s in active:
        sizes[s] = max(sizes[s], 1)
    held = sum(sizes[s] for s in active if s != "train")
    sizes["train"] = n - held
    labels = np.empty(n, dtype=object)
    start = 0
    for s in ("val", "test", "train"):
        k = sizes.get(s, 0)
        labels[perm[start : start + k]] = s
        start += k
    return labels


def make_splits(
    ids: Sequence[str],
    cities: Sequence[str],
    aois: Sequence[str],
    patch_geoms: np.ndarray,
    fp_geoms: np.ndarray,
    class_hist: np.ndarray,
    cfg: Any,
) -> SplitResult:
    """Assign every patch to ``train`` / ``val`` / ``test`` (or ``guard``), city by city.

    Args:
        ids: (N,) patch ids (only used in messages).
        cities, aois: (N,) city and AOI name of each patch.
        patch_geoms: (N,) shapely polygons of the HR patches. Within one city all geometries
            must share one metric CRS (metres), e.g. the city's UTM zone.
        fp_geoms: (N,) footprint polygons, same CRS as ``patch_geoms`` per city.
        class_hist: (N, C) class pixel counts (e.g. T1 + T2 histograms; nodata excluded).
        cfg: :class:`pipeline.config.SplitsConfig` (mode, ratios, block_size_patches, guard,
            seed).

    Returns:
        :class:`SplitResult`.

    Raises:
        DatasetError: ratios not summing to 1, a city with fewer patches than non-zero splits,
            or a split left empty by the guard band (message names the city/AOIs and the fix).
    """
    ratios = _ratios(cfg)
    n = len(ids)
    cities_a = np.asarray(cities, dtype=object)
    aois_a = np.asarray(aois, dtype=object)
    patch_geoms = np.asarray(patch_geoms, dtype=object)
    fp_geoms = np.asarray(fp_geoms, dtype=object)
    hist = np.asarray(class_hist, dtype=np.float64).reshape(n, -1)
    if not (len(cities_a) == len(aois_a) == len(patch_geoms) == len(fp_geoms) == n):
        raise DatasetError("make_splits: ids, cities, aois and geometries differ in length")
    n_active = sum(1 for s in SPLITS if ratios[s] > 0)
    split = np.empty(n, dtype=object)
    block = np.full(n, -1, np.int64)
    counts: dict[str, dict[str, int]] = {}
    for ci, city in enumerate(sorted(set(cities_a.tolist()))):
        idx = np.flatnonzero(cities_a == city)
        city_aois = sorted(set(aois_a[idx].tolist()))
        if len(idx) < n_active:
            raise DatasetError(
                f"city {city!r} (AOI(s) {', '.join(city_aois)}) has {len(idx)} patch(es), fewer "
                f"than the {n_active} non-zero splits: add imagery, set a split ratio to 0, or "
                "merge the AOI into another city"
            )
        rng = np.random.default_rng([int(cfg.seed), ci])
        if cfg.mode == "random":
            lab = _split_city_random(len(idx), ratios, rng)
        else:
            lab, blk = _split_city_block(
                patch_geoms[idx], fp_geoms[idx], hist[idx], ratios,
                int(cfg.block_size_patches), bool(cfg.guard), rng,
            )
            block[idx] = blk
        split[idx] = lab
        counts[city] = {s: int(np.count_nonzero(lab == s)) for s in (*SPLITS, GUARD)}
        empty = [s for s in SPLITS if ratios[s] > 0 and counts[city][s] == 0]
        if empty:
            raise DatasetError(
                f"city {city!r} (AOI(s) {', '.join(city_aois)}): split(s) {empty} are empty "
                f"after the leakage guard ({len(idx)} patches, {counts[city][GUARD]} guard): "
                "lower splits.block_size_patches, use splits.mode: random, or add imagery"
            )
    info = {
        "mode": cfg.mode,
        "ratios": ratios,
        "block_size_patches": int(cfg.block_size_patches),
        "guard": bool(cfg.guard) and cfg.mode == "block",
        "seed": int(cfg.seed),
    }
    return SplitResult(split=split, block=block, counts=counts, info=info)


def change_subset(split: np.ndarray, changed_px: np.ndarray) -> np.ndarray:
    """(N,) object array: the patch's split where it has >= 1 changed pixel, else ``None``.

    FUSU Table 11 "Change Detection": only patches with changed pixels, in their own split.
    """
    split = np.asarray(split, dtype=object)
    changed = np.asarray(changed_px) > 0
    out = np.full(len(split), None, dtype=object)
    ok = changed & np.isin(split, SPLITS)
    out[ok] = split[ok]
    return out
