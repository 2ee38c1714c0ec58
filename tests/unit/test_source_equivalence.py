"""One recipe, three sources, the same pixels: ``local``, ``stac`` (the static catalogue of the
same archive) and ``gee`` (the real earthengine-api client against the fake Earth Engine that
*evaluates* the expression graph over the same scenes, :mod:`tests.fake_ee_eval`) composite
every recipe variant of a small archive made by the demo's scene simulator.

Tolerances (docs/sources.md states them):

* values: float32 rounding only -- Earth Engine means in float64 and casts once, the compositor
  accumulates in float32: reflectance within 1.2e-7 (2 ulp below 1.0), S1 within 8e-6 dB;
* the ``s2cloudless`` preset: Earth Engine's S2_CLOUD_PROBABILITY stores whole percent, so its
  disk average sees rounded probabilities (the scene sources average the classifier's floats,
  as the package does): up to 0.5 % of the pixels may differ;
* the shadow mask: Earth Engine projects clouds at 100 m (the catalogue tutorial's
  ``reproject(scale=100)``) and takes dark pixels from L2A B8 and SCL water; the scene sources
  project at 10 m from L1C: up to 3 % of the pixels may differ, and the pixels each source
  loses to shadows overlap with IoU >= 0.8 (a separate test on the whole AOI).

Bilinear resampling is exact: both interpolate in floating point (the scene sources warp in
float32, not in the files' uint16, which rounded every interpolated DN: 0.5 DN apart, and on
the demo 5 of 34,596 pixels' cloud masks).

Everything else -- the masks, counts, the month's product, the skips -- is identical.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

ee = pytest.importorskip("ee")

from pipeline.sentinel.model import Block, BlockResult, Recipe
from pipeline.sentinel.sources.gee import GeeSource
from pipeline.sentinel.sources.local import local_source
from pipeline.sentinel.sources.stac import stac_source
from tests.equivalence_helpers import (
    EMPTY_MONTH,
    GRID,
    L1C_MONTH,
    L2A_MONTH,
    MIXED_MONTH,
)
from tests.fake_ee import evaluating_fake

#: A block that starts inside the AOI (its grid is not the AOI's).
BLOCK = Block(col0=8, row0=16, width=56, height=48)
S2_ATOL, S1_ATOL = 1.2e-7, 8e-6


@dataclass(frozen=True)
class Case:
    """One recipe variant: the recipe (``scene_recipe`` for the scene sources where Earth
    Engine's differs), the month and the share of pixels that may differ (a count, the NaN
    pattern or a value beyond the float32 tolerance)."""

    recipe: dict[str, Any]
    month: str = L2A_MONTH
    scene_recipe: dict[str, Any] | None = None
    max_differing: float = 0.0
    expect: dict[str, Any] = field(default_factory=dict)


CASES = {
    "gee-preset": Case({}),
    "s2cloudless-preset": Case({"cloud_preset": "s2cloudless", "cloud_average_over": 1,
                                "cloud_dilation_size": 1}, max_differing=0.005),
    "scl": Case({"s2_mask": "scl"}),
    "shadow": Case({"shadow_mask": True}, max_differing=0.03),
    # Cloud Score+ on a synthetic cs = 1 - probability: cs < 0.6 is exactly probability > 40 %
    "cloud-score-plus": Case({"s2_mask": "cloud_score_plus", "cloud_score_plus_threshold": 0.6},
                             scene_recipe={"cloud_probability_threshold": 40}),
    "s1-linear": Case({"s1_mean": "linear"}),
    "s1-db": Case({"s1_mean": "db"}),
    "s1-ascending": Case({"s1_orbit_pass": "ASCENDING"}),
    "bilinear": Case({"s2_resampling": "bilinear"}),
    "l1c-fallback-month": Case({}, month=L1C_MONTH, expect={"s2_product": "L1C"}),
    "mixed-month": Case({}, month=MIXED_MONTH,
                        expect={"s2_product": "L2A", "other_product": 1}),
    "empty-month": Case({}, month=EMPTY_MONTH, expect={"s2_product": None, "s1_scenes": 0}),
}


@pytest.fixture(scope="module")
def archive(equivalence_archive: Path) -> Path:
    return equivalence_archive


@pytest.fixture(scope="module")
def gee(archive: Path):  # type: ignore[no-untyped-def]
    with evaluating_fake(archive) as server:
        yield GeeSource(project="test", api_url=server.url, max_retries=0,
                        backoff_base_s=0.01, seed=0)


def differing(a: BlockResult, b: BlockResult) -> np.ndarray:
    """(h, w) bool: pixels where two composites differ (a count, the NaN pattern, a value
    beyond :data:`S2_ATOL` / :data:`S1_ATOL`)."""
    out = (a.s2_count != b.s2_count) | (a.s1_count != b.s1_count)
    for x, y, tol in ((a.s2, b.s2, S2_ATOL), (a.s1, b.s1, S1_ATOL)):
        nan = np.isnan(x) != np.isnan(y)
        far = np.abs(np.nan_to_num(x) - np.nan_to_num(y)) > tol
        out |= (nan | far).any(axis=0)
    return out


@pytest.mark.parametrize("name", list(CASES))
def test_local_stac_and_earth_engine_give_the_same_composite(name: str, archive: Path,
                                                             gee: GeeSource) -> None:
    case = CASES[name]
    scene_recipe = Recipe(**(case.scene_recipe if case.scene_recipe is not None
                             else case.recipe))
    local = local_source(archive).fetch_block("eq", GRID, BLOCK, case.month, scene_recipe)
    stac = stac_source(archive).fetch_block("eq", GRID, BLOCK, case.month, scene_recipe)
    remote = gee.fetch_block("eq", GRID, BLOCK, case.month, Recipe(**case.recipe))

    # the two scene sources share the compositor: byte-identical
    for k in ("s2", "s2_count", "s1", "s1_count"):
        np.testing.assert_array_equal(getattr(stac, k), getattr(local, k), err_msg=k)
    # Earth Engine: the same product, skips and scenes, the same pixels within the tolerance
    for k in ("s2_product", "s1_scenes"):
        assert remote.meta[k] == local.meta[k], k
    assert remote.meta["s2_scenes_skipped"] == local.meta["s2_scenes_skipped"]
    diff = differing(local, remote)
    assert diff.mean() <= case.max_differing, (
        f"{name}: {int(diff.sum())} of {diff.size} pixels differ "
        f"(allowed {case.max_differing:.1%})")
    # never two empty results agreeing: the month has what its scenes give
    exp = case.expect
    if "s2_product" in exp:
        assert local.meta["s2_product"] == exp["s2_product"]
    if "other_product" in exp:
        assert local.meta["s2_scenes_skipped"]["other_product"] == exp["other_product"]
    if case.month == EMPTY_MONTH:
        assert np.isnan(remote.s2).all() and not remote.s2_count.any()
        assert np.isnan(remote.s1).all() and not remote.s1_count.any()
    else:
        assert remote.s2_count.max() >= 2 and remote.s1_count.max() >= 2
        assert np.isfinite(remote.s2).mean() > 0.5 and np.isfinite(remote.s1).mean() > 0.9


def test_earth_engine_and_the_scene_sources_mask_the_same_shadows(archive: Path,
                                                                  gee: GeeSource) -> None:
    """The shadow mask on the whole AOI: the pixels each source loses to shadows (count with
    ``shadow_mask`` below the count without) overlap with IoU >= 0.8 (measured 0.90 and 0.87;
    a shadow projected towards the sun instead of away from it gives 0.61 and 0.63)."""
    block = Block(0, 0, GRID.width, GRID.height)
    for month in (L2A_MONTH, MIXED_MONTH):
        lost = {}
        for name, src in (("local", local_source(archive)), ("gee", gee)):
            plain = src.fetch_block("eq", GRID, block, month, Recipe())
            shadow = src.fetch_block("eq", GRID, block, month, Recipe(shadow_mask=True))
            lost[name] = shadow.s2_count < plain.s2_count
        a, b = lost["local"], lost["gee"]
        assert a.sum() > 300 and b.sum() > 300, month  # shadows were found at all
        iou = (a & b).sum() / (a | b).sum()
        assert iou >= 0.8, f"{month}: shadow IoU {iou:.2f}"
