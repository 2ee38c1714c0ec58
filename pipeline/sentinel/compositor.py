"""The one compositor of scene-based Sentinel sources: scene providers (the local archive,
STAC catalogues) list and read scenes; :class:`Compositor` turns them into monthly composites
on a block of the AOI grid. The Earth Engine source builds the same recipe server-side and
shares its product policy (:func:`pipeline.sentinel.model.month_product`).

Recipe (identical to the Earth Engine path, pixel by pixel)
----------------------------------------------------------
1. Product per month: L2A if any acquisition of the month is usable as L2A (L2A bands and a
   cloud layer: L1C bands for s2cloudless, or SCL); else L1C when ``recipe.allow_l1c_fallback``
   and one is usable as L1C; else none (count 0). Recorded as ``meta["s2_product"]``. Mixed
   months: every acquisition usable as the month's product is averaged; acquisitions of the
   other level only (L1C-only scenes in an L2A month) are counted skips
   (``"other_product"``), because top-of-atmosphere and surface reflectance differ by more
   than the signal and one month's mean must be one product, as on Earth Engine.
2. Cloud probability: s2cloudless ``S2PixelCloudDetector(all_bands=False)`` on the 10 L1C
   bands ``B01 B02 B04 B05 B08 B8A B09 B10 B11 B12`` (TOA reflectance = DN / 10000, the order
   of ``s2cloudless.utils.MODEL_BANDS``), every band **bilinearly resampled to the 10 m AOI
   grid** first -- exactly how Earth Engine's COPERNICUS/S2_CLOUD_PROBABILITY is computed, so
   both paths mask the same pixels. Like that collection, the probability is kept as a uint8
   percentage (rounded). The classifier is per pixel; ``recipe.cloud_preset`` decides the
   post-processing of the probability (``gee``: none, as Earth Engine's collection is used;
   ``s2cloudless``: the package's average over a radius-1 disk and radius-1 dilation, or any
   ``cloud_average_over`` / ``cloud_dilation_size``, run by s2cloudless itself on the block
   plus a halo of their reach); probabilities are cached per scene on the AOI grid (one array
   per acquisition of the month being processed: uint8 whole percent for ``gee``, as Earth
   Engine's collection stores them, float32 for the post-processing presets, so the package's
   average and threshold see unrounded values), so pixels shared by a block's halo and its
   neighbour are never classified twice. ``recipe.cloud_grid_factor`` f > 1 (scene sources
   only, an opt-in speed option) classifies once per f x f cell of the frame instead, on the
   mean of the cell's valid pixels, every pixel taking its cell's probability (about f*f
   fewer predictions; the masks differ from Earth Engine's, docs/benchmarks.md measures by
   how much); reads then start on a cell corner. An acquisition without L1C bands has no
   s2cloudless input: as L2A it is masked with its SCL layer (``L2A/SCL.tif``, the classes
   ``recipe.scl_mask_classes``) when it has one, else it is a counted skip
   (``meta["s2_scenes_skipped"]["no_cloud_layer"]``) that never makes the month L2A or
   observed. ``recipe.s2_mask = "scl"`` uses SCL for every scene (L2A only).
   Only the pixels a month keeps are classified (``cover`` of :meth:`Compositor.fetch_block`:
   the footprints' pixels, :class:`~pipeline.sentinel.model.FootprintCover`), with the pixels
   within the post-processing and shadow reach of them, so the kept pixels' masks are those of
   classifying the whole block.
3. Clear = not cloudy (probability % > ``recipe.cloud_probability_threshold`` after the
   post-processing) and all bands valid;
   optional shadows (``recipe.shadow_mask``): dark-NIR pixels inside the clouds' projection
   away from the sun (up to 1 km; clouds are detected on a block + 1 km halo so shadows of
   clouds just outside the block are found).
4. Values: the month product's 12 bands resampled to the grid with ``recipe.s2_resampling``
   (default nearest, as FUSU did); mean of clear observations; count per pixel.
5. S1: VV/VH (nearest), each band on its own (a VV-only scene gives VV and no VH), optional
   orbit-pass filter, mean in linear power then back to dB
   (``recipe.s1_mean = "linear"``) or plain dB mean (``"db"``).

A month without scenes gives NaN and count 0 (never zeros). A corrupt file raises
:class:`~pipeline.errors.SourceError` naming it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from scipy import ndimage

from pipeline.bands import S1_BANDS, S2_BANDS
from pipeline.errors import SourceError
from pipeline.grid import AoiGrid
from pipeline.io.scenes import (
    SCL_FILE,
    S1Scene,
    S2Scene,
    file_band,
    http_retries_in_thread,
    read_on_grid,
)
from pipeline.parallel import ordered_map
from pipeline.sentinel.cloud_probability import S2CLOUDLESS_BANDS, CloudDetector
from pipeline.sentinel.composite import MeanAccumulator, postprocess_cloud_mask, project_shadows
from pipeline.sentinel.model import Block, BlockResult, Recipe, month_product

log = logging.getLogger(__name__)

#: Maximum cloud-shadow projection distance (m).
SHADOW_DISTANCE_M: float = 1000.0
#: Largest s2cloudless post-processing reach (average_over + dilation_size, px; config <= 16 each).
MAX_POSTPROCESS_PX: int = 32


def frame_pad(grid: AoiGrid) -> int:
    """Pixels by which the frame every scene is warped onto extends the AOI grid on each side:
    the reach of the cloud mask's halo (shadow projection + post-processing disks). Every read
    of a month job is a window of this one frame (:func:`pipeline.io.scenes.read_on_grid`), so
    a composite's bytes never depend on the block plan."""
    return int(np.ceil(SHADOW_DISTANCE_M / grid.res_m)) + MAX_POSTPROCESS_PX


