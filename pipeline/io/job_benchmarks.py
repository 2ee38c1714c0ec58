"""Snakemake's ``benchmark:`` files: each job's wall time, peak memory and CPU time.

Every rule names one (``benchmarks/<rule>/<job>.tsv`` under the dataset root,
:meth:`pipeline.layout.Layout.job_benchmark`); Snakemake writes it when the job finishes, in
its own format: a tab-separated header ``s  h:m:s  max_rss  max_vms  max_uss  max_pss  io_in
io_out  mean_load  cpu_time`` (Snakemake 9; ``--benchmark-extended`` adds columns) and one row
per run of the job, memory in MB, ``NA`` where the job ended before its first sample and
``-`` for a field Snakemake never set.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class JobBenchmark:
    """One job's record.

    Attributes:
        rule: the rule (the first folder under ``benchmarks/``).
        job: the job within the rule (the rest of the path without ``.tsv``, e.g.
            ``demo/2019-12``).
        seconds: wall time (s).
        max_rss_mb: peak resident memory (MB), None when Snakemake could not sample it.
        cpu_s: CPU time (user + system, s), None when not sampled.
    """

    rule: str
    job: str
    seconds: float
    max_rss_mb: float | None
    cpu_s: float | None


def _number(row: dict[str, str], key: str) -> float | None:
    value = (row.get(key) or "").strip()
    return None if value in ("", "NA", "-") else float(value)  # "-": a field never set


def read_job_benchmarks(folder: str | Path) -> tuple[list[JobBenchmark], list[str]]:
    """Every ``<rule>/<job>.tsv`` under ``folder`` (sorted by path), and one line per file that
    could not be read (``"<path>: <why>"``; a job killed while Snakemake wrote it, a file
    edited by hand). A missing ``folder`` gives two empty lists. A file with several rows
    (Snakemake's ``repeat()``) counts its last run."""
    root = Path(folder)
    records: list[JobBenchmark] = []
    problems: list[str] = []
    if not root.is_dir():
        return records, problems
    for path in sorted(root.rglob("*.tsv")):
        rel = path.relative_to(root)
        if len(rel.parts) < 2:
            problems.append(f"{path}: not under a rule's folder")
            continue
        try:
            with path.open(newline="") as fh:
                rows = list(csv.DictReader(fh, delimiter="\t"))
            if not rows:
                raise ValueError("no row")
            row = rows[-1]
            seconds = _number(row, "s")
            if seconds is None:
                raise ValueError("no wall time (column 's')")
            records.append(JobBenchmark(
                rule=rel.parts[0], job=rel.with_suffix("").relative_to(rel.parts[0]).as_posix(),
                seconds=seconds, max_rss_mb=_number(row, "max_rss"),
                cpu_s=_number(row, "cpu_time")))
        except (OSError, ValueError, csv.Error) as exc:
            problems.append(f"{path}: {exc}")
    return records, problems
