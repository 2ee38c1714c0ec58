"""The one month-fetch path of the ``sentinel_month`` and ``expand_sentinel_month`` rules.

Both rules describe their month as a :class:`MonthJob` (an AOI's or an expansion group's
mosaic, the month's blocks, where the scenes come from) and call :func:`fetch_month_job`,
which makes the decisions that must not differ between them:

* **the source**: :func:`pipeline.sentinel.sources.make_source` (or a stand-in for dask
  workers), keyed in the ledger by :func:`pipeline.sentinel.sources.source_identity`;
* **concurrency** (:func:`month_concurrency`): blocks in flight = ``sentinel.gee.concurrency``
  for Earth Engine, ``sentinel.stac.concurrency`` for STAC (network-bound), the job's threads
  for the local archive (CPU-bound);
* **dask** (:func:`runs_on_dask`): with ``dask.address`` set, the blocks of the local and STAC
  sources run on that cluster (:mod:`pipeline.parallel`); the job searches a STAC catalogue
  once and ships the month's scenes to the workers;
* then :func:`pipeline.sentinel.fetch.run_month` (resumable block loop, ledger, summary).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.config import DaskConfig, SentinelConfig
from pipeline.grid import AoiGrid
from pipeline.sentinel.fetch import run_month
from pipeline.sentinel.model import Block, FootprintCover, Recipe, SentinelSource
from pipeline.sentinel.sources import make_source, source_identity, stac_kwargs

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MonthJob:
    """One month of one mosaic (an AOI's or an expansion group's).

    Attributes:
        name: the AOI or expansion group (messages, the ledger's AOI key).
        month: ``YYYY-MM`` on the store's time axis.
        grid: the mosaic's grid (UTM, 10 m).
        blocks: the month's chunk-aligned, disjoint blocks of ``grid``.
        store: the staging store (``Layout.mosaic_staging``).
        ledger_dir: the month's block ledger (``Layout.ledger_dir``).
        summary: where the month summary JSON goes (``Layout.month_summary``).
        archive: the scene archive (``local``) or static STAC catalogue (``stac``) the
            setting names (an AOI's ``sentinel_archive`` or ``expand.sentinel_archive``);
            None = the STAC profile's public API.
        where: what ``archive`` belongs to, for messages (``"AOI demo"``, ``"expand"``).
        cover: the footprints whose pixels the month keeps (None = every block pixel;
            :class:`~pipeline.sentinel.model.FootprintCover`).
    """

    name: str
    month: str
    grid: AoiGrid
    blocks: tuple[Block, ...]
    store: Path
    ledger_dir: Path
    summary: Path
    archive: str | None
    where: str
    cover: FootprintCover | None = None

    def absolute(self) -> MonthJob:
        """The same job with absolute paths (dask workers run in another directory or
        on another node)."""
        return dataclasses.replace(self, store=self.store.resolve(),
                                   ledger_dir=self.ledger_dir.resolve(),
                                   summary=self.summary.resolve())


def month_concurrency(cfg: SentinelConfig, threads: int) -> int:
    """Blocks fetched at once: Earth Engine's and STAC's configured concurrency (network
    round trips overlap; a STAC profile with a connection cap, CDSE's 4, gets as many blocks
    as fit under it with ``item_concurrency`` scenes each), the job's threads for the local
    archive."""
    if cfg.source == "gee":
        return int(cfg.gee.concurrency)
    if cfg.source == "stac":
        from pipeline.sentinel.sources.stac_profiles import PROFILES

        cap = PROFILES[cfg.stac.profile].max_connections
        if cap:  # blocks x scenes per block within the provider's connection cap
            per_block = min(int(cfg.stac.item_concurrency), cap)
            return max(1, min(int(cfg.stac.concurrency), cap // per_block))
        return int(cfg.stac.concurrency)
    return max(1, int(threads))


def runs_on_dask(cfg: SentinelConfig, dask: DaskConfig | None,
                 source: SentinelSource | None = None) -> bool:
    """True when the month's blocks run on the configured dask cluster: ``dask.address`` is
    set, the source composites scenes here (``local`` or ``stac``; Earth Engine computes
    server-side) and no ready source was handed in (tests)."""
    return bool(dask and dask.address) and cfg.source in ("local", "stac") and source is None


def _dask_source(job: MonthJob, cfg: SentinelConfig) -> Any:
    """A picklable source for dask workers: each worker process builds its own (once)."""
    from pipeline.parallel import PerProcess

    if cfg.source == "stac":
        from pipeline.sentinel.sources.stac import OnWorkers, build_stac_source

        kwargs = stac_kwargs(cfg, job.archive, absolute=True)
        ref = PerProcess(build_stac_source, (tuple(sorted(kwargs.items())),))
        # the job searches once; workers get the month's scenes and never search
        return OnWorkers(ref, ref.get().provider.month_listing(job.month, job.grid))
    from pipeline.sentinel.sources.local import local_source

    make_source(cfg, job.archive, job.where).close()  # validate the archive here
    return PerProcess(local_source, (str(Path(str(job.archive)).resolve()),))


def fetch_month_job(
    job: MonthJob,
    cfg: SentinelConfig,
    *,
    threads: int = 1,
    dask: DaskConfig | None = None,
    source: SentinelSource | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Fetch one month of one mosaic, resumably; returns (and writes) the month summary.

    Args:
        job: what to fetch and where it goes.
        cfg: the ``sentinel`` section, execution settings included.
        threads: the job's threads (the local archive's block concurrency, dask's local
            fallback).
        dask: the ``dask`` section (:func:`runs_on_dask`).
        source: a ready source (tests); None builds the configured one.
        progress: a tqdm bar over the month's blocks.

    Raises:
        ConfigError: the source is misconfigured. SourceError / QuotaExhaustedError: from the
            fetch (finished blocks are kept; a rerun resumes).
    """
    distributed = runs_on_dask(cfg, dask, source)
    if distributed:
        job = job.absolute()
    src: Any = (_dask_source(job, cfg) if distributed else
                source if source is not None else make_source(cfg, job.archive, job.where))
    with contextlib.ExitStack() as stack:
        ex = None
        if distributed:
            from pipeline.parallel import executor

            assert dask is not None
            ex = stack.enter_context(executor(dask, threads))
            log.info("%s %s: blocks run on the dask cluster at %s", job.name, job.month,
                     dask.address)
        try:
            return run_month(
                src, job.name, job.grid, job.blocks, job.month, Recipe.from_config(cfg),
                job.store, job.ledger_dir, concurrency=month_concurrency(cfg, threads),
                summary_path=job.summary, progress=progress, executor=ex,
                identity=source_identity(cfg, job.archive, job.month),
                allow_lost=bool(cfg.allow_lost_items), cover=job.cover,
            )
        finally:
            if source is None:
                src.close()