def read_window_on_grid(
    files: Sequence[Path | str], grid: AoiGrid, col0: int, row0: int, width: int, height: int,
    resampling: str, nodata: float,
) -> tuple[np.ndarray, np.ndarray]:
    """``read_on_grid`` of the window whose upper-left pixel is (col0, row0) of ``grid`` (may
    start outside it by up to :func:`frame_pad`), cut from the AOI's padded frame."""
    pad = frame_pad(grid)
    return read_on_grid(files, grid.crs, grid.window_transform(-pad, -pad),
                        grid.width + 2 * pad, grid.height + 2 * pad, resampling, nodata=nodata,
                        window=(col0 + pad, row0 + pad, width, height))


def _cell_aligned(
    grid: AoiGrid, col0: int, row0: int, width: int, height: int, factor: int
) -> tuple[int, int, int, int]:
    """The window (col0, row0, width, height) of ``grid`` grown to whole cells of
    ``factor`` px, cells anchored at the frame's origin (:func:`frame_pad`), without leaving
    the frame; unchanged for ``factor`` 1."""
    if factor <= 1:
        return col0, row0, width, height
    m = frame_pad(grid)
    out = []
    for start, size, limit in ((col0, width, grid.width), (row0, height, grid.height)):
        a = (start + m) // factor * factor
        b = min(-(-(start + m + size) // factor) * factor, limit + 2 * m)
        out.append((a - m, b - a))
    (c, w), (r, h) = out
    return c, r, w, h


class _Mosaic:
    """The granules of one observation (datatake / pass) merged on a block: per pixel the first
    granule in which it is seen (clear and inside the scene) provides its values."""

    def __init__(self) -> None:
        self.values: np.ndarray = np.empty(0)
        self.ok: np.ndarray = np.empty(0)
        self.seen: np.ndarray | None = None

    def add(self, values: np.ndarray, ok: np.ndarray, seen: np.ndarray) -> None:
        """values (b, h, w), per-band ok (b, h, w), seen (h, w) bool."""
        if self.seen is None:
            self.values, self.ok, self.seen = values.copy(), seen[None] & ok, seen.copy()
            return
        take = seen & ~self.seen
        self.values[:, take] = values[:, take]
        self.ok[:, take] = ok[:, take]
        self.seen |= take

    def flush(self, acc: MeanAccumulator) -> None:
        """Add this observation (if any granule was seen) to ``acc``, counted where seen."""
        if self.seen is not None:
            acc.add(self.values, self.ok, counted=self.seen)


#: Slices of one S1 pass follow each other within seconds; two acquisitions of one relative
#: orbit are 6 or 12 days apart. Slices of one orbit closer than this are one pass.
S1_PASS_GAP = dt.timedelta(minutes=10)


def s1_passes(scenes: Sequence[S1Scene]) -> list[list[S1Scene]]:
    """S1 slices grouped into passes (one observation each): same relative orbit (else orbit
    direction) and consecutive slices less than :data:`S1_PASS_GAP` apart, so a pass that
    crosses 00:00 UTC stays one observation (a UTC-day key split it in two). Groups in order
    of their first slice; slices in time order."""
    last: dict[str, list[S1Scene]] = {}  # the open pass of each orbit
    groups: list[list[S1Scene]] = []
    for sc in sorted(scenes, key=lambda s: (s.time, s.id)):
        orbit = str(sc.relative_orbit if sc.relative_orbit is not None else sc.orbit_pass)
        group = last.get(orbit)
        if group is not None and sc.time - group[-1].time < S1_PASS_GAP:
            group.append(sc)
        else:
            last[orbit] = [sc]
            groups.append(last[orbit])
    return groups


def _groups(scenes: list[Any], key: Any) -> list[list[Any]]:
    """``scenes`` grouped by ``key(scene)``, groups in order of first appearance."""
    out: dict[str, list[Any]] = {}
    for sc in scenes:
        out.setdefault(str(key(sc)), []).append(sc)
    return list(out.values())


@dataclass
class _SceneRead:
    """One S2 scene read on a block: ``values`` float32 (12, h, w) reflectance, ``ok`` bool
    (12, h, w) per-band valid, ``seen`` bool (h, w) clear and inside (S1: dB values, per-band
    valid, seen where any band is); all None when the scene misses the block or is skipped
    (``skip`` = the counted reason). ``layer``: the S2 cloud layer that masked it."""

    stats: dict[str, int]
    layer: str | None = None
    values: np.ndarray | None = None
    ok: np.ndarray | None = None
    seen: np.ndarray | None = None
    skip: str | None = None

    @property
    def used(self) -> bool:
        """The scene contributed to the block's observation."""
        return self.values is not None and self.ok is not None and self.seen is not None


def _counting_retries(read: Callable[[], _SceneRead]) -> _SceneRead:
    """Run one scene read and add the GDAL HTTP retries it made (this thread's) to its stats."""
    before = http_retries_in_thread()
    got = read()
    got.stats["retries"] = got.stats.get("retries", 0) + http_retries_in_thread() - before
    return got


def _merge_stats(into: dict[str, int], other: dict[str, int]) -> None:
    for k, v in other.items():
        into[k] = into.get(k, 0) + int(v)


class SceneProvider(Protocol):
    """Where scenes come from: lists a month's scenes around an AOI grid and says how their
    files are read. Implemented by the local scene archive
    (:class:`pipeline.sentinel.sources.local.LocalArchive`) and STAC catalogues
    (:class:`pipeline.sentinel.sources.stac.StacCatalog`); :class:`Compositor` composites
    what they list. Listing may be slow (searches): the compositor caches it per month."""

    name: str
    #: Scenes of one block read concurrently (threads; results are composited in order).
    item_concurrency: int
    #: Mask an L2A scene with its SCL layer when its L1C assets are refused (HTTP 401/403)
    #: instead of failing (remote assets, e.g. requester-pays L1C without credentials).
    scl_when_l1c_refused: bool

    def list_s2(self, month: str, grid: AoiGrid) -> list[S2Scene]:
        """The month's S2 acquisitions (``YYYY-MM``) over ``grid``."""
        ...

    def list_s1(self, month: str, grid: AoiGrid) -> list[S1Scene]:
        """The month's S1 acquisitions over ``grid``."""
        ...

    def read_env(self) -> contextlib.AbstractContextManager[Any]:
        """Entered around every scene read in its worker thread (GDAL's HTTP settings are
        thread-local)."""
        ...

    def month_meta(self, month: str) -> dict[str, Any]:
        """What the listing of ``month`` skipped or corrected, for the block's meta
        (e.g. ``skipped_items``, ``empty_searches``); {} when nothing."""
        ...

    def close(self) -> None:
        """Release sessions / clients."""
        ...


def cloud_layer(scene: S2Scene, product: str, recipe: Recipe) -> str | None:
    """How ``scene`` is cloud-masked as ``product``: ``"s2cloudless"`` (its L1C bands),
    ``"scl"`` (its L2A scene classification) or None (it has no usable cloud layer)."""
    if product not in scene.products:
        return None
    if recipe.s2_mask == "scl":
        return "scl" if product == "L2A" and scene.scl else None
    if "L1C" in scene.products:
        return "s2cloudless"
    return "scl" if product == "L2A" and scene.scl else None


def scenes_product(scenes: Sequence[S2Scene], recipe: Recipe) -> str | None:
    """The month's product for these acquisitions (:func:`pipeline.sentinel.model.month_product`
    over the acquisitions usable as each level, i.e. with a cloud layer)."""
    return month_product(recipe, {
        p: sum(1 for s in scenes if cloud_layer(s, p, recipe)) for p in ("L2A", "L1C")})


def listing_key(s2: Sequence[S2Scene], s1: Sequence[S1Scene], meta: dict[str, Any]) -> str:
    """What a month's listing holds, as a digest: every scene (id, products, asset hrefs
    without their query strings -- signatures change per request -- and DN offsets), the items
    left out and the searches that came back empty. Part of the block ledger's key, so a
    month whose catalogue changed (a skipped item fixed, new items, an empty search filled)
    is fetched again instead of resumed."""
    from pipeline.io.digest import json_digest

    def hrefs(assets: Any) -> list[list[str]]:
        return sorted([str(k), str(v).split("?", 1)[0]] for k, v in dict(assets).items())

    doc = {
        "s2": sorted([sc.id, list(sc.products), hrefs(sc.assets), sorted(sc.offsets.items())]
                     for sc in s2),
        "s1": sorted([sc.id, hrefs(sc.assets)] for sc in s1),
        "skipped": sorted(str(x.get("item")) + ":" + str(x.get("why"))
                          for x in meta.get("skipped_items", []) or []),
        "empty": sorted(str(c) for c in meta.get("empty_searches", []) or []),
    }
    return json_digest(doc, 16)


class Compositor:
    """The one compositor: :class:`~pipeline.sentinel.model.SentinelSource` that composites the
    scenes a :class:`SceneProvider` lists, with the recipe described in the module docstring.
    Thread-safe (blocks of a month run concurrently).

    Args:
        provider: the scene provider (local archive, STAC catalogue).
    """

    def __init__(self, provider: SceneProvider) -> None:
        self.provider = provider
        self.name = provider.name
        self.detector = CloudDetector()
        self._lock = threading.Lock()
        #: scenes whose L1C assets were refused (403: requester-pays without credentials):
        #: masked with their SCL instead (see ``SceneProvider.scl_when_l1c_refused``)
        self.l1c_refused: set[str] = set()
        self._s2: dict[str, list[S2Scene]] = {}
        self._s1: dict[str, list[S1Scene]] = {}
        # per-scene cloud probability cache (uint8 %, 255 = not computed) for one month at a time
        self._prob_month: str | None = None
        self._prob: dict[tuple[str, AoiGrid, bool], tuple[threading.Lock, np.ndarray]] = {}
        self.classified_pixels = 0  # s2cloudless predictions made (for tests / benchmarks)

    # scene listings are cached per month (every block of the month shares them)
    def s2_scenes(self, month: str, grid: AoiGrid) -> list[S2Scene]:
        """The provider's S2 scenes of ``month`` (listed once per month)."""
        with self._lock:
            if month not in self._s2:
                self._s2[month] = self.provider.list_s2(month, grid)
            return self._s2[month]

    def s1_scenes(self, month: str, grid: AoiGrid) -> list[S1Scene]:
        """The provider's S1 scenes of ``month`` (listed once per month)."""
        with self._lock:
            if month not in self._s1:
                self._s1[month] = self.provider.list_s1(month, grid)
            return self._s1[month]

    def listing_key(self, month: str, grid: AoiGrid) -> str:
        """:func:`listing_key` of the month's listing (lists it when not done yet)."""
        s2, s1 = self.s2_scenes(month, grid), self.s1_scenes(month, grid)
        return listing_key(s2, s1, self.provider.month_meta(month))

    def fetch_block(
        self, aoi: str, grid: AoiGrid, block: Block, month: str, recipe: Recipe,
        cover: np.ndarray | None = None,
    ) -> BlockResult:
        """Monthly composites of ``block`` (see the module docstring for the recipe).
        ``cover`` (bool (h, w), None = all): the pixels whose values the caller keeps;
        s2cloudless runs only within the post-processing and shadow reach of them, so the
        kept pixels are what classifying everything gives."""
        h, w = block.height, block.width
        res = BlockResult.empty(h, w)
        stats = {"requests": 0, "bytes": 0, "retries": 0}
        try:
            s2_scenes = self.s2_scenes(month, grid)
            s1_scenes = self.s1_scenes(month, grid)
        except SourceError as exc:
            raise SourceError(f"AOI {aoi} month {month}: {exc}") from None
        product = scenes_product(s2_scenes, recipe)
        if product is not None and any(cloud_layer(sc, product, recipe) == "s2cloudless"
                                       for sc in s2_scenes):
            self.detector.warm_up()  # the classifier starts while the first scenes are read
        used = 0
        layers = {"s2cloudless": 0, "scl": 0}
        skipped = {"other_product": 0, "no_cloud_layer": 0}
        if product is not None:
            acc = MeanAccumulator(len(S2_BANDS), h, w)
            # one observation per datatake: its overlapping granules are mosaicked (first clear
            # granule wins per pixel) before the mean and the count
            for got in self._mosaicked(
                    _groups(s2_scenes, lambda sc: sc.observation), acc,
                    lambda sc: _counting_retries(
                        lambda: self._s2_observation(grid, block, sc, product, recipe,
                                                     cover))):
                _merge_stats(stats, got.stats)
                if got.skip:
                    skipped[got.skip] += 1
                elif got.used and got.layer is not None:
                    layers[got.layer] += 1
                    used += 1
            res.s2, res.s2_count = acc.result()
        else:
            # no product for the month (L1C only and no allow_l1c_fallback, or no cloud
            # layer): every listed scene is a counted skip, so an empty month names its cause
            for sc in s2_scenes:
                usable_as_other = any(cloud_layer(sc, p, recipe) for p in sc.products)
                skipped["other_product" if usable_as_other else "no_cloud_layer"] += 1
        s1_used = 0
        acc1 = MeanAccumulator(len(S1_BANDS), h, w,
                               space="linear" if recipe.s1_mean == "linear" else "identity")
        passes = [sc for sc in s1_scenes if not (recipe.s1_orbit_pass and sc.orbit_pass
                                                  and sc.orbit_pass != recipe.s1_orbit_pass)]
        # one observation per pass: the overlapping slices of a pass are mosaicked
        for got in self._mosaicked(s1_passes(passes), acc1,
                                   lambda sc: _counting_retries(
                                       lambda: self._read_s1(grid, block, sc))):
            _merge_stats(stats, got.stats)
            s1_used += got.used
        res.s1, res.s1_count = acc1.result()
        res.meta = {
            "s2_product": product,
            "s2_scenes": sum(1 for sc in s2_scenes if product is not None
                             and cloud_layer(sc, product, recipe)),
            "s2_scenes_used": used,
            "s2_cloud_layers": layers,
            "s2_scenes_skipped": skipped,
            "s1_scenes": s1_used,
            "pixels": block.n_pixels,
            **stats,
            **self.provider.month_meta(month),
        }
        if self.provider.scl_when_l1c_refused:
            res.meta["l1c_refused"] = sorted(self.l1c_refused)
        return res

    def _s2_observation(
        self, grid: AoiGrid, block: Block, scene: S2Scene, product: str, recipe: Recipe,
        cover: np.ndarray | None = None,
    ) -> _SceneRead:
        """One S2 scene on ``block`` as ``product``: its clear mask and values, or why it is
        skipped (thread-safe; stats of its own)."""
        stats = {"requests": 0, "bytes": 0, "retries": 0}
        layer = cloud_layer(scene, product, recipe)
        if layer is None:
            why = "other_product" if product not in scene.products else "no_cloud_layer"
            log.info("%s: not usable as %s (%s): skipped", scene.id, product, why)
            return _SceneRead(stats, skip=why)
        if layer == "s2cloudless" and scene.id in self.l1c_refused:
            layer = "scl"
        clear: np.ndarray | None = None
        if layer == "s2cloudless":
            try:
                clear = self._clear_mask(grid, block, scene, recipe, stats, cover)
            except SourceError as exc:
                if not (self.provider.scl_when_l1c_refused and scene.scl
                        and product == "L2A" and "is refused" in str(exc)):
                    raise
                with self._lock:
                    self.l1c_refused.add(scene.id)
                log.warning("%s: L1C assets refused (%s): masked with its SCL layer instead",
                            scene.id, exc)
                layer = "scl"
        if layer == "scl":
            clear = self._scl_clear(grid, block, scene, recipe, stats)
        if clear is None:
            return _SceneRead(stats)
        vals, ok = self._read_s2(grid, block, scene, product, recipe, stats)
        # the catalogue's scene-edge rule, as on Earth Engine: an observation needs B8A and
        # B9; each band's mean uses the observations where it has data
        edge = ok[S2_BANDS.index("B8A")] & ok[S2_BANDS.index("B9")]
        return _SceneRead(stats, layer=layer, values=vals, ok=ok, seen=clear & edge)

    def _read_s1(self, grid: AoiGrid, block: Block, sc: S1Scene) -> _SceneRead:
        """One S1 scene on ``block``: ``values`` float32 (2, h, w) dB (NaN = no data), ``ok``
        bool (2, h, w) valid per band (a polarisation the scene lacks is no data for it only),
        ``seen`` where any band is; no values when it misses the block."""
        h, w = block.height, block.width
        present = [b for b in S1_BANDS if b in sc.bands]
        got, got_ok = read_window_on_grid([sc.file(b) for b in present], grid, block.col0,
                                          block.row0, w, h, "nearest", nodata=float("nan"))
        stats = {"requests": len(present), "bytes": int(got.nbytes), "retries": 0}
        data: np.ndarray = np.full((len(S1_BANDS), h, w), np.nan, np.float32)
        valid = np.zeros((len(S1_BANDS), h, w), bool)
        for i, b in enumerate(present):
            data[S1_BANDS.index(b)], valid[S1_BANDS.index(b)] = got[i], got_ok[i]
        if sc.units == "linear":
            with np.errstate(divide="ignore", invalid="ignore"):
                data = 10.0 * np.log10(np.where(data > 0, data, np.nan))
        valid &= np.isfinite(data)
        if not valid.any():
            return _SceneRead(stats)
        return _SceneRead(stats, values=data, ok=valid, seen=np.asarray(valid.any(axis=0)))

    def _mosaicked(
        self, groups: list[list[Any]], acc: MeanAccumulator,
        read: Callable[[Any], _SceneRead],
    ) -> Iterator[_SceneRead]:
        """Read every scene of ``groups`` (one group = one observation: a datatake's granules,
        a pass's slices) ``item_concurrency`` at a time, in order; mosaic each group's reads
        (first seen wins per pixel) and add the mosaic to ``acc``. Yields every read, in
        order, for the caller's counts; order, not timing, decides the bytes."""
        flat = [(gi, sc) for gi, members in enumerate(groups) for sc in members]
        obs, current = _Mosaic(), 0
        reads = ordered_map(lambda x: read(x[1]), flat, self.provider.item_concurrency,
                            self.provider.read_env)
        for (gi, _), got in zip(flat, reads, strict=True):
            if gi != current:
                obs.flush(acc)
                obs, current = _Mosaic(), gi
            if got.values is not None and got.ok is not None and got.seen is not None:
                obs.add(got.values, got.ok, got.seen)
            yield got
        obs.flush(acc)

    def _scl_clear(
        self, grid: AoiGrid, block: Block, scene: S2Scene, recipe: Recipe, stats: dict[str, int]
    ) -> np.ndarray | None:
        """(h, w) bool clear mask from the scene's L2A SCL layer (nearest onto the grid; the
        classes ``recipe.scl_mask_classes`` are masked), or None if it misses the block."""
        scl, valid = read_window_on_grid([scene.file("L2A", SCL_FILE)], grid, block.col0,
                                         block.row0, block.width, block.height, "nearest", 0)
        stats["requests"] += 1
        stats["bytes"] += scl.size
        ok = valid[0]
        if not ok.any():
            return None
        masked = np.isin(scl[0].astype(np.int64), np.asarray(recipe.scl_mask_classes, np.int64))
        return np.asarray(ok & ~masked)

    def _clear_mask(
        self, grid: AoiGrid, block: Block, scene: S2Scene, recipe: Recipe, stats: dict[str, int],
        cover: np.ndarray | None = None,
    ) -> np.ndarray | None:
        """(h, w) bool clear mask of one scene on the block, or None if it misses the block;
        exact on ``cover`` (bool (h, w), None = everywhere), which alone is classified, with
        the pixels within the halo's reach of it."""
        # the window reaches past the block by the shadow reach and by the post-processing
        # disks, so a block's mask never depends on where the block ends
        post = int(recipe.cloud_average_over) + int(recipe.cloud_dilation_size)
        shadow_px = int(np.ceil(SHADOW_DISTANCE_M / grid.res_m)) if recipe.shadow_mask else 0
        halo = shadow_px + post
        x0, y0, w, h = _cell_aligned(grid, block.col0 - halo, block.row0 - halo,
                                     block.width + 2 * halo, block.height + 2 * halo,
                                     recipe.cloud_grid_factor)
        off = scene.offsets.get("L1C", 0.0)
        dn, valid = read_window_on_grid(
            [scene.file("L1C", b) for b in S2CLOUDLESS_BANDS], grid, x0, y0, w, h, "bilinear",
            nodata=0,
        )
        stats["requests"] += len(S2CLOUDLESS_BANDS)
        stats["bytes"] += dn.size * 2
        ok = np.asarray(valid.all(axis=0))
        iy, ix = block.row0 - y0, block.col0 - x0
        inner = (slice(iy, iy + block.height), slice(ix, ix + block.width))
        if not ok[inner].any():
            return None
        refl = (dn + off) / np.float32(10000.0)
        want = ok
        if cover is not None:
            # a kept pixel's mask depends on probabilities within ``halo`` px of it (the
            # disks of the post-processing, the shadows' projection): a square reach holds
            # them, so the kept pixels are exactly what classifying the window gives
            reach = np.zeros(ok.shape, bool)
            reach[inner] = cover
            if halo:
                reach = ndimage.maximum_filter(reach, size=2 * halo + 1, mode="constant")
            want = ok & reach
        prob = self._probability(scene, grid, x0, y0, refl, ok, exact=post > 0,
                                 factor=recipe.cloud_grid_factor, want=want)
        clear = ok & ~postprocess_cloud_mask(prob, recipe.cloud_probability_threshold,
                                             recipe.cloud_average_over,
                                             recipe.cloud_dilation_size, ok)
        if recipe.shadow_mask:
            cloud = ok & ~clear
            nir = np.where(ok, refl[S2CLOUDLESS_BANDS.index("B08")], np.nan)
            swir = refl[S2CLOUDLESS_BANDS.index("B11")]
            water = ok & (nir < 0.05) & (swir < 0.05)
            clear &= ~project_shadows(cloud, nir, scene.sun_azimuth_deg, grid.res_m,
                                      SHADOW_DISTANCE_M, water=water)
        return clear[inner]

    def _probability(
        self, scene: S2Scene, grid: AoiGrid, col0: int, row0: int, refl: np.ndarray,
        ok: np.ndarray, exact: bool, factor: int = 1, want: np.ndarray | None = None,
    ) -> np.ndarray:
        """Cloud probability (float32 (h, w) in [0, 1], NaN = invalid) of a window whose
        upper-left pixel is (col0, row0) of ``grid`` (may start outside it by up to the shadow
        halo), computing only pixels not classified before for this scene.

        ``exact`` keeps the classifier's float probability (the ``s2cloudless`` preset: its
        disk average and threshold then see what the package sees); otherwise it is rounded to
        whole percent, as Earth Engine's S2_CLOUD_PROBABILITY stores it (the ``gee`` preset),
        and cached as uint8 (255 = not classified). ``factor`` > 1 classifies cells
        (:meth:`CloudDetector.cell_probability`; the window must start on a cell corner).
        ``want`` (bool (h, w), default ``ok``): the pixels to classify; the others are NaN
        unless classified before.
        """
        m = frame_pad(grid)
        month = scene.time.strftime("%Y-%m")
        with self._lock:
            if self._prob_month != month:
                self._prob_month, self._prob = month, {}
            key = (scene.id, grid, exact)
            if key not in self._prob:
                shape = (grid.height + 2 * m, grid.width + 2 * m)
                self._prob[key] = (threading.Lock(), np.full(shape, np.nan, np.float32)
                                   if exact else np.full(shape, 255, np.uint8))
            lock, cache = self._prob[key]
        h, w = ok.shape
        win = cache[row0 + m : row0 + m + h, col0 + m : col0 + m + w]
        with lock:
            todo = np.isnan(win) if exact else (win == 255)
            need = ok & todo if want is None else ok & want & todo
            if need.any():
                if factor > 1:
                    p, n = self.detector.cell_probability(refl, ok, need, factor)
                else:
                    p, n = self.detector.probability(refl, need), int(need.sum())
                win[need] = (p[need].astype(np.float32) if exact else
                             np.clip(np.rint(p[need] * 100.0), 0, 100).astype(np.uint8))
                self.classified_pixels += n
            if exact:
                return np.where(ok, win, np.float32(np.nan)).astype(np.float32)
            return np.where(ok & (win != 255), win / np.float32(100.0),
                            np.float32(np.nan)).astype(np.float32)

    def _read_s2(
        self, grid: AoiGrid, block: Block, scene: S2Scene, product: str, recipe: Recipe,
        stats: dict[str, int],
    ) -> tuple[np.ndarray, np.ndarray]:
        dn, valid = read_window_on_grid(
            [scene.file(product, file_band(b)) for b in S2_BANDS], grid, block.col0, block.row0,
            block.width, block.height, recipe.s2_resampling, nodata=0,
        )
        stats["requests"] += len(S2_BANDS)
        stats["bytes"] += dn.size * 2
        refl = (dn + scene.offsets.get(product, 0.0)) / np.float32(10000.0)
        return refl, np.asarray(valid)

    def close(self) -> None:
        """Release the provider's resources (sessions, clients) and the classifier's threads."""
        self.detector.close()
        self.provider.close()
