"""The ``sentinel`` section of the configuration and its sources' sub-sections (``gee``,
``stac``): where monthly Sentinel-1/2 composites come from and how they are made. Part of the
one schema (:class:`pipeline.config.Config`); the building blocks are in
:mod:`pipeline.config_sections`.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from pipeline.config_sections import EXECUTION, _Model


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
    restricted_mode: Literal["stop", "continue"] = Field(
        default="stop", json_schema_extra=EXECUTION,
        description="Once Earth Engine answers in restricted mode (the noncommercial quota is "
        "used up; it then slows the project down): 'stop' ends the month job resumably "
        "(finished blocks kept, rerun after the quota resets), 'continue' goes on one request "
        "at a time.",
    )
    backoff_base_s: float = Field(default=1.0, gt=0.0, json_schema_extra=EXECUTION)
    backoff_max_s: float = Field(default=60.0, gt=0.0, json_schema_extra=EXECUTION)
    timeout_s: float = Field(
        default=330.0, gt=0.0, json_schema_extra=EXECUTION,
        description="Per-request timeout (s); longer than Earth Engine's 300 s computation "
        "limit, so a slow block gets the server's timeout and is split. A request the client "
        "times out twice is split too.",
    )
    min_block_px: int = Field(
        default=32, ge=8, json_schema_extra=EXECUTION,
        description="Blocks are never split below this side (px).",
    )
    max_split_depth: int = Field(
        default=3, ge=0, le=8, json_schema_extra=EXECUTION,
        description="Halvings per block at most when Earth Engine answers 'too large' or "
        "times out (bounds the serial requests of a persistently failing block).",
    )
    eecu_s_per_mpx_s2: float = Field(
        default=1.0, gt=0.0, json_schema_extra=EXECUTION,
        description="EECU-seconds per million S2 pixel-observations, for the plan's cost "
        "estimate (a prior; calibrate it with Cloud Monitoring's usage per workload tag).",
    )
    eecu_s_per_mpx_s1: float = Field(
        default=0.2, gt=0.0, json_schema_extra=EXECUTION,
        description="EECU-seconds per million S1 pixel-observations (plan estimate).",
    )
    max_block_bytes: int = Field(
        default=32 * 1024 * 1024,
        ge=1024,
        le=50_331_648,
        description="Target uncompressed bytes per computePixels response (EE limit 48 MB).",
    )


class StacConfig(_Model):
    profile: Literal["earth-search", "earth-search-c1", "planetary-computer", "cdse"] = Field(
        default="earth-search",
        description="Provider layout: collection ids, asset keys, offsets, signing "
        "(docs/sources.md lists what each provider lacks).",
    )
    url: str | None = Field(
        default=None,
        description="STAC API root URL, or a static catalogue (catalog.json path / URL, or a "
        "folder holding one). None = the AOI's sentinel_archive if it holds a catalog.json "
        "(the demo), else the profile's public API.",
    )
    s2_l2a_collection: str | None = Field(default=None, description="Override ('' = none).")
    s2_l1c_collection: str | None = Field(default=None, description="Override ('' = none).")
    s1_collection: str | None = Field(default=None, description="Override ('' = none).")
    s1_catalog: str | None = Field(
        default="planetary-computer",
        description="Where Sentinel-1 comes from when the catalogue read for S2 is a STAC API "
        "without calibrated S1 (Earth Search) and s1_collection is not set: "
        "'planetary-computer' (its public API, collection sentinel-1-rtc: terrain-corrected "
        "gamma0; asset URLs signed anonymously with the planetary-computer package), a STAC "
        "API URL with that layout, or null (no S1). Static catalogues keep their own S1.",
    )
    s3_endpoint: str | None = Field(
        default=None,
        description="S3 endpoint (http(s)://host[:port]) of the profile's s3:// assets. None = "
        "the profile's (cdse: https://eodata.dataspace.copernicus.eu; the others: AWS). Keys "
        "only from the environment (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY) or the AWS "
        "credentials file.",
    )
    s2_query: dict[str, Any] = Field(
        default_factory=dict,
        description="STAC API 'query' filter for the S2 searches (applied to static "
        "catalogues too), e.g. {'eo:cloud_cover': {'lt': 80}} to skip overcast items before "
        "any byte is read. Operators: eq, neq, lt, lte, gt, gte, in.",
    )
    verify_offsets: bool = Field(
        default=True,
        description="Where the profile's 'offset already removed' flag is unreliable (Earth "
        "Search's earthsearch:boa_offset_applied is false on some harmonised COGs), check "
        "each such item's pixels (its B12 overview) before subtracting the -1000 DN offset; "
        "corrected items are listed in the month summary (offset_corrected).",
    )
    max_retries: int = Field(
        default=4, ge=0, le=20, json_schema_extra=EXECUTION,
        description="Retries of a search (429, 5xx, timeouts) and of each COG range read "
        "(GDAL_HTTP_MAX_RETRY).",
    )
    backoff_base_s: float = Field(default=1.0, gt=0.0, json_schema_extra=EXECUTION)
    timeout_s: float = Field(default=60.0, gt=0.0, json_schema_extra=EXECUTION)
    concurrency: int = Field(
        default=8, ge=1, le=64, json_schema_extra=EXECUTION,
        description="Blocks read concurrently per month job (threads).",
    )
    item_concurrency: int = Field(
        default=4, ge=1, le=32, json_schema_extra=EXECUTION,
        description="Scenes of one block read at once (threads: hides the object store's "
        "latency; composited in order, so the bytes do not depend on it).",
    )
    max_items: int = Field(
        default=5000, ge=1, json_schema_extra=EXECUTION,
        description="Refuse a month with more items than this per collection (a wrong bbox).",
    )
    skip_retry_runs: int = Field(
        default=2, ge=0, le=10, json_schema_extra=EXECUTION,
        description="A month in which catalogue items were skipped (a missing or refused band "
        "asset), or in which a sensor had no scenes after an empty search, is fetched again by "
        "up to this many later runs of the workflow (the catalogue may have been fixed or "
        "filled; blocks are refetched only if its listing changed); the month summary counts "
        "them (skip_retries).",
    )
    allow_hosts: list[str] = Field(
        default_factory=list, json_schema_extra=EXECUTION,
        description="Hosts besides public ones and the catalogue's own that asset hrefs may "
        "name (e.g. your MinIO at 10.0.0.5:9000; '*' = any). Loopback, private and link-local "
        "(cloud metadata) addresses are refused otherwise.",
    )


class SentinelConfig(_Model):
    source: Literal["local", "gee", "stac"] = Field(
        default="stac",
        description="Where composites come from: 'stac' (a STAC API or static catalogue of "
        "COGs; the demo's generated scenes are one), 'gee' (Earth Engine) or 'local' (a scene "
        "archive folder).",
    )
    s2_mask: Literal["s2cloudless", "cloud_score_plus", "scl"] = Field(
        default="s2cloudless",
        description="S2 cloud layer: s2cloudless probability (needs L1C bands; the local source "
        "falls back to the L2A SCL layer for L2A-only scenes), Cloud Score+ (Earth Engine), or "
        "the L2A scene classification (SCL; L2A only, so no L1C fallback).",
    )
    scl_mask_classes: list[int] = Field(
        default=[0, 1, 3, 8, 9, 10],
        description="SCL classes masked where SCL decides: 0 no data, 1 saturated/defective, "
        "3 cloud shadow, 8 cloud medium, 9 cloud high, 10 thin cirrus (11 snow is kept).",
    )
    cloud_probability_threshold: int = Field(
        default=40,
        ge=0,
        le=100,
        description="Mask S2 pixels with s2cloudless probability above this (%).",
    )
    cloud_score_plus_threshold: float = Field(
        default=0.6, ge=0.0, le=1.0, description="Cloud Score+ 'cs' below this is masked."
    )
    @field_validator("scl_mask_classes")
    @classmethod
    def _scl_classes(cls, v: list[int]) -> list[int]:
        bad = [c for c in v if not 0 <= int(c) <= 11]
        if bad:
            raise ValueError(f"sentinel.scl_mask_classes: {bad} are not SCL classes (0..11)")
        return sorted({int(c) for c in v})

    cloud_preset: Literal["gee", "s2cloudless"] = Field(
        default="gee",
        description="s2cloudless post-processing of the probability: 'gee' = threshold only, "
        "as Earth Engine's S2_CLOUD_PROBABILITY is used (average_over 0, dilation_size 0); "
        "'s2cloudless' = the package's S2PixelCloudDetector defaults (average_over 1, "
        "dilation_size 1), which reproduce its reference masks. Recorded in the mosaic.",
    )
    cloud_average_over: int | None = Field(
        default=None, ge=0, le=16,
        description="Disk radius (px) over which the probability is averaged before the "
        "threshold (s2cloudless average_over); None = the preset's value.",
    )
    cloud_dilation_size: int | None = Field(
        default=None, ge=0, le=16,
        description="Disk radius (px) by which the cloud mask is dilated (s2cloudless "
        "dilation_size); None = the preset's value.",
    )
    cloud_grid_factor: int = Field(
        default=1, json_schema_extra={"enum": [1, 2, 3, 6]},
        description="Run s2cloudless once per f x f cell of the 10 m grid (on the cell's mean "
        "reflectance; every pixel takes its cell's probability) instead of once per pixel: "
        "1 = per pixel, as Earth Engine's S2_CLOUD_PROBABILITY (the only value the gee source "
        "has); 2/3/6 = 20/30/60 m cells, about f*f times fewer classifier calls. On the "
        "package's real L1C chip f = 2 changes 3.6 % of the mask's pixels and misses 1.8 % "
        "as clouds (docs/benchmarks.md, 'Cloud masks'). Scene sources with s2_mask "
        "s2cloudless only.",
    )
    shadow_mask: bool = Field(
        default=False, description="Also mask cloud shadows (projected from clouds)."
    )
    allow_l1c_fallback: bool = Field(
        default=True, description="Months without L2A scenes use L1C (recorded per month)."
    )
    allow_lost_items: bool = Field(
        default=False, json_schema_extra=EXECUTION,
        description="A month in which the catalogue listed items of a sensor but every one "
        "was lost (a missing band asset, a refused href, uncalibrated S1, a profile that cannot "
        "read them) fails its job, naming the causes; true builds such months empty (their "
        "causes stay in the month summary's lost_items).",
    )
    allow_empty_series: bool = Field(
        default=False, json_schema_extra=EXECUTION,
        description="An AOI whose S2 or S1 series has not one observed pixel in any month for "
        "a reason other than 'nothing acquired' (items lost, scenes not usable as the month's "
        "product, every pixel clouded) fails rule sentinel, naming each month's cause; true "
        "builds it (the causes stay in the AOI summary's empty_series).",
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
    stac: StacConfig = StacConfig()

    @field_validator("cloud_grid_factor")
    @classmethod
    def _cloud_grid_factor(cls, v: int) -> int:
        if v not in (1, 2, 3, 6):
            raise ValueError(f"sentinel.cloud_grid_factor must be 1, 2, 3 or 6 (got {v}): "
                             "cells of 10, 20, 30 or 60 m that nest in the 60 m bands")
        return v

    @model_validator(mode="after")
    def _cloud_grid(self) -> SentinelConfig:
        if self.cloud_grid_factor == 1:
            return self
        if self.source == "gee":
            raise ValueError(
                f"sentinel.cloud_grid_factor {self.cloud_grid_factor}: Earth Engine's "
                "S2_CLOUD_PROBABILITY is computed per 10 m pixel and cannot be recomputed on "
                "cells; set cloud_grid_factor: 1 or use sentinel.source 'stac' / 'local'"
            )
        if self.s2_mask != "s2cloudless":
            raise ValueError(
                f"sentinel.cloud_grid_factor {self.cloud_grid_factor} applies to s2cloudless "
                f"only but sentinel.s2_mask is {self.s2_mask!r}: set cloud_grid_factor: 1 or "
                "s2_mask: s2cloudless"
            )
        return self
