"""Block planner: which windows of an AOI grid to fetch, one request per (block, sensor, month).

Adjacent 5x footprints overlap ~25x, so the Sentinel source never fetches per footprint. The
planner covers the *union* of footprint windows with a few large rectangular blocks:

* A regular lattice of square cells of side ``block_px`` (a multiple of ``chunk_px``) is laid
  over the AOI grid, starting at the grid's upper-left pixel (0, 0).
* In each cell only the needed chunks (``chunk_px`` x ``chunk_px`` squares of the grid that
  contain at least one footprint pixel) are fetched: the cell is trimmed to the bounding box of
  its needed chunks and, where that box would waste many pixels (irregular AOI edges, holes),
  split by chunk-aligned guillotine cuts into several rectangles (greedy cost model: requested
  pixels + a per-request penalty).
* Every block edge lies on a multiple of ``chunk_px`` (or on the grid's far edge), so two blocks
  never share a zarr chunk of the mosaic (``chunk_px`` = the mosaic's spatial chunk) and can be
  written concurrently without locks.

Blocks never overlap, are ordered by (row0, col0) and their ids are deterministic
(:attr:`pipeline.sentinel.model.Block.id`). All sizes are in grid pixels (10 m by default).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from pipeline.bands import S1_BANDS, S2_BANDS
from pipeline.errors import ConfigError, GridError
from pipeline.grid import AoiGrid
from pipeline.io.mosaic import CHUNK_PX
from pipeline.sentinel.model import Block, FootprintCover, footprint_window_mask

#: Uncompressed bytes per pixel of the S2 part of a GEE response: 12 float32 reflectances + a
#: uint8 clear count, plus one mask byte per band (counted conservatively, in case the server
#: encodes masks alongside values).
S2_REQUEST_BYTES_PER_PX: int = len(S2_BANDS) * (4 + 1) + (1 + 1)
#: Same for the S1 part: 2 float32 dB bands + uint8 count, plus mask bytes.
S1_REQUEST_BYTES_PER_PX: int = len(S1_BANDS) * (4 + 1) + (1 + 1)
#: The GEE source fetches S2 and S1 of a (block, month) in ONE computePixels request, so the
#: block size must fit both parts together (74 B/px -> 640 px blocks at 32 MiB).
REQUEST_BYTES_PER_PX: int = S2_REQUEST_BYTES_PER_PX + S1_REQUEST_BYTES_PER_PX
#: Bytes reserved for the NPY header / structured-array padding of a response.
_HEADER_BYTES = 4096
#: Safety factor applied to ``max_bytes`` (server-side accounting may differ slightly).
_MARGIN = 0.95
#: Cost (in pixels) charged per extra request when deciding to split a cell (one chunk).
DEFAULT_REQUEST_PENALTY_PX: int = CHUNK_PX * CHUNK_PX


def block_size_px(bytes_per_px: int, max_bytes: int, chunk_px: int = CHUNK_PX) -> int:
    """Largest multiple of ``chunk_px`` whose square block response fits ``max_bytes`` with margin.

    Args:
        bytes_per_px: uncompressed response bytes per pixel, mask bytes included (see
            :data:`REQUEST_BYTES_PER_PX`).
        max_bytes: target response size (``sentinel.gee.max_block_bytes``; EE's hard limit is
            50,331,648 bytes per computePixels response).
        chunk_px: mosaic chunk side (px); the result is a multiple of it.

    Returns:
        Block side ``k`` (px) with ``k*k*bytes_per_px + 4096 <= 0.95 * max_bytes``.

    Raises:
        GridError: if not even one chunk fits (raise ``sentinel.gee.max_block_bytes``).
    """
    if bytes_per_px < 1 or chunk_px < 1:
        raise GridError(
            f"block_size_px: bytes_per_px ({bytes_per_px}) and chunk_px ({chunk_px}) must be >= 1"
        )
    budget = _MARGIN * max_bytes - _HEADER_BYTES
    side = math.isqrt(max(int(budget // bytes_per_px), 0))
    k = (side // chunk_px) * chunk_px
    if k < chunk_px:
        need = math.ceil((chunk_px * chunk_px * bytes_per_px + _HEADER_BYTES) / _MARGIN)
        raise GridError(
            f"sentinel.gee.max_block_bytes = {max_bytes} is too small for one "
            f"{chunk_px}x{chunk_px} px chunk at {bytes_per_px} bytes/px: set it to at least {need}"
        )
    return int(k)


def footprint_union_mask(
    shape: tuple[int, int], col0: np.ndarray, row0: np.ndarray, size_px: int | np.ndarray,
) -> np.ndarray:
    """Boolean ``shape`` = (height, width) mask of the AOI grid's pixels covered by at least
    one footprint window; ``size_px`` is one side for all or one per footprint
    (:func:`pipeline.sentinel.model.footprint_window_mask` over the whole grid)."""
    height, width = (int(v) for v in shape)
    return footprint_window_mask(col0, row0, size_px, 0, 0, width, height)


def needed_chunks(
    grid: AoiGrid, col0: np.ndarray, row0: np.ndarray, size_px: int | np.ndarray,
    chunk_px: int = CHUNK_PX,
) -> np.ndarray:
    """Bool (chunk rows, chunk cols): chunks of the grid holding at least one footprint pixel.

    Computed at chunk resolution with a 2-D difference array (O(N + chunks)), so memory never
    depends on the grid's pixel count.
    """
    nr, nc = -(-grid.height // chunk_px), -(-grid.width // chunk_px)
    c0 = np.asarray(col0, dtype=np.int64)
    r0 = np.asarray(row0, dtype=np.int64)
    n = np.broadcast_to(np.asarray(size_px, dtype=np.int64), c0.shape)
    x0, y0 = np.clip(c0, 0, grid.width), np.clip(r0, 0, grid.height)
    x1, y1 = np.clip(c0 + n, 0, grid.width), np.clip(r0 + n, 0, grid.height)
    keep = (x1 > x0) & (y1 > y0)
    a0, b0 = y0[keep] // chunk_px, x0[keep] // chunk_px
    a1, b1 = (y1[keep] - 1) // chunk_px + 1, (x1[keep] - 1) // chunk_px + 1
    diff = np.zeros((nr + 1, nc + 1), dtype=np.int32)
    np.add.at(diff, (a0, b0), 1)
    np.add.at(diff, (a0, b1), -1)
    np.add.at(diff, (a1, b0), -1)
    np.add.at(diff, (a1, b1), 1)
    np.cumsum(diff, axis=0, out=diff)
    np.cumsum(diff, axis=1, out=diff)
    return np.asarray(diff[:nr, :nc] > 0)


def _bbox(m: np.ndarray) -> tuple[int, int, int, int] | None:
    """(r0, r1, c0, c1) half-open bounding box of True cells, or None."""
    rows = np.flatnonzero(m.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(m.any(axis=0))
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


def _guillotine(
    need: np.ndarray,
    area: np.ndarray,
    penalty: float,
    out: list[tuple[int, int, int, int]],
    r_off: int = 0,
    c_off: int = 0,
) -> None:
    """Cover True cells of chunk mask ``need`` with rectangles (chunk units), greedy cuts.

    ``area[i, j]`` is the pixel area of chunk (i, j) (edge chunks of the grid are smaller).
    A box is split at the chunk line minimising the two sides' bounding-box areas when that
    saves more than ``penalty`` pixels; each side is then handled recursively.
    """
    bb = _bbox(need)
    if bb is None:
        return
    r0, r1, c0, c1 = bb
    sub = need[r0:r1, c0:c1]
    sub_area = area[r0:r1, c0:c1]
    total = float(sub_area.sum())
    if sub.all():
        out.append((r0 + r_off, r1 + r_off, c0 + c_off, c1 + c_off))
        return
    best: tuple[float, int, int] | None = None  # (cost, axis, index)
    for axis in (0, 1):
        n = sub.shape[axis]
        for k in range(1, n):
            if axis == 0:
                parts = ((sub[:k], sub_area[:k]), (sub[k:], sub_area[k:]))
            else:
                parts = ((sub[:, :k], sub_area[:, :k]), (sub[:, k:], sub_area[:, k:]))
            cost = 0.0
            for m, a in parts:
                b = _bbox(m)
                if b is not None:
                    cost += float(a[b[0] : b[1], b[2] : b[3]].sum())
            if best is None or cost < best[0]:
                best = (cost, axis, k)
    if best is None or best[0] + penalty >= total:
        out.append((r0 + r_off, r1 + r_off, c0 + c_off, c1 + c_off))
        return
    _, axis, k = best
    if axis == 0:
        _guillotine(sub[:k], sub_area[:k], penalty, out, r0 + r_off, c0 + c_off)
        _guillotine(sub[k:], sub_area[k:], penalty, out, r0 + r_off + k, c0 + c_off)
    else:
        _guillotine(sub[:, :k], sub_area[:, :k], penalty, out, r0 + r_off, c0 + c_off)
        _guillotine(sub[:, k:], sub_area[:, k:], penalty, out, r0 + r_off, c0 + c_off + k)


def plan_blocks(
    grid: AoiGrid,
    col0: np.ndarray,
    row0: np.ndarray,
    size_px: int,
    block_px: int,
    chunk_px: int = CHUNK_PX,
    request_penalty_px: int = DEFAULT_REQUEST_PENALTY_PX,
) -> list[Block]:
    """Plan the blocks covering the union of footprint windows (pure).

    Args:
        grid: the AOI grid.
        col0, row0: (N,) int footprint upper-left pixels in ``grid``.
        size_px: footprint side (px).
        block_px: lattice cell side (px), a multiple of ``chunk_px`` (see :func:`block_size_px`).
        chunk_px: mosaic spatial chunk side (px); every block edge is a multiple of it or the
            grid's far edge, so blocks never share a chunk.
        request_penalty_px: pixels one extra request is worth when splitting a cell.

    Returns:
        Non-overlapping blocks sorted by (row0, col0), each inside one lattice cell and no
        larger than ``block_px`` x ``block_px``, together covering every footprint pixel.

    Raises:
        GridError: ``block_px`` not a positive multiple of ``chunk_px``.
    """
    if chunk_px < 1 or block_px < chunk_px or block_px % chunk_px:
        raise GridError(
            f"block size {block_px} px must be a positive multiple of the mosaic chunk "
            f"({chunk_px} px): fix sentinel.block_size_px"
        )
    if len(np.asarray(col0)) == 0:
        return []
    need = needed_chunks(grid, col0, row0, size_px, chunk_px)
    nr, nc = need.shape
    # pixel area of each chunk (edge chunks clipped to the grid)
    ch = np.minimum(chunk_px, grid.height - np.arange(nr) * chunk_px)
    cw = np.minimum(chunk_px, grid.width - np.arange(nc) * chunk_px)
    area = np.outer(ch, cw).astype(np.float64)
    per_cell = block_px // chunk_px
    rects: list[tuple[int, int, int, int]] = []
    for cr in range(0, nr, per_cell):
        for cc in range(0, nc, per_cell):
            sub = need[cr : cr + per_cell, cc : cc + per_cell]
            if sub.any():
                _guillotine(
                    sub, area[cr : cr + per_cell, cc : cc + per_cell],
                    float(request_penalty_px), rects, cr, cc,
                )
    blocks = []
    for r0, r1, c0, c1 in rects:
        px_r0, px_c0 = r0 * chunk_px, c0 * chunk_px
        px_r1 = min(r1 * chunk_px, grid.height)
        px_c1 = min(c1 * chunk_px, grid.width)
        blocks.append(Block(px_c0, px_r0, px_c1 - px_c0, px_r1 - px_r0))
    blocks.sort(key=lambda b: (b.row0, b.col0))
    return blocks


def requested_pixels(blocks: list[Block]) -> int:
    """Total pixels requested per (sensor, month) by ``blocks``."""
    return int(sum(b.n_pixels for b in blocks))


#: Default block side (px) of offline sources (no response-size limit): blocks of 4 x 4
#: chunks let a month job's threads share the work and bound memory.
OFFLINE_BLOCK_PX: int = 4 * CHUNK_PX


def block_side_px(cfg: Any, chunk_px: int = CHUNK_PX) -> int:
    """The block side (px) of a build: the one block-size policy of every path (native AOIs and
    expansion groups).

    ``sentinel.block_size_px`` when set (a multiple of ``chunk_px``); else
    :data:`OFFLINE_BLOCK_PX` for the ``local`` source; else the largest square whose Earth
    Engine response fits ``sentinel.gee.max_block_bytes`` (:func:`block_size_px`).

    Args:
        cfg: the validated ``sentinel`` config section (:class:`pipeline.config.SentinelConfig`).

    Raises:
        ConfigError: ``sentinel.block_size_px`` is not a multiple of ``chunk_px``.
    """
    if cfg.block_size_px is not None:
        block_px = int(cfg.block_size_px)
        if block_px % chunk_px:
            raise ConfigError(
                f"sentinel.block_size_px = {block_px} must be a multiple of the mosaic chunk "
                f"({chunk_px} px), e.g. {max(chunk_px, block_px // chunk_px * chunk_px)}"
            )
        return block_px
    if cfg.source == "local":
        return OFFLINE_BLOCK_PX
    return block_size_px(REQUEST_BYTES_PER_PX, int(cfg.gee.max_block_bytes), chunk_px)


@dataclass(frozen=True)
class BlockPlan:
    """The blocks one AOI (or expansion group) fetches every month: ``blocks.json``.

    Attributes:
        aoi: AOI / group name.
        grid: the AOI grid the blocks are windows of.
        block_px: lattice cell side (px) the plan was made with.
        chunk_px: mosaic spatial chunk (px); every block edge is a multiple of it.
        blocks: the blocks, ordered by (row0, col0).
        cover: the footprints the blocks were planned for (the pixels a month job keeps);
            None in plans written before it was recorded (every block pixel is kept).
    """

    aoi: str
    grid: AoiGrid
    block_px: int
    chunk_px: int
    blocks: tuple[Block, ...]
    cover: FootprintCover | None = None

    @property
    def n_pixels(self) -> int:
        """Pixels requested per (sensor, month)."""
        return requested_pixels(list(self.blocks))

    def to_dict(self) -> dict[str, Any]:
        return {
            "aoi": self.aoi,
            "grid": self.grid.to_dict(),
            "block_px": self.block_px,
            "chunk_px": self.chunk_px,
            "blocks": [
                {"id": b.id, "col0": b.col0, "row0": b.row0, "width": b.width,
                 "height": b.height}
                for b in self.blocks
            ],
            **({"cover": self.cover.to_dict()} if self.cover is not None else {}),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> BlockPlan:
        return cls(
            aoi=str(d["aoi"]),
            grid=AoiGrid.from_dict(d["grid"]),
            block_px=int(d["block_px"]),
            chunk_px=int(d["chunk_px"]),
            blocks=tuple(Block(int(b["col0"]), int(b["row0"]), int(b["width"]),
                               int(b["height"])) for b in d["blocks"]),
            cover=FootprintCover.from_dict(d["cover"]) if "cover" in d else None,
        )
