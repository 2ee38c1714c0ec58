"""The one adapter every stage uses: parse the ``snakemake`` object, call the driver, log.

A stage script is three lines::

    from pipeline.hr.drivers import label_aoi
    from stages._common import run_stage
    run_stage(snakemake, lambda s: label_aoi(s.aoi, s.config.labels, s.layout))  # noqa: F821

:class:`Stage` gives the driver its arguments in the pipeline's own types:

* ``config``: the whole workflow configuration, validated by the same
  :func:`pipeline.config.load_config` the Snakefile ran at parse time. Every setting comes from
  here, execution settings included (Earth Engine concurrency, retries, the dask address);
  rule ``params`` only carry the settings that decide output bytes, so that Snakemake reruns a
  job exactly when those change.
* ``aoi`` / ``aois``: :class:`pipeline.config.AoiSpec`, loaded from the AOI definition files
  the rule names (``params.aoi_file`` / ``params.aoi_files``) with :func:`load_aoi`, the one
  loader the Snakefile uses too.
* ``layout``: the output :class:`pipeline.layout.Layout` (``params.root``).

:func:`run_stage` sends ``logging`` output to the rule's log file and stderr, and turns a
:class:`~pipeline.errors.PipelineError` into a one-line message and exit status 1 (Snakemake
then removes the job's outputs, so bad input never leaves partial outputs behind).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from functools import cached_property
from pathlib import Path
from typing import Any

from pipeline.aoi import AoiSpec, load_aoi
from pipeline.config import Config, load_config
from pipeline.errors import PipelineError
from pipeline.layout import Layout

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


class Stage:
    """The parsed ``snakemake`` object of one job (see the module docstring)."""

    def __init__(self, smk: Any) -> None:
        self.smk = smk

    @cached_property
    def config(self) -> Config:
        return load_config(dict(self.smk.config), "workflow configuration")

    @cached_property
    def layout(self) -> Layout:
        return Layout(Path(str(self.smk.params.root)))

    @cached_property
    def aoi(self) -> AoiSpec:
        return load_aoi(str(self.smk.params.aoi_file))

    @cached_property
    def aois(self) -> list[AoiSpec]:
        return [load_aoi(str(p)) for p in self.smk.params.aoi_files]

    @property
    def month(self) -> str:
        return str(self.smk.wildcards.month)

    @property
    def group(self) -> str:
        """Expansion group (the ``aoi`` wildcard of the expand rules)."""
        return str(self.smk.wildcards.aoi)

    @property
    def threads(self) -> int:
        return int(self.smk.threads)

    @property
    def output(self) -> list[str]:
        return [str(p) for p in self.smk.output]


def run_stage(smk: Any, body: Callable[[Stage], Any]) -> None:
    """Run ``body(Stage(snakemake))`` with logging set up and PipelineErrors reported cleanly."""
    setup_logging(smk.log[0] if len(smk.log) else None)
    try:
        body(Stage(smk))
    except PipelineError as exc:
        log.error("%s: %s", type(exc).__name__, exc)
        sys.exit(1)
