"""The one adapter of every stage: parse the ``snakemake`` object, call the driver, log.

A stage is ``run_stage(snakemake, main)`` with ``main(s: Stage)`` calling its driver. Settings
come from the whole workflow configuration, validated by the Snakefile's own ``load_config``
(rule params only carry the output-deciding settings, as rerun triggers); AOIs are loaded from
the files the rule names with ``load_aoi``. A PipelineError becomes one log line and exit
status 1 (Snakemake then removes the job's outputs). See docs/development.md.
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
from pipeline.logs import setup_logging


class Stage:
    """The parsed ``snakemake`` object of one job."""

    def __init__(self, smk: Any) -> None:
        self.smk = smk
        self.month = str(getattr(smk.wildcards, "month", ""))
        self.group = str(getattr(smk.wildcards, "aoi", ""))  # expansion group
        self.threads = int(smk.threads)
        self.output = [str(p) for p in smk.output]

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


def run_stage(smk: Any, body: Callable[[Stage], Any]) -> None:
    """Run ``body(Stage(snakemake))`` with logging set up and PipelineErrors reported cleanly."""
    setup_logging(smk.log[0] if len(smk.log) else None)
    try:
        body(Stage(smk))
    except PipelineError as exc:
        logging.getLogger("pipeline").error("%s: %s", type(exc).__name__, exc)
        sys.exit(1)
