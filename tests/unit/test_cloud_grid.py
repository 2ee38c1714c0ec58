"""``sentinel.cloud_grid_factor``: s2cloudless once per f x f cell (the speed option of the scene
sources), checked against an independent computation of the cells on the cross-source archive's
realistic clouds; the default stays per pixel with unchanged ledger keys; the option is refused
where it cannot mean anything (Earth Engine, non-s2cloudless masks)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from pipeline.config import SentinelConfig
from pipeline.io.digest import json_digest
from pipeline.sentinel.cloud_probability import S2CLOUDLESS_BANDS, CloudDetector
from pipeline.sentinel.compositor import frame_pad, read_window_on_grid
from pipeline.sentinel.fetch import recipe_key
from pipeline.sentinel.model import Block, Recipe
from pipeline.sentinel.sources.local import local_source
from tests.equivalence_helpers import GRID, L2A_MONTH

BLOCK = Block(col0=8, row0=16, width=56, height=48)


def _expected_clear(archive: Path, scene_id: str, f: int, threshold: int = 40) -> np.ndarray:
    """The block's clear mask of one scene with f x f cells, computed here cell by cell: the
    mean of each cell's valid 10 m pixels (cells anchored at the frame's origin), one
    prediction per cell, whole percent > threshold = cloud."""
    src = local_source(archive)
    scene = next(s for s in src.provider.list_s2(L2A_MONTH, GRID) if s.id == scene_id)
    m = frame_pad(GRID)
    # the whole frame, so every cell is whole (or cut by the frame's edge only)
    dn, valid = read_window_on_grid([scene.file("L1C", b) for b in S2CLOUDLESS_BANDS], GRID,
                                    -m, -m, GRID.width + 2 * m, GRID.height + 2 * m,
                                    "bilinear", nodata=0)
    ok = valid.all(axis=0)
    refl = (dn + scene.offsets.get("L1C", 0.0)) / np.float32(10000.0)
    det = CloudDetector()
    cloud = np.zeros(ok.shape, bool)
    for r in range(0, ok.shape[0], f):
        for c in range(0, ok.shape[1], f):
            cell = ok[r:r + f, c:c + f]
            if not cell.any():
                continue
            mean = refl[:, r:r + f, c:c + f][:, cell].astype(np.float64).mean(axis=1)
            p = det.probability(mean.astype(np.float32)[:, None, None], np.ones((1, 1), bool))
            cloud[r:r + f, c:c + f] = np.rint(p[0, 0] * 100.0) > threshold
    inner = (slice(m + BLOCK.row0, m + BLOCK.row0 + BLOCK.height),
             slice(m + BLOCK.col0, m + BLOCK.col0 + BLOCK.width))
    return (ok & ~cloud)[inner]


@pytest.mark.parametrize("f", [2, 3])
def test_cells_classify_the_mean_of_their_pixels_once(equivalence_archive: Path, f: int) -> None:
    src = local_source(equivalence_archive)
    recipe = Recipe(cloud_grid_factor=f)
    scenes = [s for s in src.provider.list_s2(L2A_MONTH, GRID) if "L1C" in s.products]
    cloudy_scene = None
    for sc in scenes:
        stats = {"requests": 0, "bytes": 0, "retries": 0}
        got = src._clear_mask(GRID, BLOCK, sc, recipe, stats)
        want = _expected_clear(equivalence_archive, sc.id, f)
        assert got is not None
        np.testing.assert_array_equal(got, want, err_msg=f"{sc.id} f={f}")
        if 0 < want.mean() < 0.95:
            cloudy_scene = sc.id
    assert cloudy_scene is not None, "the archive has no partly cloudy scene on the block"
    # one prediction per cell: about f*f fewer than the block's valid pixels
    per_pixel = local_source(equivalence_archive)
    for sc in scenes:
        per_pixel._clear_mask(GRID, BLOCK, sc, Recipe(), {"requests": 0, "bytes": 0,
                                                         "retries": 0})
    assert src.classified_pixels * f * f <= per_pixel.classified_pixels * 1.35
    assert src.classified_pixels * f * f >= per_pixel.classified_pixels


def test_cell_masks_do_not_depend_on_the_block_plan(equivalence_archive: Path) -> None:
    """Blocks that start inside a cell read from the cell's corner: one block or two give the
    same bytes, shadows on (their 1 km halo reaches across the neighbour)."""
    recipe = Recipe(cloud_grid_factor=3, shadow_mask=True)
    whole = local_source(equivalence_archive).fetch_block("eq", GRID, Block(0, 0, 72, 72),
                                                          L2A_MONTH, recipe)
    src = local_source(equivalence_archive)
    parts = [src.fetch_block("eq", GRID, Block(c, 0, w, 72), L2A_MONTH, recipe)
             for c, w in ((0, 37), (37, 35))]  # 37: not a multiple of 3
    np.testing.assert_array_equal(np.concatenate([p.s2_count for p in parts], axis=1),
                                  whole.s2_count)
    np.testing.assert_array_equal(np.concatenate([p.s2 for p in parts], axis=2), whole.s2)


def test_the_option_changes_some_pixels_and_the_default_none(equivalence_archive: Path) -> None:
    """f = 2 is a different (coarser) mask, not the per-pixel one under another name; the
    default is the per-pixel recipe that Earth Engine's equivalence test checks."""
    a = local_source(equivalence_archive).fetch_block("eq", GRID, BLOCK, L2A_MONTH, Recipe())
    b = local_source(equivalence_archive).fetch_block(
        "eq", GRID, BLOCK, L2A_MONTH, Recipe(cloud_grid_factor=2))
    differ = a.s2_count != b.s2_count
    assert 0 < differ.mean() < 0.15
    assert Recipe.from_config(SentinelConfig().model_dump()).cloud_grid_factor == 1


def test_ledger_keys_of_the_default_recipe_are_unchanged() -> None:
    """Months finished before the option existed are not refetched: the key of the default
    recipe is the key without the field; setting it changes the key."""
    rec = dataclasses.asdict(Recipe())
    del rec["cloud_grid_factor"]
    ident = {"source": "local", "archive": "/a"}
    assert recipe_key(Recipe(), ident) == json_digest({"recipe": rec, "source": ident}, 16)
    assert recipe_key(Recipe(cloud_grid_factor=2), ident) != recipe_key(Recipe(), ident)


@pytest.mark.parametrize("kw, needle", [
    ({"source": "gee", "cloud_grid_factor": 2}, "S2_CLOUD_PROBABILITY"),
    ({"source": "stac", "s2_mask": "scl", "cloud_grid_factor": 3}, "s2cloudless only"),
    ({"source": "stac", "cloud_grid_factor": 4}, "cloud_grid_factor"),
])
def test_the_option_is_refused_where_it_means_nothing(kw: dict[str, object],
                                                      needle: str) -> None:
    with pytest.raises(ValueError, match=needle):
        SentinelConfig(**kw)
    SentinelConfig(source="stac", cloud_grid_factor=6)
    # snakemake --config sentinel='{cloud_grid_factor: 2}' hands the value over as text
    assert SentinelConfig.model_validate({"cloud_grid_factor": "2"}).cloud_grid_factor == 2
