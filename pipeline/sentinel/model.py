"""The Sentinel source protocol and the shared value types.

A source turns (AOI grid, block, month, recipe) into monthly composites on *exactly* that
block of the AOI grid. Sources never decide which pixels to fetch (the block planner does) and
never write files (the driver in :mod:`pipeline.sentinel.fetch` does, atomically, with resume).

Band order and units (fixed for the whole project):
    S2: B1, B2, B3, B4, B5, B6, B7, B8, B8A, B9, B11, B12 (12 bands; FUSU Table 10 order),
        surface reflectance as float32 in [0, ~1.5] (L2A DN / 10000; L1C fallback: TOA / 10000),
        NaN where there was no clear observation in the month.
    S1: VV, VH (2 bands), backscatter in dB as float32, NaN where no observation.
    counts: uint8 number of clear S2 / valid S1 observations per pixel in the month (0 = none).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np

from pipeline.bands import S1_BANDS, S2_BANDS
from pipeline.grid import AoiGrid


@dataclass(frozen=True)
class Block:
    """A rectangular window of an AOI grid fetched as one unit (one request per sensor/month).

    Attributes:
        id: deterministic id ``r<row0>_c<col0>_<height>x<width>``.
        col0, row0: upper-left pixel in the AOI grid.
        width, height: size in pixels.
    """

    col0: int
    row0: int
    width: int
    height: int

    @property
    def id(self) -> str:
        return f"r{self.row0:06d}_c{self.col0:06d}_{self.height}x{self.width}"

    @property
    def n_pixels(self) -> int:
        return self.width * self.height

    def split(self) -> tuple[Block, ...]:
        """Halve along the longer side (used when a response would be too large)."""
        if self.width >= self.height and self.width > 1:
            w = self.width // 2
            return (
                Block(self.col0, self.row0, w, self.height),
                Block(self.col0 + w, self.row0, self.width - w, self.height),
            )
        if self.height > 1:
            h = self.height // 2
            return (
                Block(self.col0, self.row0, self.width, h),
                Block(self.col0, self.row0 + h, self.width, self.height - h),
            )
        return (self,)


#: s2cloudless post-processing presets: (average_over, dilation_size) in px (disk radii).
CLOUD_PRESETS: dict[str, tuple[int, int]] = {
    "gee": (0, 0),  # threshold only: how Earth Engine's S2_CLOUD_PROBABILITY is thresholded
    "s2cloudless": (1, 1),  # S2PixelCloudDetector's defaults (its reference masks)
}


@dataclass(frozen=True)
class Recipe:
    """The compositing recipe, shared by every source (built from config.sentinel).

    ``cloud_average_over`` / ``cloud_dilation_size``: s2cloudless post-processing (disk radii in
    grid px; 0 = none), resolved from ``cloud_preset`` unless set explicitly.
    ``cloud_grid_factor``: s2cloudless per f x f cell (1 = per pixel, as Earth Engine).
    """

    s2_mask: Literal["s2cloudless", "cloud_score_plus", "scl"] = "s2cloudless"
    cloud_probability_threshold: int = 40
    scl_mask_classes: tuple[int, ...] = (0, 1, 3, 8, 9, 10)
    cloud_preset: str = "gee"
    cloud_average_over: int = 0
    cloud_dilation_size: int = 0
    cloud_grid_factor: int = 1
    cloud_score_plus_threshold: float = 0.6
    shadow_mask: bool = False
    allow_l1c_fallback: bool = True
    s1_orbit_pass: Literal["ASCENDING", "DESCENDING"] | None = None
    s1_mean: Literal["linear", "db"] = "linear"
    s2_resampling: Literal["nearest", "bilinear"] = "nearest"

    @classmethod
    def from_config(cls, cfg: Any) -> Recipe:
        """Build from a :class:`pipeline.config.SentinelConfig` (or its dict form)."""
        d = dict(cfg if isinstance(cfg, dict) else cfg.model_dump())
        preset = str(d.get("cloud_preset") or "gee")
        avg, dil = CLOUD_PRESETS.get(preset, (0, 0))
        if d.get("cloud_average_over") is None:
            d["cloud_average_over"] = avg
        if d.get("cloud_dilation_size") is None:
            d["cloud_dilation_size"] = dil
        if "scl_mask_classes" in d:
            d["scl_mask_classes"] = tuple(int(c) for c in d["scl_mask_classes"])
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


def is_superseded(skipped: Mapping[str, Any]) -> bool:
    """Whether a month summary's ``skipped_items`` entry is another processing of an
    acquisition that was used (``superseded_by``): a choice, not a loss, never retried."""
    return bool(skipped.get("superseded_by"))


def month_product(recipe: Recipe, usable: Mapping[str, int]) -> str | None:
    """The product policy of every source: the S2 level a month is composited from.

    Args:
        recipe: the compositing recipe (``allow_l1c_fallback``, ``s2_mask``).
        usable: {"L2A": n, "L1C": n} acquisitions of the month usable as that level, i.e.
            with a cloud layer (s2cloudless needs L1C bands; SCL is an L2A band).

    Returns:
        "L2A" if any acquisition is usable as L2A; else "L1C" when
        ``recipe.allow_l1c_fallback`` and one is usable as L1C (never with ``s2_mask: scl``,
        which L1C cannot satisfy); else None (no S2 for the month: NaN values, count 0).
    """
    if int(usable.get("L2A", 0)) > 0:
        return "L2A"
    if recipe.allow_l1c_fallback and recipe.s2_mask != "scl" and int(usable.get("L1C", 0)) > 0:
        return "L1C"
    return None


@dataclass
class BlockResult:
    """Monthly composites of one block (arrays are (band, y, x) on the block's grid window).

    Attributes:
        s2: float32 (12, h, w) reflectance, NaN = no clear observation.
        s2_count: uint8 (h, w) clear S2 observations.
        s1: float32 (2, h, w) dB, NaN = no observation.
        s1_count: uint8 (h, w) S1 observations.
        meta: e.g. {"s2_product": "L2A"|"L1C"|None, "s2_scenes": n, "s1_scenes": n, "requests": n,
              "bytes": n, "retries": n}.
    """

    s2: np.ndarray
    s2_count: np.ndarray
    s1: np.ndarray
    s1_count: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def empty(cls, height: int, width: int) -> BlockResult:
        """A block with no observation at all (NaN values, zero counts)."""
        return cls(
            s2=np.full((len(S2_BANDS), height, width), np.nan, np.float32),
            s2_count=np.zeros((height, width), np.uint8),
            s1=np.full((len(S1_BANDS), height, width), np.nan, np.float32),
            s1_count=np.zeros((height, width), np.uint8),
        )


@runtime_checkable
class SentinelSource(Protocol):
    """What every source implements. ``fetch_block`` must be thread-safe."""

    name: str

    def fetch_block(
        self, aoi: str, grid: AoiGrid, block: Block, month: str, recipe: Recipe
    ) -> BlockResult:
        """Composites of ``month`` (``YYYY-MM``) on ``block`` of ``grid``.

        Raises:
            pipeline.errors.SourceError (or a subclass) naming the AOI, month and block.
        """
        ...

    def close(self) -> None:
        """Release resources (threads, sessions)."""
        ...


def blocks_overlap(blocks: Sequence[Block]) -> bool:
    """True if any two blocks overlap (planner invariant check)."""
    seen: set[tuple[int, int]] = set()
    for b in blocks:
        for r in range(b.row0, b.row0 + b.height):
            for c in range(b.col0, b.col0 + b.width):
                if (r, c) in seen:
                    return True
                seen.add((r, c))
    return False
