"""Snakemake benchmark files for the tests, written by Snakemake's own writer (so the format is
the real one): the job-benchmark reader's and the QA report's tests."""

from __future__ import annotations

from pathlib import Path

from snakemake.benchmark import BenchmarkRecord, write_benchmark_records


def write_job_benchmark(path: Path, seconds: float, rss: float | None = None,
                        cpu: float | None = None, extended: bool = False) -> None:
    """One job's file as Snakemake writes it (``rss`` None: finished before its first sample)."""
    rec = BenchmarkRecord(running_time=seconds, max_rss=rss, cpu_time=cpu)
    if extended:  # what Snakemake sets on a job's record for --benchmark-extended
        rec.jobid, rec.rule_name, rec.threads, rec.input = 3, path.parent.name, 2, []
        rec.wildcards, rec.params, rec.resources = {"aoi": "demo"}, {}, {"mem_mb": 3000}
    if rss is not None:
        rec.data_collected = True
    else:
        rec.process_gone = True
    path.parent.mkdir(parents=True, exist_ok=True)
    write_benchmark_records([rec], str(path), extended)
