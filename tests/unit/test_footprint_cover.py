"""Only the footprints' pixels are composited (``FootprintCover``): the mask of a window
against squares painted one by one, s2cloudless restricted to the covered pixels and their
reach with the kept pixels identical to classifying the whole block (every post-processing
and shadow setting, on the cross-source archive's realistic clouds), the block plan's round
trip and the ledger keyed by the covered pixels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipeline.grid import AoiGrid
from pipeline.sentinel.blocks import BlockPlan, plan_blocks
from pipeline.sentinel.fetch import block_cover, recipe_key
from pipeline.sentinel.model import Block, FootprintCover, Recipe
from pipeline.sentinel.sources.local import local_source
from tests.equivalence_helpers import GRID, L2A_MONTH

BLOCK = Block(col0=0, row0=0, width=72, height=72)


def _painted(cover: FootprintCover, col0: int, row0: int, w: int, h: int) -> np.ndarray:
    out = np.zeros((h, w), bool)
    for c, r, n in zip(cover.col0, cover.row0, cover.sizes, strict=True):
        for y in range(r, r + n):
            for x in range(c, c + n):
                if 0 <= y - row0 < h and 0 <= x - col0 < w:
                    out[y - row0, x - col0] = True
    return out


def test_the_mask_is_the_union_of_the_squares() -> None:
    rng = np.random.default_rng(3)
    cover = FootprintCover.of(rng.integers(-20, 90, 12), rng.integers(-20, 90, 12),
                              rng.integers(1, 30, 12))
    for window in ((0, 0, 72, 72), (13, 7, 40, 55), (-10, 50, 30, 30), (200, 200, 8, 8)):
        np.testing.assert_array_equal(cover.mask(*window), _painted(cover, *window),
                                      err_msg=str(window))
    one_size = FootprintCover.of([5, 40], [6, 1], 10)
    assert one_size.sizes == (10, 10)
    assert one_size.block_mask(Block(0, 0, 64, 64)).sum() == 200


def _sparse_cover() -> FootprintCover:
    """Squares of 6 px every 15 px: most of the block is not covered, and the cover has
    many edges, where a too small classification reach would show."""
    cols, rows = np.meshgrid(np.arange(2, 72, 15), np.arange(4, 72, 15))
    return FootprintCover.of(cols.ravel(), rows.ravel(), 6)


@pytest.mark.parametrize("recipe", [
    Recipe(),
    Recipe(cloud_preset="s2cloudless", cloud_average_over=1, cloud_dilation_size=1),
    Recipe(cloud_average_over=4, cloud_dilation_size=2),
    Recipe(shadow_mask=True),
    Recipe(cloud_grid_factor=3),
], ids=["gee", "s2cloudless", "average4-dilation2", "shadows", "cells3"])
def test_the_covered_pixels_are_those_of_the_whole_block(
        equivalence_archive: Path, recipe: Recipe) -> None:
    cover = _sparse_cover()
    keep = cover.block_mask(BLOCK)
    whole_src = local_source(equivalence_archive)
    whole = whole_src.fetch_block("eq", GRID, BLOCK, L2A_MONTH, recipe)
    part_src = local_source(equivalence_archive)
    part = part_src.fetch_block("eq", GRID, BLOCK, L2A_MONTH, recipe, keep)
    np.testing.assert_array_equal(part.s2[:, keep], whole.s2[:, keep])
    np.testing.assert_array_equal(part.s2_count[keep], whole.s2_count[keep])
    np.testing.assert_array_equal(part.s1[:, keep], whole.s1[:, keep])
    counts = whole.s2_count[keep]
    assert counts.min() < counts.max(), "no cloud edge crosses the covered pixels"
    # fewer predictions, unless the reach covers the block (the shadows' 1 km)
    assert part_src.classified_pixels <= whole_src.classified_pixels
    if recipe.cloud_average_over + recipe.cloud_dilation_size <= 2 and not recipe.shadow_mask:
        assert part_src.classified_pixels < 0.8 * whole_src.classified_pixels


def test_shadows_from_clouds_off_the_cover_are_kept(
        equivalence_archive: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The shadows' reach: with a 200 m projection (20 px, inside the 72 px test grid; the
    real 1 km reach covers the whole grid) clouds off the cover cast shadows onto it, and
    the covered pixels still equal classifying the whole block."""
    import pipeline.sentinel.compositor as compositor

    monkeypatch.setattr(compositor, "SHADOW_DISTANCE_M", 200.0)
    keep = _sparse_cover().block_mask(BLOCK)
    shadows = Recipe(shadow_mask=True)
    whole = local_source(equivalence_archive).fetch_block("eq", GRID, BLOCK, L2A_MONTH, shadows)
    plain = local_source(equivalence_archive).fetch_block("eq", GRID, BLOCK, L2A_MONTH, Recipe())
    assert (whole.s2_count != plain.s2_count)[keep].sum() > 20  # shadows on the cover
    part_src = local_source(equivalence_archive)
    part = part_src.fetch_block("eq", GRID, BLOCK, L2A_MONTH, shadows, keep)
    np.testing.assert_array_equal(part.s2_count[keep], whole.s2_count[keep])
    np.testing.assert_array_equal(part.s2[:, keep], whole.s2[:, keep])


