"""Shared plumbing for stage adapters: logging to the rule's log file and clean failures.

A stage module looks like::

    def run(aoi: AoiSpec, cfg: TileConfig, layout: Layout) -> None: ...

    if __name__ == "__main__":
        from stages._common import smk_main
        smk_main(snakemake, lambda smk: run(...))  # noqa: F821

``smk_main`` sends ``logging`` output to ``snakemake.log[0]`` and stderr, and turns a
:class:`~pipeline.errors.PipelineError` into a one-line message and exit status 1 (Snakemake
then removes the job's outputs, so bad input never leaves partial outputs behind).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import Any

from pipeline.errors import PipelineError

log = logging.getLogger("pipeline")


def setup_logging(log_path: str | None = None, level: int = logging.INFO) -> None:
    """Log to stderr and, if given, to ``log_path`` (the rule's log file)."""
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_path:
        handlers.append(logging.FileHandler(log_path, mode="w"))
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        handlers=handlers,
        force=True,
    )
    logging.captureWarnings(True)


def smk_main(smk: Any, body: Callable[[Any], Any]) -> None:
    """Run ``body(snakemake)`` with logging set up and PipelineErrors reported cleanly."""
    log_path = smk.log[0] if len(smk.log) else None
    setup_logging(log_path)
    try:
        body(smk)
    except PipelineError as exc:
        log.error("%s: %s", type(exc).__name__, exc)
        sys.exit(1)
