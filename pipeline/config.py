"""The single configuration schema (pydantic v2).

``config/config.yaml`` documents every default; ``config/schema.json`` is generated from the
models here (``python -m pipeline.config --write-schema``). Unknown keys are rejected with
their dotted name, ranges are checked, and the Snakefile validates the merged config
(``--config`` overrides included) at parse time via :func:`load_config`.

AOI definitions (``aoi/*.yaml``) are validated by :class:`AoiSpec`.

Each Snakemake rule receives only its own section (``cfg.section("tile")``) so that changing,
say, training settings does not re-run tiling.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from pipeline.errors import ConfigError

SLUG_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
MONTH_RE = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


#: Marks a field as an *execution* setting (how a job runs, not what it writes): such fields
#: are left out of rule params (:meth:`Config.section`), so changing them reruns nothing.
EXECUTION: dict[str, Any] = {"execution": True}


def is_execution(field: Any) -> bool:
    """True when a pydantic field is marked with :data:`EXECUTION`."""
    extra = field.json_schema_extra
    return isinstance(extra, dict) and bool(extra.get("execution"))


def output_settings(model: BaseModel) -> dict[str, Any]:
    """``model`` as a JSON-able dict without its execution settings (recursively): exactly the
    settings that decide the bytes a rule writes."""
    full = model.model_dump(mode="json")
    out: dict[str, Any] = {}
    for name, field in type(model).model_fields.items():
        if is_execution(field):
            continue
        value = getattr(model, name)
        out[name] = output_settings(value) if isinstance(value, BaseModel) else full[name]
    return out


def check_path_component(value: str, what: str) -> str:
    """``value`` if it can be one folder name under ``results/`` (city names become
    ``splits/cities/<city>/``): not empty, no path separator, not ``.``/``..``, no leading dot
    or control characters. Raises ValueError otherwise (pydantic turns it into a ConfigError
    naming the file and key)."""
    bad = (not value.strip() or value in (".", "..") or value.startswith(".")
           or any(c in value for c in "/\\") or any(ord(c) < 32 for c in value))
    if bad:
        raise ValueError(
            f"{what} {value!r} cannot be used as a folder name: no '/', '\\', leading '.' or "
            "'..' (it names splits/cities/<city>/); use e.g. 'xian'"
        )
    return value


def _check_slug(value: str, what: str) -> str:
    if not SLUG_RE.match(value):
        raise ValueError(
            f"{what} {value!r} is not a safe name: use lower-case letters, digits, '-' or '_' "
            "(no spaces or path separators), starting with a letter or digit"
        )
    return value


# --------------------------------------------------------------------------- AOI definitions


class AoiDates(_Model):
    """One path per acquisition date."""

    t1: str
    t2: str


class AoiSpec(_Model):
    """An area of interest: one co-registered HR image pair plus annotations.

    Paths are relative to the working directory (the repository root when run via Snakemake)
    unless absolute. Dates are ISO ``YYYY-MM-DD`` acquisition dates of the HR images; the
    Sentinel series runs over every calendar month from t1's month to t2's month inclusive.
    """

    name: str = Field(description="Safe slug used in file names (a-z, 0-9, '-', '_').")
    city: str = Field(description="City / region name, used for per-city splits and stats.")
    t1: dt.date = Field(description="Acquisition date of the T1 HR image (YYYY-MM-DD).")
    t2: dt.date = Field(description="Acquisition date of the T2 HR image; must be after t1.")
    images: AoiDates | None = Field(
        default=None, description="HR GeoTIFF per date (any CRS). None for plan-only templates."
    )
    annotations: AoiDates | None = Field(
        default=None, description="Annotation polygons per date (GeoPackage, shapefile, GeoJSON)."
    )
    class_attribute: str = Field(
        default="class", description="Polygon attribute holding the class."
    )
    annotation_layer: str | None = Field(
        default=None, description="Layer of multi-layer annotation files (GeoPackage); None = "
        "the file's first polygon layer."
    )
    class_mapping: str | None = Field(
        default=None,
        description="CSV with columns 'source,target' mapping source codes or names to FUSU "
        "values 0..17. None: the attribute already holds FUSU values (or FUSU class names).",
    )
    sentinel_archive: str | None = Field(
        default=None, description="Scene archive folder for the local Sentinel source."
    )
    extent_wgs84: tuple[float, float, float, float] | None = Field(
        default=None,
        description="(west, south, east, north) in degrees; informational for templates and "
        "used by plan-only runs without imagery.",
    )
    template: bool = Field(
        default=False,
        description="True for templates that need the user's own imagery and annotations: "
        "building them fails with a message saying what to provide.",
    )
    generated: bool = Field(
        default=False,
        description="True for the synthetic demo AOI, whose inputs the pipeline makes.",
    )

    @field_validator("name")
    @classmethod
    def _slug(cls, v: str) -> str:
        return _check_slug(v, "AOI name")

    @field_validator("city")
    @classmethod
    def _city(cls, v: str) -> str:
        return check_path_component(v, "AOI city")

    @model_validator(mode="after")
    def _dates(self) -> AoiSpec:
        if self.t2 <= self.t1:
            raise ValueError(
                f"AOI {self.name!r}: t2 ({self.t2}) must be after t1 ({self.t1}); swap them"
            )
        if not self.template and (self.images is None or self.annotations is None):
            raise ValueError(
                f"AOI {self.name!r}: 'images' and 'annotations' (t1 and t2 paths) are required "
                "unless 'template: true'"
            )
        return self

    @property
    def months(self) -> list[str]:
        """Calendar months ``YYYY-MM`` from t1's month to t2's month inclusive."""
        return month_range(self.t1, self.t2)


def month_range(start: dt.date, end: dt.date) -> list[str]:
    """Calendar months ``YYYY-MM`` from ``start``'s month to ``end``'s month inclusive."""
    y, m = start.year, start.month
    out: list[str] = []
    while (y, m) <= (end.year, end.month):
        out.append(f"{y:04d}-{m:02d}")
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    return out


# --------------------------------------------------------------------------- sections


class DemoConfig(_Model):
    """Synthetic demo AOI generated by the pipeline (deterministic)."""

    seed: int = Field(default=20240817, description="Random seed of the generator.")
    size_m: float = Field(
        default=3600.0, ge=600.0, le=40000.0, description="Side of the square city (m)."
    )
    gsd_m: float = Field(default=0.5, gt=0.05, le=5.0, description="HR ground sample distance (m).")
    change_fraction: float = Field(
        default=0.2, ge=0.0, le=0.6, description="Target fraction of the area that changes T1->T2."
    )
    t2_shift_px: tuple[float, float] = Field(
        default=(3.0, -2.0),
        description="T2 grid shift (x, y) in HR pixels, to exercise co-registration.",
    )
    epsg: int = Field(default=32649, description="CRS of the demo imagery (UTM 49N like Xi'an).")
    origin: tuple[float, float] = Field(
        default=(650000.0, 3795000.0), description="Upper-left corner (x, y) of the city in `epsg`."
    )
    s2_acquisitions_per_month: tuple[int, int] = Field(
        default=(2, 6), description="Min/max synthetic S2 acquisitions per month."
    )
    s1_acquisitions_per_month: tuple[int, int] = Field(
        default=(2, 5), description="Min/max synthetic S1 acquisitions per month."
    )


class TileConfig(_Model):
    patch_size_px: int = Field(default=512, ge=16, le=8192, description="Patch side in HR pixels.")
    stride_px: int | None = Field(
        default=None, ge=1, description="Stride; None = patch size (no overlap)."
    )
    max_nodata_fraction: float = Field(
        default=0.05,
        ge=0.0,
        le=1.0,
        description="Skip patches with more no-data than this in either date.",
    )
    coregister_resampling: Literal["nearest", "bilinear", "cubic"] = Field(
        default="bilinear",
        description="Resampling used to bring T2 onto T1's grid when they differ.",
    )
    bands: list[int] | None = Field(
        default=None, min_length=1, max_length=3,
        description="1-based bands of the HR images written to the patches: 3 (e.g. [1, 2, 3], "
        "or [4, 3, 2] for NIR false colour) or 1 (panchromatic, repeated as R=G=B). None: bands "
        "1-3, or band 1 of a single-band image.",
    )
    scale: Literal["percentile", "range"] = Field(
        default="percentile",
        description="How non-8-bit imagery (e.g. 16-bit WorldView / Pleiades) becomes the 8-bit "
        "patches: 'percentile' = per band, scale_percentiles of the T1 image -> 1..255; "
        "'range' = scale_range -> 1..255. Both dates use T1's rule; it is recorded in the tile "
        "index (hr_scale). 8-bit imagery is stored as is.",
    )
    scale_percentiles: tuple[float, float] = Field(default=(2.0, 98.0))
    scale_range: tuple[float, float] | None = Field(
        default=None, description="(low, high) input values for scale: range, e.g. [0, 10000]."
    )
    edge_windows: Literal["pad", "drop"] = Field(
        default="pad",
        description="Windows at the right / bottom image edge that are partly outside the image: "
        "'pad' with no data (kept when at least min_edge_fraction of each side is inside; the "
        "padding counts in nodata_frac but not against max_nodata_fraction), or 'drop' (logged).",
    )
    min_edge_fraction: float = Field(
        default=0.25, gt=0.0, le=1.0,
        description="Share of the patch side that must lie inside the image for a padded edge "
        "window.",
    )
    min_gsd_m: float = Field(
        default=0.02, gt=0.0, description="Refuse HR imagery finer than this (m per pixel).",
    )
    max_gsd_m: float = Field(
        default=5.0, gt=0.0, description="Refuse HR imagery coarser than this (m per pixel); "
        "coarser change datasets go through the expansion path (expand.adapter).",
    )

    @model_validator(mode="after")
    def _gsd_range(self) -> TileConfig:
        if self.min_gsd_m >= self.max_gsd_m:
            raise ValueError("tile.min_gsd_m must be below tile.max_gsd_m")
        if self.bands is not None and (len(self.bands) == 2 or min(self.bands) < 1):
            raise ValueError("tile.bands needs 3 band numbers (>= 1), or 1 for panchromatic")
        if self.scale == "range" and self.scale_range is None:
            raise ValueError("tile.scale: range needs tile.scale_range: [low, high]")
        lo, hi = self.scale_percentiles
        if not 0.0 <= lo < hi <= 100.0:
            raise ValueError("tile.scale_percentiles must be 0 <= low < high <= 100")
        return self


class FootprintsConfig(_Model):
    scale: float = Field(default=5.0, gt=0.0, le=50.0, description="Footprint side / patch side.")
    res_m: float = Field(default=10.0, gt=0.0, description="Sentinel grid resolution (m).")
    origin_multiple_m: float = Field(
        default=60.0, gt=0.0, description="AOI grid origin snapped to a multiple of this (m)."
    )
    size_px: int | None = Field(
        default=None, ge=1, description="Explicit footprint side in grid pixels (overrides scale)."
    )
    size_m: float | None = Field(
        default=None, gt=0.0, description="Explicit footprint side in metres (overrides scale)."
    )
    export_shapefile: bool = Field(
        default=False, description="Also write footprints as ESRI shapefile."
    )

    @model_validator(mode="after")
    def _one_override(self) -> FootprintsConfig:
        if self.size_px is not None and self.size_m is not None:
            raise ValueError("footprints: give at most one of size_px and size_m")
        return self


class LabelsConfig(_Model):
    class_schema: str = Field(
        default="fusu17", description="Class schema id (pipeline/data/<id>.yaml)."
    )

    @field_validator("class_schema")
    @classmethod
    def _schema_id(cls, v: str) -> str:
        return _check_slug(v, "labels.class_schema")

    overlap_rule: Literal["last", "smallest", "priority"] = Field(
        default="smallest",
        description="Where polygons overlap: 'smallest' area wins (ties: later feature), 'last' "
        "feature in file order wins, or 'priority' = class priority list of the schema.",
    )
    unknown_classes: Literal["error", "background"] = Field(
        default="error",
        description="Unknown class values: fail listing them, or map to background (0).",
    )
    all_touched: bool = Field(default=False, description="rasterio all_touched rasterization.")
    min_coverage: float = Field(
        default=0.0, ge=0.0, lt=1.0,
        description="Fail when the share of valid HR pixels that get a class (1..17) is at or "
        "below this, per date (0 = fail only when the polygons cover nothing).",
    )
    warn_coverage: float = Field(
        default=0.01, ge=0.0, le=1.0, description="Warn when the labelled share is below this.",
    )


class ChangeConfig(_Model):
    ignore_background: bool = Field(
        default=True, description="Change = 255 where either date is background (0)."
    )


class GeeConfig(_Model):
    project: str | None = Field(
        default=None,
        description="Earth Engine project id; default from $EE_PROJECT / $GOOGLE_CLOUD_PROJECT.",
        json_schema_extra=EXECUTION,
    )
    concurrency: int = Field(
        default=8, ge=1, le=40, description="Concurrent requests per job (<= 40).",
        json_schema_extra=EXECUTION,
    )
    max_retries: int = Field(default=6, ge=0, le=20, json_schema_extra=EXECUTION)
    backoff_base_s: float = Field(default=1.0, gt=0.0, json_schema_extra=EXECUTION)
    backoff_max_s: float = Field(default=60.0, gt=0.0, json_schema_extra=EXECUTION)
    timeout_s: float = Field(
        default=300.0, gt=0.0, description="Per-request timeout.", json_schema_extra=EXECUTION
    )
    max_block_bytes: int = Field(
        default=32 * 1024 * 1024,
        ge=1024,
        le=50_331_648,
        description="Target uncompressed bytes per computePixels response (EE limit 48 MB).",
    )


class SentinelConfig(_Model):
    source: Literal["local", "gee", "stac"] = Field(
        default="local", description="Where composites come from."
    )
    s2_mask: Literal["s2cloudless", "cloud_score_plus"] = Field(default="s2cloudless")
    cloud_probability_threshold: int = Field(
        default=40,
        ge=0,
        le=100,
        description="Mask S2 pixels with s2cloudless probability above this (%).",
    )
    cloud_score_plus_threshold: float = Field(
        default=0.6, ge=0.0, le=1.0, description="Cloud Score+ 'cs' below this is masked."
    )
    shadow_mask: bool = Field(
        default=False, description="Also mask cloud shadows (projected from clouds)."
    )
    allow_l1c_fallback: bool = Field(
        default=True, description="Months without L2A scenes use L1C (recorded per month)."
    )
    s1_orbit_pass: Literal["ASCENDING", "DESCENDING"] | None = Field(default=None)
    s1_mean: Literal["linear", "db"] = Field(
        default="linear",
        description="Average S1 in linear power then back to dB, or plain dB mean.",
    )
    s2_resampling: Literal["nearest", "bilinear"] = Field(default="nearest")
    block_size_px: int | None = Field(
        default=None,
        ge=16,
        description="Block side in grid px; None = derived from gee.max_block_bytes.",
    )
    gee: GeeConfig = GeeConfig()


class SplitRatios(_Model):
    train: float = Field(default=0.7, ge=0.0, le=1.0)
    val: float = Field(default=0.1, ge=0.0, le=1.0)
    test: float = Field(default=0.2, ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _sum(self) -> SplitRatios:
        total = self.train + self.val + self.test
        if abs(total - 1.0) > 1e-6:
            raise ValueError(
                f"splits.ratios must sum to 1 (got train+val+test = {total:.4f}); adjust them"
            )
        return self


class SplitsConfig(_Model):
    mode: Literal["block", "random"] = Field(
        default="block", description="Leakage-free spatial blocks or FUSU-style random."
    )
    ratios: SplitRatios = SplitRatios()
    block_size_patches: int = Field(
        default=4, ge=1, description="Side of a spatial block in patches."
    )
    guard: bool = Field(
        default=True, description="Drop patches whose footprint would leak across splits."
    )
    seed: int = Field(default=0)


class ExportConfig(_Model):
    fusu_layout: bool = Field(default=False, description="Also export the FUSU release layout.")
    overwrite: bool = Field(
        default=False, description="Allow exporting into a non-empty directory."
    )
    bin_ignore_value: int = Field(
        default=0,
        description="label_bin value of ignored change pixels (FUSU code trains BCE on 0/1: 0; "
        "255 keeps the ignore mask).",
    )

    @field_validator("bin_ignore_value")
    @classmethod
    def _bin_ignore(cls, v: int) -> int:
        if v not in (0, 255):
            raise ValueError("export.bin_ignore_value must be 0 or 255")
        return v


class ReportConfig(_Model):
    n_samples: int = Field(
        default=6, ge=1, le=64, description="Sample patches shown in the QA report."
    )


class TrainConfig(_Model):
    model: Literal["fusunet", "hr_only", "utae"] = Field(default="fusunet")
    months: int | None = Field(
        default=None, ge=0, description="Use the last N months (None = all; 0 = HR only)."
    )
    hrnet: str = Field(
        default="hrnet_w18_small",
        description="timm backbone of the HR branch (any features_only model; HRNet default).",
    )
    pretrained_path: str | None = Field(
        default=None, description="Local weights for the HR backbone (None = random init)."
    )
    epochs: int = Field(default=1, ge=1)
    max_steps: int | None = Field(default=None, ge=1)
    batch_size: int = Field(default=8, ge=1)
    hr_size_px: int | None = Field(
        default=None, ge=32, description="Resize HR inputs (None = native)."
    )
    num_workers: int = Field(default=2, ge=0, json_schema_extra=EXECUTION)
    seg_lr: float = Field(default=0.01, gt=0.0)
    seg_momentum: float = Field(default=0.9, ge=0.0, lt=1.0)
    seg_weight_decay: float = Field(default=1e-4, ge=0.0)
    poly_power: float = Field(default=0.9, ge=0.0)
    change_lr: float = Field(default=3e-4, gt=0.0)
    change_betas: tuple[float, float] = Field(default=(0.5, 0.999))
    change_loss_weight: float = Field(default=2.0, ge=0.0)
    checkpoint_every: int = Field(default=50, ge=1)
    eval_every: int = Field(default=200, ge=1)
    bf16: bool = Field(default=True, description="bf16 autocast on GPU.")
    device: Literal["auto", "cpu", "cuda"] = Field(default="auto")
    tensorboard: bool = Field(default=False, json_schema_extra=EXECUTION)
    seed: int = Field(default=0)
    tiny: bool = Field(default=False, description="Tiny model widths for CPU demo / tests.")
    resume: bool = Field(
        default=True, description="Resume from train/checkpoints/last.pt when it exists."
    )
    augment: bool = Field(
        default=True, description="Random horizontal/vertical flips (both dates, series, box)."
    )
    log_every: int = Field(default=10, ge=1, description="Steps between CSV log rows.")
    max_eval_batches: int | None = Field(
        default=None, ge=1, description="Cap on batches per evaluation (None = whole split)."
    )


class ExpandConfig(_Model):
    """Expansion paradigm: monthly Sentinel-1/2 series around the samples of another change
    dataset (OSCD, SpaceNet 7, a georeferenced pair folder, or a generic patch index).

    Outputs go to ``<results_dir>/<dataset>/expand/`` (see docs/expansion.md); original images
    and labels are referenced, not copied."""

    adapter: Literal["index", "pairs", "oscd", "spacenet7", "aoi"] | None = Field(
        default=None,
        description="Change-dataset adapter: 'index' (GeoParquet/GeoJSON/GPKG/CSV patch index), "
        "'pairs' (folder of georeferenced T1/T2 GeoTIFF pairs + dates file), 'oscd' (OSCD "
        "layout), 'spacenet7' (SpaceNet 7 monthly mosaics), 'aoi' (plan-only synthetic tiling "
        "of AOI templates with extent_wgs84, e.g. aoi/fusu-*.yaml). None = FUSU-style build "
        "from 'aois' (no expansion rules).",
    )
    path: str | None = Field(
        default=None,
        description="Dataset root (folder) or index file; for adapter 'aoi' an AOI YAML file, "
        "folder or glob (e.g. 'aoi/fusu-*.yaml').",
    )
    plan_only: bool = Field(
        default=False,
        description="Write footprints, months and the request plan (blocks, requests, pixels, "
        "EE cost proxy, naive per-footprint numbers) and fetch nothing.",
    )
    copy_originals: bool = Field(
        default=False, description="Copy the original images/labels into expand/originals/."
    )
    group_distance_m: float = Field(
        default=20000.0,
        gt=0.0,
        description="Samples of one UTM zone whose centroids are closer than this (single "
        "linkage) share an AOI grid (and its block fetches).",
    )
    max_group_extent_m: float = Field(
        default=50000.0,
        gt=0.0,
        description="A group wider or taller than this is cut into square cells of this size "
        "(keeps each AOI grid small).",
    )
    sentinel_archive: str | None = Field(
        default=None, description="Scene archive folder for sentinel.source 'local'."
    )
    dates_file: str | None = Field(
        default=None,
        description="Adapter 'pairs': dates CSV/JSON (default: dates.csv or dates.json in the "
        "folder). CSV columns id,t1,t2 (id '*' = every pair).",
    )
    oscd_change_encoding: Literal["auto", "0-1", "1-2"] = Field(
        default="auto",
        description="OSCD change labels: '1-2' = public release (1 no change, 2 change), "
        "'0-1' = README (0 no change, 1 change), 'auto' = detect from the label values.",
    )
    template_patch_px: int = Field(
        default=512, ge=1, description="Adapter 'aoi': synthetic patch side (px)."
    )
    template_gsd_m: float = Field(
        default=0.5, gt=0.0, description="Adapter 'aoi': synthetic patch GSD (m)."
    )


class DaskConfig(_Model):
    """Where the blocks of a Sentinel month job (local source) run: see pipeline/parallel.py.

    An execution setting: stages read it from the workflow config, not from rule params, so
    changing it never reruns finished jobs."""

    address: str | None = Field(
        default=None,
        description="dask.distributed scheduler address (e.g. tcp://host:8786) that runs the "
        "blocks of local-source Sentinel month jobs; None = the job's own thread pool.",
    )
    threads: int = Field(
        default=1,
        ge=1,
        le=256,
        description="Minimum in-process threads per job when address is None (the rule's "
        "threads are used when larger).",
    )


class Config(_Model):
    """Top-level configuration. Every key is documented in config/config.yaml."""

    dataset: str = Field(
        default="demo", description="Dataset name: outputs go to results_dir/dataset."
    )
    results_dir: str = Field(default="results")
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


def _format_validation_error(err: ValidationError, where: str) -> str:
    lines = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"]) or "<root>"
        if e["type"] == "extra_forbidden":
            lines.append(f"  - unknown key '{loc}': remove it or check its spelling")
        else:
            lines.append(f"  - {loc}: {e['msg']} (got {e.get('input')!r})")
    return f"invalid {where}:\n" + "\n".join(lines)


def load_config(raw: dict[str, Any] | None, where: str = "configuration") -> Config:
    """Validate a merged config dict (config.yaml + --config overrides).

    Raises:
        ConfigError: naming each offending key.
    """
    try:
        return Config.model_validate(raw or {})
    except ValidationError as err:
        raise ConfigError(_format_validation_error(err, where)) from None


def load_aoi(path: str | Path) -> AoiSpec:
    """Read and validate one AOI definition YAML file.

    Raises:
        ConfigError: file missing, not YAML, or invalid (message names the file and key).
    """
    from pipeline.io.yamlfile import read_yaml

    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"AOI definition {p} does not exist: check the 'aois' list in the config")
    raw = read_yaml(p, "AOI definition", "check the 'aois' list in the config")
    if not isinstance(raw, dict):
        raise ConfigError(f"AOI definition {p} must be a mapping of keys to values")
    try:
        return AoiSpec.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(_format_validation_error(err, f"AOI definition {p}")) from None


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
        raise ConfigError(
            "sentinel.source 'stac' is not available yet: use 'local' (a scene archive per AOI, "
            "docs/sources.md) or 'gee' (docs/earth-engine.md)"
        )
    if src != "local":
        return
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
