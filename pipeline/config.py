"""The single configuration schema (pydantic v2).

``config/config.yaml`` documents every default; ``config/schema.json`` is generated from the
models here (``python -m pipeline.config --write-schema``). Unknown keys are rejected with
their dotted name, ranges are checked, and the Snakefile validates the merged config
(``--config`` overrides included) at parse time via :func:`load_config`.

AOI definitions (``aoi/*.yaml``) are validated by :class:`pipeline.aoi.AoiSpec`.

Each Snakemake rule receives only its own section (``cfg.section("tile")``) so that changing,
say, training settings does not re-run tiling.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import BaseModel, Field, ValidationError, field_validator

from pipeline.config_sections import (
    EXECUTION,
    MONTH_RE,
    SLUG_RE,
    ChangeConfig,
    DaskConfig,
    DemoConfig,
    ExpandConfig,
    ExportConfig,
    FootprintsConfig,
    LabelsConfig,
    ReportConfig,
    SplitRatios,
    SplitsConfig,
    TileConfig,
    _check_slug,
    _format_validation_error,
    _Model,
    check_path_component,
    is_execution,
    output_settings,
)
from pipeline.config_sentinel import GeeConfig, SentinelConfig
from pipeline.config_train import TrainConfig
from pipeline.errors import ConfigError

if TYPE_CHECKING:
    from pipeline.aoi import AoiSpec


__all__ = [
    "EXECUTION",
    "MONTH_RE",
    "SLUG_RE",
    "ChangeConfig",
    "Config",
    "DaskConfig",
    "DemoConfig",
    "ExpandConfig",
    "ExportConfig",
    "FootprintsConfig",
    "GeeConfig",
    "LabelsConfig",
    "ReportConfig",
    "SentinelConfig",
    "SplitRatios",
    "SplitsConfig",
    "TileConfig",
    "TrainConfig",
    "check_buildable",
    "check_path_component",
    "check_sources",
    "is_execution",
    "json_schema",
    "load_config",
    "output_settings",
    "parse_section",
    "section_model",
]


class Config(_Model):
    """Top-level configuration. Every key is documented in config/config.yaml."""

    dataset: str = Field(
        default="demo", description="Dataset name: outputs go to results_dir/dataset."
    )
    results_dir: str = Field(default="results")
    verify_checksums: bool = Field(
        default=False,
        description="At the start of a run, check the SHA-256 of every file the stages recorded "
        "(not only sizes and modification times) and rebuild the stages whose files changed; "
        "reads the whole dataset once (about 1 GB/s), so it is off by default. Files are "
        "always checked against their checksum when the next stage reads them.",
    )
    aois: list[str] = Field(
        default_factory=lambda: ["aoi/demo.yaml"], description="AOI definition files."
    )
    demo: DemoConfig = DemoConfig()
    tile: TileConfig = TileConfig()
    footprints: FootprintsConfig = FootprintsConfig()
    labels: LabelsConfig = LabelsConfig()
    change: ChangeConfig = ChangeConfig()
    sentinel: SentinelConfig = SentinelConfig()
    splits: SplitsConfig = SplitsConfig()
    export: ExportConfig = ExportConfig()
    report: ReportConfig = ReportConfig()
    train: TrainConfig = TrainConfig()
    expand: ExpandConfig = ExpandConfig()
    dask: DaskConfig = DaskConfig()

    @field_validator("dataset")
    @classmethod
    def _slug(cls, v: str) -> str:
        return _check_slug(v, "dataset name")

    @field_validator("aois")
    @classmethod
    def _non_empty(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("aois must list at least one AOI definition file")
        return v

    def section(self, name: str) -> dict[str, Any]:
        """One section as a plain dict for a rule's ``params``: the settings that decide the
        rule's output bytes (execution settings such as Earth Engine concurrency, retries and
        timeouts are left out, so changing them reruns nothing). Stages read the settings
        themselves from the validated workflow config."""
        return output_settings(getattr(self, name))

    @property
    def out_dir(self) -> Path:
        return Path(self.results_dir) / self.dataset


# --------------------------------------------------------------------------- loading


def load_config(raw: dict[str, Any] | None, where: str = "configuration") -> Config:
    """Validate a merged config dict (config.yaml + --config overrides).

    Raises:
        ConfigError: naming each offending key.
    """
    try:
        return Config.model_validate(raw or {})
    except ValidationError as err:
        raise ConfigError(_format_validation_error(err, where)) from None


def check_buildable(cfg: Config, aois: dict[str, AoiSpec], files: dict[str, str]) -> list[str]:
    """Parse-time check that the run builds something: template AOIs (``template: true``, the
    FUSU districts without imagery) build nothing; a run whose every AOI is a template and that
    has no expansion would end "done" with nothing built, so it is refused.

    Returns:
        Warning lines, one per template AOI of a run that builds other AOIs or an expansion.

    Raises:
        ConfigError: every AOI is a template and ``expand.adapter`` is unset.
    """
    templates = [n for n, spec in aois.items() if spec.template]
    if not templates:
        return []
    listed = ", ".join(f"{n!r} ({files.get(n, '?')})" for n in templates)
    todo = ("fill in 'images' and 'annotations' with your own data and set 'template: false'; "
            "or plan its Sentinel series without imagery: .venv/bin/snakemake --cores all "
            f"--config 'aois=[{files.get(templates[0], 'aoi/fusu-beilin.yaml')}]' "
            f"'expand={{adapter: aoi, path: {files.get(templates[0], 'aoi/fusu-beilin.yaml')}, "
            "plan_only: true}'")
    if len(templates) == len(aois) and cfg.expand.adapter is None:
        raise ConfigError(f"every AOI of this run is a template and builds nothing: {listed}. "
                          f"To build one, {todo}")
    return [f"AOI {n!r} ({files.get(n, '?')}) is a template: nothing is built for it "
            "(fill in 'images' and 'annotations' and set 'template: false' to build it)"
            for n in templates]


def check_sources(cfg: Config, aois: dict[str, AoiSpec], files: dict[str, str]) -> None:
    """Parse-time checks of what the Sentinel rules will need, so that a build does not fail
    only after tile, footprints and sentinel_init have run.

    Args:
        cfg: the validated configuration.
        aois: the AOI table ``{name: AoiSpec}``.
        files: ``{name: AOI definition file}`` (for messages).

    Raises:
        ConfigError: an unavailable source, or a local-source AOI (or expansion) without a
            scene archive, or with one that does not exist.
    """
    src = cfg.sentinel.source
    if src == "stac":
        _check_stac(cfg, aois, files)
        return
    if src != "local":
        return
    if cfg.sentinel.s2_mask == "cloud_score_plus":
        raise ConfigError(
            "sentinel.s2_mask 'cloud_score_plus' exists only on Earth Engine: with "
            "sentinel.source 'local' use 's2cloudless' (L1C bands, SCL for L2A-only scenes) or "
            "'scl'"
        )
    for name, spec in aois.items():
        if spec.template or spec.generated:  # templates build nothing; the demo makes its own
            continue
        where = f"AOI {name!r} ({files.get(name, '?')})"
        if not spec.sentinel_archive:
            raise ConfigError(
                f"{where}: sentinel.source is 'local' but the AOI has no 'sentinel_archive': "
                "point it at a scene archive (docs/sources.md) or set sentinel.source: gee"
            )
        if not Path(spec.sentinel_archive).is_dir():
            raise ConfigError(
                f"{where}: sentinel_archive {spec.sentinel_archive} does not exist: fix the path "
                "(relative to the directory snakemake runs in)"
            )
    x = cfg.expand
    if x.adapter is not None and not x.plan_only:
        if not x.sentinel_archive:
            raise ConfigError(
                "expand: sentinel.source is 'local' but expand.sentinel_archive is not set: "
                "point it at a scene archive, set expand.plan_only: true, or use "
                "sentinel.source: gee"
            )
        if not Path(x.sentinel_archive).is_dir():
            raise ConfigError(
                f"expand.sentinel_archive {x.sentinel_archive} does not exist: fix the path"
            )


def _check_stac(cfg: Config, aois: dict[str, AoiSpec], files: dict[str, str]) -> None:
    """Parse-time checks of a ``stac`` build: what only Earth Engine has, and AOI archives that
    are not static catalogues."""
    st = cfg.sentinel
    if st.s2_mask == "cloud_score_plus":
        raise ConfigError(
            "sentinel.s2_mask 'cloud_score_plus' exists only on Earth Engine: with "
            "sentinel.source 'stac' use 's2cloudless' (L1C items, SCL for L2A-only ones) or 'scl'"
        )
    from pipeline.io.stac_catalog import locate_catalogue

    for name, spec in aois.items():
        if spec.template or spec.generated:
            continue
        locate_catalogue(st.stac.url, spec.sentinel_archive,
                         f"AOI {name!r} ({files.get(name, '?')})")


def section_model(name: str) -> type[BaseModel]:
    """The pydantic model of a top-level section (used by stages to re-validate params)."""
    return Config.model_fields[name].annotation  # type: ignore[return-value]


def parse_section(name: str, raw: dict[str, Any]) -> Any:
    """Validate one section dict as received in a rule's params."""
    model = section_model(name)
    try:
        return model.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(_format_validation_error(err, f"config section '{name}'")) from None


def json_schema() -> dict[str, Any]:
    """The JSON schema of :class:`Config` (written to config/schema.json)."""
    return Config.model_json_schema()


Month = Annotated[str, Field(pattern=MONTH_RE.pattern)]


if __name__ == "__main__":  # pragma: no cover - tiny CLI
    import sys

    if "--write-schema" in sys.argv:
        from pipeline.io.atomic import write_text_atomic

        out = Path("config/schema.json")
        write_text_atomic(out, json.dumps(json_schema(), indent=2) + "\n")
        print(f"wrote {out}")
