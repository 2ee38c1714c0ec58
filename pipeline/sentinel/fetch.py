"""Sentinel driver: fetch one (AOI, month) block by block into the AOI mosaic, resumably.

For every planned block (see :mod:`pipeline.sentinel.blocks`) a bounded thread pool calls
``source.fetch_block``; each result is written into the month's time slice of the Zarr mosaic
(:func:`pipeline.io.mosaic.write_block`) and only *then* a ledger marker
``<ledger_dir>/<block.id>.json`` is written (atomically). A crash can therefore lose at most
blocks in flight, never leave a marker for data that is not there; a rerun skips every block
with a marker and fetches only the rest. Blocks are chunk-aligned and disjoint, so threads and
concurrent month jobs never write the same chunk.

The month summary (``Layout.month_summary``) aggregates every block's marker (this run's and
earlier runs'): requests, pixels, bytes, retries, seconds, s2_product, scenes, blocks_done
(fetched by this run), blocks_skipped (already in the ledger).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import FIRST_EXCEPTION, Executor, Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.errors import GridError, PipelineError, QuotaExhaustedError, SourceError
from pipeline.grid import AoiGrid
from pipeline.io.atomic import ensure_dir
from pipeline.io.digest import json_digest
from pipeline.io.jsonfile import read_json, write_json
from pipeline.io.mosaic import write_block, write_month_product
from pipeline.io.mosaic_read import mosaic_months
from pipeline.sentinel.model import (
    Block,
    BlockResult,
    FootprintCover,
    Recipe,
    SentinelSource,
    is_superseded,
)

log = logging.getLogger(__name__)

_SUM_KEYS = ("requests", "pixels", "bytes", "retries")
#: How many workflow runs retried a month for its skipped items (in the month's ledger).
RETRIES_FILE = "_skip_retries.json"


def _marker(ledger_dir: Path, block: Block) -> Path:
    return ledger_dir / f"{block.id}.json"


#: Recipe fields added after ledgers existed: left out of the key at their default, so an
#: upgrade does not refetch the months it finished (their bytes are what the default makes).
_KEYED_ONLY_WHEN_SET: dict[str, Any] = {"cloud_grid_factor": 1}


def recipe_key(recipe: Recipe, identity: dict[str, Any] | None = None) -> str:
    """Fingerprint of everything that decides a block's bytes besides its grid window: the
    compositing recipe and the source's identity (e.g. ``{"source": "local", "archive":
    <absolute path>}``). Stored in every ledger marker; a marker with another key does not
    count as done, so changing the recipe or the source refetches instead of resuming."""
    rec = dataclasses.asdict(recipe)
    for k, default in _KEYED_ONLY_WHEN_SET.items():
        if rec.get(k) == default:
            del rec[k]
    doc = {"recipe": rec, "source": identity or {}}
    return json_digest(doc, 16)


def block_cover(cover: FootprintCover | None, block: Block, key: str
                ) -> tuple[str, np.ndarray | None]:
    """A block's ledger key and kept pixels (bool (h, w), None = all): ``key``
    (:func:`recipe_key`) for a block the footprints cover entirely, else ``key`` with a
    digest of which pixels they cover, so a block whose footprints changed is fetched again."""
    if cover is None:
        return key, None
    keep = cover.block_mask(block)
    if keep.all():
        return key, None
    digest = json_digest({"shape": list(keep.shape), "bits": np.packbits(keep).tobytes().hex()},
                         16)
    return f"{key}-{digest}", keep


def _is_done(ledger_dir: Path, block: Block, key: str) -> bool:
    path = _marker(ledger_dir, block)
    if not path.is_file():
        return False
    try:
        return read_json(path).get("recipe_key") == key
    except PipelineError:  # unreadable marker: fetch again
        return False


def run_month(
    source: SentinelSource,
    aoi: str,
    grid: AoiGrid,
    blocks: Sequence[Block],
    month: str,
    recipe: Recipe,
    store_path: str | Path,
    ledger_dir: str | Path,
    concurrency: int = 1,
    summary_path: str | Path | None = None,
    progress: bool = False,
    executor: Executor | None = None,
    identity: dict[str, Any] | None = None,
    allow_lost: bool = False,
    cover: FootprintCover | None = None,
) -> dict[str, Any]:
    """Fetch every not-yet-done block of ``month`` and write it into the mosaic.

    Args:
        source: a :class:`~pipeline.sentinel.model.SentinelSource` (thread-safe fetch_block).
        aoi: AOI name (messages, source requests).
        grid: the AOI grid the mosaic was made for.
        blocks: disjoint, chunk-aligned blocks (block planner output).
        month: ``YYYY-MM``; must be on the mosaic's time axis.
        recipe: compositing recipe.
        store_path: the AOI's ``.zarr`` mosaic (created by ``init_mosaic``).
        ledger_dir: this month's ledger folder (``Layout.ledger_dir``).
        concurrency: threads fetching blocks at once (>= 1).
        summary_path: where to write the summary JSON atomically (``Layout.month_summary``).
        progress: show a tqdm progress bar.
        executor: run the blocks on this ``concurrent.futures.Executor`` instead of a pool of
            ``concurrency`` threads, e.g. a dask.distributed cluster's
            (:func:`pipeline.parallel.executor`); each block is one picklable call of
            :func:`fetch_block_into_mosaic`, so ``source`` must pickle (wrap it in
            :class:`pipeline.parallel.PerProcess`) and the workers must see ``store_path``.
        identity: what identifies the source's data (source kind, archive); with ``recipe``
            it keys the ledger (:func:`recipe_key`): blocks fetched with another recipe or
            source are fetched again.
        allow_lost: build a month whose listed items of a sensor were all lost (skipped,
            refused) empty instead of failing (``sentinel.allow_lost_items``).
        cover: the footprints whose pixels are kept (None = every block pixel): a block's
            pixels outside it are stored unobserved, and which of its pixels are kept keys
            its ledger marker too (:func:`block_cover`).

    Returns:
        The summary dict (also written to ``summary_path``).

    Raises:
        QuotaExhaustedError: the source ran out of quota; finished blocks stay, rerun resumes.
        SourceError / other errors from the source: pending blocks are cancelled first; a
            month whose listed items of a sensor were all lost (:func:`check_nothing_lost`).
    """
    t0 = time.monotonic()
    months = mosaic_months(store_path)
    if month not in months:
        raise GridError(
            f"AOI {aoi}: month {month} is not on the time axis of {store_path} "
            f"({months[0]}..{months[-1]}): rerun rule sentinel_init"
        )
    t = months.index(month)
    ledger = Path(ledger_dir)
    ensure_dir(ledger)
    listed = getattr(source, "listing_key", None)
    if callable(listed):  # what the catalogue lists this month keys the ledger too
        identity = {**(identity or {}), "listing": listed(month, grid)}
    key = recipe_key(recipe, identity)
    # the keys only: a pixel mask per block held for the whole month would grow with the AOI
    keyed = {b.id: block_cover(cover, b, key)[0] for b in blocks}
    todo = [b for b in blocks if not _is_done(ledger, b, keyed[b.id])]
    stale = sum(1 for b in todo if _marker(ledger, b).exists())
    if stale:
        log.info("%s %s: %d blocks were fetched with another recipe or source: fetching them "
                 "again", aoi, month, stale)
    skipped = len(blocks) - len(todo)
    if skipped:
        log.info("%s %s: %d of %d blocks already done (resume)", aoi, month, skipped, len(blocks))

    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(todo), desc=f"{aoi} {month}", unit="block")
    error: BaseException | None = None
    own_pool = executor is None
    pool: Executor = (
        ThreadPoolExecutor(max_workers=max(1, int(concurrency))) if executor is None else executor
    )
    try:
        futures: list[Future[str]] = []
        for b in todo:
            futures.append(pool.submit(
                fetch_block_into_mosaic, source, aoi, grid, b, month, recipe, store_path, t,
                ledger, keyed[b.id], None if cover is None else cover.around(b)))
        pending = set(futures)
        while pending:
            finished, pending = wait(pending, return_when=FIRST_EXCEPTION)
            if bar is not None:
                bar.update(len(finished))
            failed = [f for f in finished if f.exception() is not None]
            if failed:
                error = failed[0].exception()
                for f in pending:
                    f.cancel()
                wait(pending)  # blocks already running finish (data + marker)
                break
    finally:
        if own_pool:
            pool.shutdown(wait=True)
    # blocks written by this run (data + marker), whether or not another block failed
    done = [f.result() for f in futures if f.done() and not f.cancelled() and f.exception() is None]
    if bar is not None:
        bar.close()
    if error is not None:
        n_ok = skipped + len(done)
        if isinstance(error, QuotaExhaustedError):
            raise QuotaExhaustedError(
                f"AOI {aoi} month {month}: quota exhausted after {n_ok}/{len(blocks)} blocks "
                f"({error}); finished blocks are kept in {ledger}: rerun the same command later "
                "and it resumes with the remaining blocks"
            ) from error
        if isinstance(error, PipelineError):
            raise error
        raise SourceError(
            f"AOI {aoi} month {month}: fetching failed after {n_ok}/{len(blocks)} blocks "
            f"({type(error).__name__}: {error}); rerun resumes with the remaining blocks"
        ) from error

    summary = summarize_month(aoi, month, blocks, ledger, blocks_done=len(done),
                              blocks_skipped=skipped, seconds=time.monotonic() - t0,
                              source=getattr(source, "name", type(source).__name__))
    summary["recipe"] = {k: list(v) if isinstance(v, tuple) else v
                         for k, v in dataclasses.asdict(recipe).items()}
    if not allow_lost:
        check_nothing_lost(summary, f"AOI {aoi} month {month}")
    write_month_product(store_path, t, summary["s2_product"])
    summary["skip_retries"] = skip_retries(ledger)
    if summary_path is not None:
        write_json(summary_path, summary)
    return summary


def lost_items(skipped: Iterable[dict[str, str]]) -> dict[str, dict[str, int]]:
    """``{"s2": {cause: n}, "s1": {cause: n}}`` of skipped catalogue items (an entry without a
    sensor counts for S2; superseded processings are left out: nothing was lost)."""
    out: dict[str, dict[str, int]] = {"s2": {}, "s1": {}}
    for x in skipped:
        if is_superseded(x):
            continue
        cause = str(x.get("cause") or "skipped")
        sensor = str(x.get("sensor") or "s2")
        out.setdefault(sensor, {})[cause] = out.setdefault(sensor, {}).get(cause, 0) + 1
    return out


def check_nothing_lost(summary: dict[str, Any], where: str) -> None:
    """Refuse a month whose catalogue listed items of a sensor and lost every one of them (a
    missing band asset, a refused href, uncalibrated S1, a profile that cannot read them):
    without this the month is an empty series that exits 0.

    Raises:
        SourceError: naming the sensor, the causes and what to do.
    """
    n = summary.get("n_scenes") or {}
    for sensor, causes in (summary.get("lost_items") or {}).items():
        if causes and int(n.get(sensor, 0) or 0) == 0:
            listed = ", ".join(f"{k}: {v}" for k, v in sorted(causes.items()))
            items = [x.get("item") for x in summary.get("skipped_items", [])
                     if str(x.get("sensor") or "s2") == sensor and not is_superseded(x)]
            raise SourceError(
                f"{where}: every {sensor.upper()} item the catalogue listed was lost ({listed}; "
                f"items {items[:3]}{' ...' if len(items) > 3 else ''}): the month would be "
                "empty. Check the profile / collection (docs/sources.md lists what each reads), "
                "fix the catalogue, or set sentinel.allow_lost_items: true to build such "
                "months empty"
            )


def month_cause(summary: dict[str, Any], sensor: str) -> str:
    """Why ``sensor`` has no observation in a month (its summary): ``"nothing acquired"`` (the
    catalogue listed nothing), ``"lost items (cause: n, ...)"``, ``"scenes not usable (...)"``
    (product policy, no cloud layer) or ``"no clear pixel"`` (scenes read, every pixel masked:
    clouds, no data); ``""`` when it has observations or the summary cannot tell."""
    observed = summary.get("observed_px")
    if not isinstance(observed, dict) or int(observed.get(sensor, 0) or 0) > 0:
        return ""
    lost = (summary.get("lost_items") or {}).get(sensor) or {}
    unusable = (summary.get("s2_not_usable") or {}) if sensor == "s2" else {}
    if int((summary.get("n_scenes") or {}).get(sensor, 0) or 0) > 0:
        return "no clear pixel"
    if lost:
        return "lost items (" + ", ".join(f"{k}: {v}" for k, v in sorted(lost.items())) + ")"
    if unusable:
        return "scenes not usable (" + ", ".join(f"{k}: {v}" for k, v in unusable.items()) + ")"
    return "nothing acquired"


def check_series(where: str, per_month: dict[str, dict[str, Any]], allow_empty: bool
                 ) -> dict[str, dict[str, str]]:
    """The AOI-level guard against an empty series that exits 0: a sensor without a single
    observed pixel in any month is an error, unless nothing was acquired in any month (then a
    warning: an AOI before the mission, say) or ``allow_empty`` (sentinel.allow_empty_series).

    Args:
        where: what the series belongs to, e.g. ``"AOI demo"``.
        per_month: ``{month: month summary}``.

    Returns:
        ``{sensor: {month: cause}}`` of the sensors whose series is empty (for the summary).

    Raises:
        SourceError: naming the AOI, the sensor, each month's cause and what to do.
    """
    empty: dict[str, dict[str, str]] = {}
    for sensor in ("s2", "s1"):
        causes = {m: month_cause(s, sensor) for m, s in per_month.items()}
        if not causes or not all(causes.values()):
            continue  # observed somewhere, or a summary that cannot tell
        empty[sensor] = causes
        listed = "; ".join(f"{m}: {c}" for m, c in sorted(causes.items()))
        if all(c == "nothing acquired" for c in causes.values()):
            log.warning("%s: the catalogue holds no %s acquisition in any of its %d months "
                        "(%s): its %s series is empty; check the dates and location",
                        where, sensor.upper(), len(causes), ", ".join(sorted(causes)),
                        sensor.upper())
        elif allow_empty:
            log.warning("%s: empty %s series (%s), kept: sentinel.allow_empty_series is true",
                        where, sensor.upper(), listed)
        else:
            raise SourceError(
                f"{where}: the {sensor.upper()} series is empty: not one pixel was observed "
                f"in any month ({listed}). Fix the cause the months name (the profile or "
                "collection: docs/sources.md; the cloud settings; sentinel.allow_l1c_fallback), "
                "or set sentinel.allow_empty_series: true to build it without that sensor"
            )
    return empty


def skip_retries(ledger: Path) -> int:
    """How many workflow runs have retried this month for its skipped items."""
    path = Path(ledger) / RETRIES_FILE
    try:
        return int((read_json(path) if path.is_file() else {}).get("runs", 0) or 0)
    except PipelineError:
        return 0


def months_to_retry(months: dict[str, tuple[Path, Path]], max_runs: int) -> dict[str, list[str]]:
    """Months whose last fetch skipped catalogue items (a band asset missing or refused) or
    left a sensor without scenes after a search came back empty, and that fewer than
    ``max_runs`` later runs have retried: ``{month: reasons}``, each reason ``"item <id>
    skipped"`` or ``"search of <collection> empty"``.

    Args:
        months: ``{month: (month summary, ledger folder)}``.
        max_runs: ``sentinel.stac.skip_retry_runs``.

    The caller (the Snakefile, at parse time) marks each retry with :func:`mark_retry` and
    removes the summary, so the run fetches the month again: the listing keys the ledger, so
    blocks are fetched anew only when the catalogue changed (a fixed item, an ingested
    acquisition), and resumed otherwise. A month that truly had no acquisition costs the bounded
    number of extra searches.
    """
    out: dict[str, list[str]] = {}
    for month, (path, ledger) in months.items():
        if not path.is_file():
            continue
        try:
            doc = read_json(path)
        except PipelineError:
            continue
        why = [f"item {x.get('item')} skipped" for x in doc.get("skipped_items", []) or []
               if not is_superseded(x)]  # another processing chosen: nothing to heal
        # an empty search is retried only when a sensor came out empty (a month whose L2A
        # search is empty but whose L1C search found the acquisitions is complete)
        n = doc.get("n_scenes", {}) or {}
        if int(n.get("s2", 0) or 0) == 0 or int(n.get("s1", 0) or 0) == 0:
            why += [f"search of {c} empty" for c in doc.get("empty_searches", []) or []]
        if why and skip_retries(ledger) < max_runs:
            out[month] = why
    return out


def mark_retry(ledger: Path) -> int:
    """Count one more retry of the month whose ledger this is; returns the new count."""
    n = skip_retries(ledger) + 1
    ensure_dir(Path(ledger))
    write_json(Path(ledger) / RETRIES_FILE, {"runs": n})
    return n


def fetch_block_into_mosaic(
    source: SentinelSource,
    aoi: str,
    grid: AoiGrid,
    block: Block,
    month: str,
    recipe: Recipe,
    store_path: str | Path,
    t: int,
    ledger: Path,
    key: str = "",
    cover: FootprintCover | None = None,
) -> str:
    """Fetch one block, write it into time slice ``t`` of the mosaic, then its ledger marker.

    One task of :func:`run_month` (top-level, so it pickles for a dask cluster). ``cover``
    (the footprints reaching into the block, None = every pixel): the pixels kept; the
    others are stored unobserved, whatever the source returned there; a block it does not
    reach at all is not fetched (stored unobserved, its marker says ``uncovered``). Returns
    the block id.
    """
    tb = time.monotonic()
    keep = block_cover(cover, block, key)[1]
    if keep is not None and not keep.any():
        # no footprint reaches into the block (a block list planned for more footprints than
        # this cover holds; neither planner makes one today): nothing is asked of the source,
        # the block is stored unobserved, overwriting what an earlier cover kept there
        result = BlockResult.empty(block.height, block.width)
        result.meta["uncovered"] = True
    else:
        result = source.fetch_block(aoi, grid, block, month, recipe, keep)
        if keep is not None:
            result.within(keep)
    write_block(store_path, t, block, result)
    # everything JSON can hold: counts, and the lists / dicts the month summary aggregates
    # (skipped items, empty searches, cloud layers)
    meta = {k: v for k, v in result.meta.items() if _jsonable(v)}
    meta.update(block=block.id, seconds=round(time.monotonic() - tb, 3), recipe_key=key,
                # pixels of the block with at least one observation, per sensor: every source
                # fills the counts, so an empty series is seen whatever emptied it
                s2_observed_px=int(np.count_nonzero(result.s2_count)),
                s1_observed_px=int(np.count_nonzero(result.s1_count)))
    write_json(_marker(ledger, block), meta)  # marker strictly after the data
    return block.id


def _jsonable(v: Any) -> bool:
    if v is None or isinstance(v, bool | int | float | str):
        return True
    if isinstance(v, list | tuple):
        return all(_jsonable(x) for x in v)
    if isinstance(v, dict):
        return all(isinstance(k, str) and _jsonable(x) for k, x in v.items())
    return False


def summarize_month(
    aoi: str,
    month: str,
    blocks: Sequence[Block],
    ledger: Path,
    blocks_done: int,
    blocks_skipped: int,
    seconds: float,
    source: str,
) -> dict[str, Any]:
    """Aggregate the ledger markers of ``blocks`` into the month summary dict."""
    totals = dict.fromkeys(_SUM_KEYS, 0)
    products: set[str] = set()
    s2_scenes = s1_scenes = 0
    fetch_seconds = 0.0
    skipped_items: dict[str, dict[str, str]] = {}
    empty: set[str] = set()
    corrected: set[str] = set()
    search_retries = 0
    observed: dict[str, int] | None = {"s2": 0, "s1": 0}
    not_usable: dict[str, int] = {}
    uncovered = 0
    for b in blocks:
        m = read_json(_marker(ledger, b))
        uncovered += bool(m.get("uncovered"))
        if observed is not None and "s2_observed_px" in m:
            observed["s2"] += int(m["s2_observed_px"])
            observed["s1"] += int(m.get("s1_observed_px", 0) or 0)
        else:  # a marker of an older version: unknown
            observed = None
        for why, n in (m.get("s2_scenes_skipped") or {}).items():
            not_usable[str(why)] = max(not_usable.get(str(why), 0), int(n or 0))
        search_retries = max(search_retries, int(m.get("search_retries", 0) or 0))
        for it in m.get("skipped_items", []) or []:
            skipped_items[str(it.get("item"))] = {str(k): str(v) for k, v in it.items()}
        empty.update(str(c) for c in m.get("empty_searches", []) or [])
        corrected.update(str(c) for c in m.get("offset_corrected", []) or [])
        for k in _SUM_KEYS:
            totals[k] += int(m.get(k, 0) or 0)
        if m.get("s2_product"):
            products.add(str(m["s2_product"]))
        s2_scenes = max(s2_scenes, int(m.get("s2_scenes", 0) or 0))
        s1_scenes = max(s1_scenes, int(m.get("s1_scenes", 0) or 0))
        fetch_seconds += float(m.get("seconds", 0.0))
    # one product per month (collection level); a mix can only come from a changed archive
    product = "L2A" if "L2A" in products else ("L1C" if "L1C" in products else None)
    # retries: every HTTP retry of the month, the blocks' reads (GDAL's) and its searches
    totals["retries"] += search_retries
    return {
        "aoi": aoi,
        "month": month,
        "source": source,
        "blocks": len(blocks),
        "blocks_done": blocks_done,
        "blocks_skipped": blocks_skipped,
        # blocks no footprint of the month reaches: not fetched, stored unobserved
        "blocks_uncovered": uncovered,
        **totals,
        "seconds": round(seconds, 3),
        "fetch_seconds": round(fetch_seconds, 3),
        "s2_product": product,
        "n_scenes": {"s2": s2_scenes, "s1": s1_scenes},
        "no_observation": product is None and s1_scenes == 0,
        # pixels with at least one observation per sensor (None: ledger of an older version)
        "observed_px": observed,
        # S2 scenes listed but not usable as the month's product (other_product: L1C-only in
        # an L2A month, or L1C without allow_l1c_fallback; no_cloud_layer)
        "s2_not_usable": {k: v for k, v in sorted(not_usable.items()) if v},
        # STAC: items left out (named, with the reason) and collections the search found empty
        "skipped_items": [v for _, v in sorted(skipped_items.items())],
        # catalogue items that gave no observation, by sensor and cause (superseded: another
        # processing of the same acquisition was used, nothing is lost)
        "lost_items": lost_items(skipped_items.values()),
        "empty_searches": sorted(empty),
        # STAC: items read with offset 0 although their flag said the offset was still there
        "offset_corrected": sorted(corrected),
        "search_retries": search_retries,
    }
