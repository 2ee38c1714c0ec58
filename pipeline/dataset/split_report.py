"""Reports on a split assignment (pure): achieved ratios, FUSU Table 11-style counts and the
leakage report (patches and footprints shared across splits), written by rule ``assemble`` to
``splits/summary.json`` and ``splits/leakage.json``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import shapely

from pipeline.dataset.splits import GUARD, SPLITS, change_subset, conflict_pairs, overlap_area


def achieved_ratios(split: np.ndarray) -> dict[str, float]:
    """Fraction of kept (non-guard) patches in each split."""
    split = np.asarray(split, dtype=object)
    kept = np.isin(split, SPLITS)
    n = max(int(kept.sum()), 1)
    return {s: float(np.count_nonzero(split == s)) / n for s in SPLITS}


def leakage_report(
    split: np.ndarray,
    cities: Sequence[str],
    patch_geoms: np.ndarray,
    fp_geoms: np.ndarray,
    info: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """How much held-out Sentinel context overlaps training ground truth.

    For each pair (train, val), (train, test) and (val, test), per city and overall:
    ``fp_overlap_frac`` = area of the second split's footprints overlapping the first split's
    HR patches / total footprint area of the second split; ``patch_in_fp_frac`` = area of the
    second split's HR patches inside the first split's footprints / their total area;
    ``n_leaking`` = patches of the second split with any such overlap. Also the number of guard
    patches dropped. Geometries: metric CRS shared per city (as for :func:`make_splits`).

    Returns:
        JSON-serialisable dict (0 overlap everywhere for a guarded block split).
    """
    split = np.asarray(split, dtype=object)
    cities_a = np.asarray(cities, dtype=object)
    patch_geoms = np.asarray(patch_geoms, dtype=object)
    fp_geoms = np.asarray(fp_geoms, dtype=object)
    pairs = (("train", "val"), ("train", "test"), ("val", "test"))
    sums: dict[str, dict[str, float]] = {
        f"{a}-{b}": {"fp_area": 0.0, "fp_overlap": 0.0, "patch_area": 0.0, "patch_in": 0.0,
                     "n_leaking": 0}
        for a, b in pairs
    }
    per_city: dict[str, Any] = {}
    for city in sorted(set(cities_a.tolist())):
        idx = np.flatnonzero(cities_a == city)
        sp, pg, fg = split[idx], patch_geoms[idx], fp_geoms[idx]
        fi, pj = conflict_pairs(pg, fg)
        inter = overlap_area(fg, pg, fi, pj)
        city_out: dict[str, Any] = {"guard_patches": int(np.count_nonzero(sp == GUARD))}
        for a, b in pairs:
            key = f"{a}-{b}"
            in_b = sp == b
            fp_area = float(shapely.area(fg[in_b]).sum())
            patch_area = float(shapely.area(pg[in_b]).sum())
            # (1) footprints of b over patches of a: patches are disjoint, so areas add up
            m1 = (sp[fi] == b) & (sp[pj] == a)
            fp_overlap = float(inter[m1].sum())
            leaking = set(fi[m1].tolist())
            # (2) patches of b inside footprints of a: footprints overlap, so use a union
            m2 = (sp[fi] == a) & (sp[pj] == b)
            patch_in = 0.0
            f2, p2 = fi[m2], pj[m2]
            order = np.argsort(p2, kind="stable")
            f2, p2 = f2[order], p2[order]
            uniq, starts = np.unique(p2, return_index=True)
            groups = np.split(f2, starts[1:]) if len(uniq) else []
            for j, f_grp in zip(uniq, groups, strict=True):
                union = shapely.union_all(fg[f_grp])
                patch_in += float(shapely.area(shapely.intersection(pg[j], union)))
                leaking.add(int(j))
            city_out[key] = {
                "fp_overlap_frac": fp_overlap / fp_area if fp_area else 0.0,
                "patch_in_fp_frac": patch_in / patch_area if patch_area else 0.0,
                "n_leaking": len(leaking),
                "n_patches": int(in_b.sum()),
            }
            s = sums[key]
            s["fp_area"] += fp_area
            s["fp_overlap"] += fp_overlap
            s["patch_area"] += patch_area
            s["patch_in"] += patch_in
            s["n_leaking"] += len(leaking)
        per_city[city] = city_out
    overall: dict[str, Any] = {"guard_patches": int(np.count_nonzero(split == GUARD))}
    for key, s in sums.items():
        overall[key] = {
            "fp_overlap_frac": s["fp_overlap"] / s["fp_area"] if s["fp_area"] else 0.0,
            "patch_in_fp_frac": s["patch_in"] / s["patch_area"] if s["patch_area"] else 0.0,
            "n_leaking": int(s["n_leaking"]),
        }
    return {
        "definition": "fp_overlap_frac: share of the second split's footprint area lying on HR "
        "patches of the first split; patch_in_fp_frac: share of the second split's HR patch "
        "area lying inside footprints of the first split; pairs are first-second",
        "info": dict(info or {}),
        "overall": overall,
        "per_city": per_city,
    }


def split_summary(
    split: np.ndarray, cities: Sequence[str], changed_px: np.ndarray
) -> dict[str, dict[str, int]]:
    """FUSU Table 11-style counts: {"complete"|<city>|"change_detection": {split: n}}."""
    split = np.asarray(split, dtype=object)
    cities_a = np.asarray(cities, dtype=object)
    cd = change_subset(split, changed_px)
    out: dict[str, dict[str, int]] = {
        "complete": {s: int(np.count_nonzero(split == s)) for s in (*SPLITS, GUARD)}
    }
    for city in sorted(set(cities_a.tolist())):
        m = cities_a == city
        out[city] = {s: int(np.count_nonzero(split[m] == s)) for s in (*SPLITS, GUARD)}
    out["change_detection"] = {s: int(np.count_nonzero(cd == s)) for s in SPLITS}
    return out