def test_the_reach_is_exactly_the_post_processing_disks(
        equivalence_archive: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A designed probability makes one covered pixel's mask depend on the one pixel at the
    reach's edge (average 4 + dilation 2 = 6 px off the cover): probability 1 on exactly the
    averaging disk of Q, 2 px right of the cover's edge pixel P, and a 98 % threshold that only
    the full disk passes (48 / 49 < 0.98). Q is then cloudy, and dilates onto P, only when the
    disk's far pixel F, 6 px off the cover, is classified: a reach one pixel short leaves P
    clear where the whole block masks it."""
    from pipeline.sentinel.cloud_probability import CloudDetector

    recipe = Recipe(cloud_average_over=4, cloud_dilation_size=2,
                    cloud_probability_threshold=98)
    halo = 6
    # the cover: one 10 px footprint, grid cols / rows 30..39; P = (col 39, row 35)
    cover = FootprintCover.of([30], [30], 10)
    keep = cover.block_mask(BLOCK)
    qc, qr = 39 + 2, 35  # Q
    assert qc + 4 - 39 == halo  # F = (45, 35), the disk's far pixel, lies on the reach's edge

    def designed(self: CloudDetector, bands: np.ndarray, valid: np.ndarray) -> np.ndarray:
        # the block is the whole 72 px test grid: the classified window is it grown by the
        # halo on every side
        h, w = bands.shape[1:]
        off = (h - BLOCK.height) // 2
        assert (h, w) == (BLOCK.height + 2 * off, BLOCK.width + 2 * off)
        yy, xx = np.mgrid[0:h, 0:w] - off
        field = (((xx - qc) ** 2 + (yy - qr) ** 2) <= 16).astype(np.float32)
        assert field.sum() == 49
        return np.where(valid, field, np.float32(np.nan))

    monkeypatch.setattr(CloudDetector, "probability", designed)
    whole = local_source(equivalence_archive).fetch_block("eq", GRID, BLOCK, L2A_MONTH, recipe)
    part = local_source(equivalence_archive).fetch_block("eq", GRID, BLOCK, L2A_MONTH, recipe,
                                                         keep)
    # Q's dilation disk is masked in every scene of the whole block, P with it; its
    # neighbour 3 px from Q is not; the cover gives the same counts
    assert whole.s2_count[35, 39] == 0 and whole.s2_count[35, 38] > 0
    assert whole.s2_count[keep].sum() > 0
    np.testing.assert_array_equal(part.s2_count[keep], whole.s2_count[keep])


def test_the_gee_preset_classifies_only_covered_pixels(equivalence_archive: Path) -> None:
    """No post-processing, no shadows: the covered pixels are all that is classified."""
    cover = _sparse_cover()
    keep = cover.block_mask(BLOCK)
    src = local_source(equivalence_archive)
    scenes = [s for s in src.provider.list_s2(L2A_MONTH, GRID) if "L1C" in s.products]
    src.fetch_block("eq", GRID, BLOCK, L2A_MONTH, Recipe(), keep)
    assert src.classified_pixels <= len(scenes) * int(keep.sum())
    assert src.classified_pixels >= int(keep.sum())


def test_the_plan_keeps_its_cover() -> None:
    grid = AoiGrid(epsg=32649, res_m=10.0, x0=0.0, y0=0.0, width=200, height=200)
    col0, row0 = np.array([3, 120]), np.array([9, 150])
    plan = BlockPlan("a", grid, 128, 64, tuple(plan_blocks(grid, col0, row0, 20, 128, 64)),
                     FootprintCover.of(col0, row0, 20))
    back = BlockPlan.from_dict(plan.to_dict())
    assert back == plan and back.cover == FootprintCover((3, 120), (9, 150), (20, 20))
    old = plan.to_dict()
    del old["cover"]  # a plan written before the cover was recorded keeps every pixel
    assert BlockPlan.from_dict(old).cover is None


def test_the_ledger_key_names_the_covered_pixels() -> None:
    key = recipe_key(Recipe())
    block = Block(0, 0, 64, 64)
    assert block_cover(None, block, key) == (key, None)
    full = FootprintCover.of([-5], [-5], 80)
    assert block_cover(full, block, key) == (key, None)  # covered entirely: the plain key
    a_key, a = block_cover(FootprintCover.of([0], [0], 20), block, key)
    b_key, b = block_cover(FootprintCover.of([1], [0], 20), block, key)
    assert a is not None and b is not None and int(a.sum()) == int(b.sum()) == 400
    assert len({key, a_key, b_key}) == 3
    assert block_cover(FootprintCover.of([0, 0], [0, 10], 20), block, key)[0] != a_key
    assert block_cover(FootprintCover.of([0], [0], 20), block, key)[0] == a_key
