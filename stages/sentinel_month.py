"""Stage ``sentinel_month`` (one job per AOI x month): fetch the month's blocks into the
write-optimised staging mosaic (``Layout.mosaic_staging``; rule ``sentinel`` builds the cube).

Reads the block plan (``Layout.sentinel_blocks``) and writes ``Layout.month_summary``; block
completion markers under ``Layout.ledger_dir`` make reruns resume (see
:mod:`pipeline.sentinel`).
"""

import contextlib
import logging
from pathlib import Path
from typing import Any

from pipeline.config import DaskConfig, SentinelConfig, parse_section
from pipeline.errors import ConfigError
from pipeline.grid import AoiGrid
from pipeline.io import read_json
from pipeline.layout import Layout
from pipeline.sentinel import run_month
from pipeline.sources.base import Block, Recipe, SentinelSource

log = logging.getLogger("pipeline.stages.sentinel_month")


def make_source(cfg: SentinelConfig, archive: str | None, aoi: str) -> SentinelSource:
    """The configured source (``local`` needs the AOI's ``sentinel_archive``)."""
    if cfg.source == "local":
        if not archive:
            raise ConfigError(
                f"AOI {aoi}: sentinel.source is 'local' but the AOI definition has no "
                "'sentinel_archive': point it at a scene archive (layout: README 'Local scene "
                "archive') or set sentinel.source: gee"
            )
        from pipeline.sources.local import LocalSource

        return LocalSource(archive)
    if cfg.source == "gee":
        from pipeline.sources.gee import GeeSource

        return GeeSource.from_config(cfg)
    raise ConfigError(f"sentinel.source {cfg.source!r} is not available yet: use 'local' or 'gee'")


def run(
    aoi: str,
    month: str,
    cfg: SentinelConfig,
    layout: Layout,
    archive: str | None,
    threads: int = 1,
    source: SentinelSource | None = None,
    dask: DaskConfig | None = None,
) -> dict[str, Any]:
    """Fetch one AOI-month; returns (and writes) the month summary.

    With ``dask.address`` set and the local source, the month's blocks (s2cloudless +
    compositing) run on that dask.distributed cluster (:mod:`pipeline.parallel`); each worker
    opens the scene archive itself and writes into the shared mosaic.
    """
    plan = read_json(layout.sentinel_blocks(aoi))
    grid = AoiGrid.from_dict(plan["grid"])
    blocks = [Block(b["col0"], b["row0"], b["width"], b["height"]) for b in plan["blocks"]]
    distributed = bool(dask and dask.address) and cfg.source == "local" and source is None
    if distributed:
        from pipeline.parallel import PerProcess
        from pipeline.sources.local import LocalSource

        make_source(cfg, archive, aoi).close()  # validates the archive path here, not remotely
        # workers run elsewhere (another cwd / node): ship absolute paths only
        src: Any = PerProcess(LocalSource, (str(Path(str(archive)).resolve()),))
        layout = Layout(layout.root.resolve())
    else:
        src = source if source is not None else make_source(cfg, archive, aoi)
    concurrency = cfg.gee.concurrency if cfg.source == "gee" else max(1, threads)
    with contextlib.ExitStack() as stack:
        ex = None
        if distributed:
            from pipeline.parallel import executor

            ex = stack.enter_context(executor(dask, threads))
            log.info("%s %s: blocks run on the dask cluster at %s", aoi, month, dask.address)
        try:
            summary = run_month(
                src, aoi, grid, blocks, month, Recipe.from_config(cfg), layout.mosaic_staging(aoi),
                layout.ledger_dir(aoi, month), concurrency=concurrency,
                summary_path=layout.month_summary(aoi, month), progress=True, executor=ex,
            )
        finally:
            src.close()
    log.info("%s %s: %d blocks fetched, %d resumed, product %s, %d S2 / %d S1 scenes, %.1f s",
             aoi, month, summary["blocks_done"], summary["blocks_skipped"],
             summary["s2_product"], summary["n_scenes"]["s2"], summary["n_scenes"]["s1"],
             summary["seconds"])
    return summary


def _main(smk: Any) -> None:
    cfg = parse_section("sentinel", dict(smk.params.cfg))
    # execution setting, not provenance: read from the workflow config (not params) so that
    # pointing the workflow at a dask cluster does not rerun finished months
    dask = parse_section("dask", dict(smk.config.get("dask") or {}))
    run(smk.wildcards.aoi, smk.wildcards.month, cfg, Layout(Path(smk.params.root)),
        smk.params.archive, threads=smk.threads, dask=dask)


if __name__ == "__main__":
    from stages._common import smk_main

    smk_main(snakemake, _main)  # type: ignore[name-defined]  # noqa: F821
