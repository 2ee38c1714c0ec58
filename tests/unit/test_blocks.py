"""Tests of the block planner (pipeline/sentinel/blocks.py)."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.errors import GridError
from pipeline.grid import AoiGrid, union_pixel_count
from pipeline.sentinel.blocks import (
    REQUEST_BYTES_PER_PX,
    block_size_px,
    footprint_union_mask,
    plan_blocks,
    requested_pixels,
)
from pipeline.sentinel.model import Block, blocks_overlap
from tests.fake_ee import fusu_like_footprints


def _check_plan(fp, blocks, block_px, chunk_px=64):
    grid = fp.grid
    mask = footprint_union_mask((grid.height, grid.width), fp.col0, fp.row0, fp.size_px)
    cover = np.zeros_like(mask, dtype=np.int32)
    for b in blocks:
        assert b.col0 >= 0 and b.col0 + b.width <= grid.width
        assert b.row0 >= 0 and b.row0 + b.height <= grid.height
        # inside one lattice cell
        assert b.col0 // block_px == (b.col0 + b.width - 1) // block_px
        assert b.row0 // block_px == (b.row0 + b.height - 1) // block_px
        # chunk aligned (or ending at the grid's far edge)
        assert b.col0 % chunk_px == 0 and b.row0 % chunk_px == 0
        assert (b.col0 + b.width) % chunk_px == 0 or b.col0 + b.width == grid.width
        assert (b.row0 + b.height) % chunk_px == 0 or b.row0 + b.height == grid.height
        cover[b.row0 : b.row0 + b.height, b.col0 : b.col0 + b.width] += 1
    assert cover.max() <= 1, "blocks overlap"
    assert not (mask & (cover == 0)).any(), "a footprint pixel is not covered"
    # no two blocks share a chunk
    owners: dict[tuple[int, int], int] = {}
    for i, b in enumerate(blocks):
        for r in range(b.row0 // chunk_px, (b.row0 + b.height - 1) // chunk_px + 1):
            for c in range(b.col0 // chunk_px, (b.col0 + b.width - 1) // chunk_px + 1):
                assert owners.setdefault((r, c), i) == i
    return requested_pixels(blocks) / mask.sum()


def test_block_size_known_answers():
    # 74 B/px (S2 + S1 in one response, mask bytes counted) at 32 MiB:
    # sqrt((0.95 * 32 MiB - 4096) / 74) = 656 -> 640
    assert REQUEST_BYTES_PER_PX == 74
    assert block_size_px(74, 32 * 1024 * 1024) == 640
    assert block_size_px(62, 32 * 1024 * 1024) == 704
    k = block_size_px(74, 50_331_648)
    assert k % 64 == 0 and k * k * 74 <= 50_331_648 and (k + 64) ** 2 * 74 > 0.95 * 50_331_648
    assert block_size_px(1, 64 * 64 + 10_000, chunk_px=64) == 64
    with pytest.raises(GridError, match="max_block_bytes"):
        block_size_px(62, 100_000)


def test_union_mask_matches_grid_union_count():
    fp = fusu_like_footprints(6, 5)
    mask = footprint_union_mask((fp.grid.height, fp.grid.width), fp.col0, fp.row0, fp.size_px)
    assert mask.sum() == union_pixel_count(fp.col0, fp.row0, fp.size_px, fp.grid)


def test_single_footprint_known_answer():
    grid = AoiGrid(32650, 10.0, 0.0, 0.0, 300, 260)
    blocks = plan_blocks(grid, np.array([70]), np.array([10]), 128, 128)
    # needed chunks: cols 64..255 (chunks 1..3), rows 0..191 (chunks 0..2); lattice cells of
    # 128 px cut them into 4 blocks
    assert blocks == [
        Block(64, 0, 64, 128), Block(128, 0, 128, 128),
        Block(64, 128, 64, 64), Block(128, 128, 128, 64),
    ]
    assert blocks[0].id == "r000000_c000064_128x64"


def test_fusu_like_square_aoi_ratio_and_invariants():
    fp = fusu_like_footprints(40, 40)
    k = block_size_px(REQUEST_BYTES_PER_PX, 32 * 1024 * 1024)
    blocks = plan_blocks(fp.grid, fp.col0, fp.row0, fp.size_px, k)
    ratio = _check_plan(fp, blocks, k)
    assert ratio <= 1.15
    assert len(blocks) == 4  # 2 x 2 lattice cells of 640 px over a 1134 x 1128 px grid
    # deterministic
    assert plan_blocks(fp.grid, fp.col0, fp.row0, fp.size_px, k) == blocks
    assert blocks == sorted(blocks, key=lambda b: (b.row0, b.col0))


@pytest.mark.parametrize(
    "shape",
    ["circle", "holes", "L"],
)
def test_irregular_aois_are_split_to_keep_ratio(shape):
    keep = {
        "circle": lambda i, j: (i - 20) ** 2 + (j - 20) ** 2 < 400,
        "holes": lambda i, j: (i // 8 + j // 8) % 3 != 0,
        "L": lambda i, j: i < 10 or j < 10,
    }[shape]
    fp = fusu_like_footprints(40, 40, keep=keep)
    blocks = plan_blocks(fp.grid, fp.col0, fp.row0, fp.size_px, 704)
    ratio = _check_plan(fp, blocks, 704)
    assert ratio <= 1.15, ratio
    # a bounding-box-per-cell plan would be worse than the split plan
    nosplit = plan_blocks(fp.grid, fp.col0, fp.row0, fp.size_px, 704, request_penalty_px=10**12)
    assert requested_pixels(blocks) <= requested_pixels(nosplit)
    assert not blocks_overlap(blocks[:2])


def test_small_blocks_two_sparse_clusters():
    fp = fusu_like_footprints(3, 3, keep=lambda i, j: (i, j) in {(0, 0), (2, 2)}, spacing_m=2000)
    blocks = plan_blocks(fp.grid, fp.col0, fp.row0, fp.size_px, 256)
    ratio = _check_plan(fp, blocks, 256)
    # two isolated 128 px footprints: nothing between them is requested
    assert requested_pixels(blocks) <= 2 * 192 * 192
    assert ratio < 2.3


def test_bad_block_size():
    fp = fusu_like_footprints(2, 2)
    with pytest.raises(GridError, match="multiple of the mosaic chunk"):
        plan_blocks(fp.grid, fp.col0, fp.row0, fp.size_px, 100)
    assert plan_blocks(fp.grid, np.array([], int), np.array([], int), 128, 128) == []
