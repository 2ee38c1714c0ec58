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

import functools
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


def footprint_window_mask(
    col0: Any, row0: Any, size_px: Any, win_col0: int, win_row0: int, width: int, height: int,
) -> np.ndarray:
    """bool (height, width): the pixels of the grid window at (``win_col0``, ``win_row0``)
    that a footprint window covers (squares of ``size_px``, one side for all or one per
    footprint, at (``col0``, ``row0``); grid pixels). Built with a 2-D difference array
    (O(N + H*W)), so 60k footprints cost nothing; squares are clipped to the window."""
    c = np.asarray(col0, np.int64).reshape(-1)
    n = np.broadcast_to(np.asarray(size_px, np.int64), c.shape)
    c0 = c - win_col0
    r0 = np.asarray(row0, np.int64).reshape(-1) - win_row0
    x0, y0 = np.clip(c0, 0, width), np.clip(r0, 0, height)
    x1, y1 = np.clip(c0 + n, 0, width), np.clip(r0 + n, 0, height)
    keep = (x1 > x0) & (y1 > y0)
    diff = np.zeros((height + 1, width + 1), np.int32)
    np.add.at(diff, (y0[keep], x0[keep]), 1)
    np.add.at(diff, (y0[keep], x1[keep]), -1)
    np.add.at(diff, (y1[keep], x0[keep]), -1)
    np.add.at(diff, (y1[keep], x1[keep]), 1)
    np.cumsum(diff, axis=0, out=diff)
    np.cumsum(diff, axis=1, out=diff)
    return np.asarray(diff[:height, :width] > 0)


@dataclass(frozen=True)
class FootprintCover:
    """The pixels of a mosaic grid that footprints cover: squares of ``sizes[i]`` px with
    upper-left pixel (``col0[i]``, ``row0[i]``) in grid pixels (parts outside the grid are
    ignored). A month job composites only these pixels: the Sentinel values elsewhere in a
    block are never read downstream (cubes are windows of footprints), so the block's other
    pixels are stored as unobserved (NaN, count 0) and the scene sources skip s2cloudless
    there (:meth:`pipeline.sentinel.compositor.Compositor.fetch_block`)."""

    col0: tuple[int, ...]
    row0: tuple[int, ...]
    sizes: tuple[int, ...]

    @classmethod
    def of(cls, col0: Any, row0: Any, size_px: Any) -> FootprintCover:
        """From (n,) upper-left pixels and one side or (n,) sides (px)."""
        c = np.asarray(col0, np.int64).reshape(-1)
        n = np.broadcast_to(np.asarray(size_px, np.int64), c.shape)
        return cls(tuple(int(v) for v in c),
                   tuple(int(v) for v in np.asarray(row0, np.int64).reshape(-1)),
                   tuple(int(v) for v in n))

    @functools.cached_property
    def _arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(col0, row0, sizes) as int64 arrays, made once (a month job asks per block)."""
        return (np.asarray(self.col0, np.int64), np.asarray(self.row0, np.int64),
                np.asarray(self.sizes, np.int64))

    def mask(self, col0: int, row0: int, width: int, height: int) -> np.ndarray:
        """bool (height, width): the covered pixels of the window at (col0, row0) of the
        grid."""
        return footprint_window_mask(*self._arrays, col0, row0, width, height)

    def around(self, block: Block) -> FootprintCover:
        """The squares that reach into ``block``: what its mask needs (a block's task carries
        these few, not the AOI's every footprint or a pixel mask)."""
        c, r, n = self._arrays
        hit = ((c < block.col0 + block.width) & (c + n > block.col0)
               & (r < block.row0 + block.height) & (r + n > block.row0))
        return FootprintCover.of(c[hit], r[hit], n[hit])

    def block_mask(self, block: Block) -> np.ndarray:
        """bool (block.height, block.width): the block's covered pixels."""
        return self.mask(block.col0, block.row0, block.width, block.height)

    def to_dict(self) -> dict[str, Any]:
        return {"col0": list(self.col0), "row0": list(self.row0), "sizes": list(self.sizes)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> FootprintCover:
        return cls.of(d["col0"], d["row0"], d["sizes"])


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

    def within(self, keep: np.ndarray) -> BlockResult:
        """The same result with every pixel outside ``keep`` (bool (h, w)) unobserved (NaN
        values, counts 0), in place; returns self."""
        out = ~np.asarray(keep, bool)
        if out.any():
            self.s2[:, out] = np.nan
            self.s2_count[out] = 0
            self.s1[:, out] = np.nan
            self.s1_count[out] = 0
        return self

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
        self, aoi: str, grid: AoiGrid, block: Block, month: str, recipe: Recipe,
        cover: np.ndarray | None = None,
    ) -> BlockResult:
        """Composites of ``month`` (``YYYY-MM``) on ``block`` of ``grid``. ``cover`` (bool
        (h, w), None = all) marks the block's pixels whose values are kept
        (:class:`FootprintCover`); a source may skip work elsewhere (the caller stores those
        pixels as unobserved).

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
