"""The value objects and single policies that replaced loose arguments: FootprintRule,
BlockPlan, the block-size policy, the source factory, and the error kinds (each also a
builtin)."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest

from pipeline.config import FootprintsConfig, SentinelConfig
from pipeline.errors import (
    ConfigError,
    DatasetError,
    GridError,
    InputError,
    MissingInputError,
    PipelineError,
    SourceError,
)
from pipeline.grid import AoiGrid, FootprintRule
from pipeline.io.mosaic import CHUNK_PX
from pipeline.sentinel.blocks import (
    OFFLINE_BLOCK_PX,
    REQUEST_BYTES_PER_PX,
    BlockPlan,
    block_side_px,
    block_size_px,
    plan_blocks,
)
from pipeline.sentinel.sources import make_source

GRID = AoiGrid(epsg=32649, res_m=10.0, x0=650040.0, y0=3795060.0, width=300, height=200)


def test_footprint_rule_from_config_round_trip_and_sizes() -> None:
    rule = FootprintRule.from_config(FootprintsConfig(scale=3.0, size_m=None))
    assert rule == FootprintRule(scale=3.0)
    assert FootprintRule.from_dict(json.loads(json.dumps(rule.to_dict()))) == rule
    assert FootprintRule().side_px(512, 0.5) == 128  # FUSU: 5 x 512 px x 0.5 m / 10 m
    assert FootprintRule(size_m=1000.0).side_px(512, 0.5) == 100
    assert FootprintRule(size_px=7, size_m=1000.0).side_px(512, 0.5) == 7
    with pytest.raises(GridError):
        FootprintRule(scale=1.0).side_px(16, 0.1)
    text = FootprintRule().describe(128, 512, 0.5)
    assert "round(5 x 512 x 0.5 / 10) = 128" in text and "multiple of 60 m" in text


def test_block_plan_round_trip_is_blocks_json() -> None:
    blocks = plan_blocks(GRID, np.array([0, 150]), np.array([0, 100]), 64, 128)
    plan = BlockPlan("xian", GRID, 128, CHUNK_PX, tuple(blocks))
    doc = json.loads(json.dumps(plan.to_dict()))
    assert sorted(doc) == ["aoi", "block_px", "blocks", "chunk_px", "grid"]
    assert doc["blocks"][0] == {"id": blocks[0].id, "col0": blocks[0].col0,
                                "row0": blocks[0].row0, "width": blocks[0].width,
                                "height": blocks[0].height}
    assert BlockPlan.from_dict(doc) == plan
    assert plan.n_pixels == sum(b.width * b.height for b in blocks) > 0


def test_one_block_size_policy() -> None:
    assert block_side_px(SentinelConfig(source="local")) == OFFLINE_BLOCK_PX == 256
    gee = SentinelConfig(source="gee")
    assert block_side_px(gee) == block_size_px(REQUEST_BYTES_PER_PX,
                                               gee.gee.max_block_bytes) == 640
    assert block_side_px(SentinelConfig(source="gee", block_size_px=192)) == 192
    with pytest.raises(ConfigError, match="multiple of the mosaic chunk"):
        block_side_px(SentinelConfig(source="local", block_size_px=100))


def test_one_source_factory_for_aois_and_expansions(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"AOI demo: sentinel\.source is 'local'"):
        make_source(SentinelConfig(source="local"), None, "AOI demo")
    with pytest.raises(ConfigError, match=r"holds no catalog\.json"):
        make_source(SentinelConfig(source="stac"), str(tmp_path), "expand")
    (tmp_path / "catalog.json").write_text(json.dumps(
        {"type": "Catalog", "id": "x", "stac_version": "1.0.0", "description": "x",
         "links": []}))
    stac = make_source(SentinelConfig(source="stac"), str(tmp_path), "expand")
    assert type(stac).__name__ == "Compositor" and type(stac.provider).__name__ == "StacCatalog"
    assert stac.provider.catalog.endswith("catalog.json")
    src = make_source(SentinelConfig(source="local"), str(tmp_path), "expand")
    assert type(src).__name__ == "Compositor" and type(src.provider).__name__ == "LocalArchive"
    src.close()


def test_errors_are_also_builtins(tmp_path: Path) -> None:
    from pipeline.io.geotiff import read_patch, write_patch_tif
    from pipeline.io.jsonfile import read_json
    from pipeline.io.parquet import read_geoparquet

    assert issubclass(ConfigError, ValueError) and issubclass(InputError, ValueError)
    assert issubclass(MissingInputError, FileNotFoundError)
    assert issubclass(MissingInputError, InputError)
    assert issubclass(SourceError, RuntimeError) and issubclass(DatasetError, RuntimeError)
    assert all(issubclass(e, PipelineError) for e in (ConfigError, InputError, SourceError))
    missing = tmp_path / "nope.json"
    for read in (read_json, read_geoparquet, read_patch):
        with pytest.raises(FileNotFoundError, match="nope") as info:
            read(missing)
        assert isinstance(info.value, MissingInputError) and info.value.filename == str(missing)
    err = pickle.loads(pickle.dumps(MissingInputError("x is missing: run y", "/a")))
    assert str(err) == "x is missing: run y" and err.filename == "/a"
    # a truncated patch GeoTIFF is an InputError naming the file, not a FileNotFoundError
    from affine import Affine

    p = write_patch_tif(tmp_path / "p.tif", np.ones((1, 32, 32), np.uint8),
                        Affine(1, 0, 0, 0, -1, 0), "EPSG:32649", 255)
    p.write_bytes(p.read_bytes()[:200])
    with pytest.raises(InputError, match=r"p\.tif") as info2:
        read_patch(p, "T1 label")
    assert not isinstance(info2.value, FileNotFoundError)
