"""Class schema: the bundled FUSU schema, lookups, colour table and schema validation."""

from __future__ import annotations

import copy

import pytest
import yaml

from pipeline.classes import (
    load_schema,
    normalize_token,
    schema_from_dict,
    schema_path,
)
from pipeline.errors import ConfigError

PAPER_NAMES = [
    "Background",
    "Traffic land",
    "Inland water",
    "Residential land",
    "Cropland",
    "Agriculture construction",
    "Blank",
    "Industrial land",
    "Orchard",
    "Park",
    "Public management",
    "Commercial land",
    "Public construction",
    "Special land",
    "Forest",
    "Storage",
    "Wetland",
    "Grass",
]


@pytest.fixture(scope="module")
def raw() -> dict:
    return yaml.safe_load(schema_path("fusu17").read_text())


def test_fusu17_values_and_paper_names() -> None:
    s = load_schema("fusu17")
    assert s.n_classes == 18
    assert s.values == list(range(18))
    assert s.names == PAPER_NAMES  # paper Table 2 / 9: 8 = Orchard, 9 = Park
    assert (s.background, s.nodata) == (0, 255)
    assert s.name_of(255) == "No data"
    with pytest.raises(KeyError):
        s.name_of(18)


def test_fusu17_colours_readme_palette_with_514_clamped() -> None:
    s = load_schema()
    colours = [c.color for c in s.classes]
    assert len(set(colours)) == 18
    assert all(0 <= v <= 255 for col in colours for v in col)
    assert s.classes[2].color == (8, 255, 230)  # README PALETTE [8, 514, 230], clamped
    assert s.classes[0].color == (255, 255, 255)
    assert s.classes[17].color == (18, 227, 180)


def test_descriptions_from_table9() -> None:
    s = load_schema()
    assert all(c.description for c in s.classes)
    assert "nurseries" in s.classes[8].description  # orchard
    assert "parks" in s.classes[9].description


def test_colormap_for_rasterio() -> None:
    cmap = load_schema().colormap()
    assert set(cmap) == set(range(18)) | {255}
    assert cmap[3] == (255, 0, 30, 255)
    assert cmap[255][3] == 0  # no data transparent


def test_value_of_names_aliases_case_insensitive() -> None:
    s = load_schema()
    assert s.value_of("orchard") == 8
    assert s.value_of("  PARK ") == 9
    assert s.value_of("public management and service") == 10  # README / code spelling
    assert s.value_of("special") == 13
    assert s.value_of("Inland_Water") == 2
    with pytest.raises(KeyError):
        s.value_of("greenbelt")


def test_resolve_codes_and_names() -> None:
    s = load_schema()
    assert s.resolve(3) == 3
    assert s.resolve(3.0) == 3
    assert s.resolve("03") == 3
    assert s.resolve("17.0") == 17
    assert s.resolve("Grass") == 17
    assert s.resolve(255) == 255
    assert s.resolve(18) is None
    assert s.resolve(-1) is None
    assert s.resolve("3.5") is None
    assert s.resolve(None) is None
    assert s.resolve(float("nan")) is None
    assert s.resolve("") is None


def test_normalize_token() -> None:
    assert normalize_token(True) == "1"
    assert normalize_token(7.0) == "7"
    assert normalize_token(" Traffic  Land ") == "traffic land"
    assert normalize_token("  ") is None
    assert normalize_token("nan") is None


def test_priority_is_permutation() -> None:
    s = load_schema()
    assert sorted(s.priority) == s.values
    assert s.priority_rank()[1] == 0


def test_unknown_schema_id() -> None:
    with pytest.raises(ConfigError, match=r"fusu17"):
        load_schema("nope")


@pytest.mark.parametrize(
    "mutate, match",
    [
        (lambda r: r["classes"][2].update(color=[8, 514, 230]), "0..255"),
        (lambda r: r["classes"][3].update(value=2), "contiguous"),
        (lambda r: r["classes"].pop(5), "contiguous"),
        (lambda r: r["classes"][4].update(name="Park"), "unique"),
        (lambda r: r["classes"][4].update(aliases=["orchard"]), "unique"),
        (lambda r: r["classes"][4].update(name="12"), "number"),
        (lambda r: r.update(nodata=17), "nodata"),
        (lambda r: r.update(background=99), "background"),
        (lambda r: r.update(priority=[0, 1, 2]), "priority"),
        (lambda r: r["classes"][1].pop("color"), "needs"),
        (lambda r: r["classes"][1].update(value=300), "0..254"),
        (lambda r: r.pop("classes"), "classes"),
    ],
)
def test_schema_validation_errors(raw: dict, mutate, match: str) -> None:
    bad = copy.deepcopy(raw)
    mutate(bad)
    with pytest.raises(ConfigError, match=match):
        schema_from_dict(bad, where="test schema")


def test_schema_roundtrip_valid(raw: dict) -> None:
    s = schema_from_dict(copy.deepcopy(raw), where="x")
    assert s == load_schema("fusu17")
