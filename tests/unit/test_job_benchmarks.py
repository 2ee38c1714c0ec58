"""Each job's time and memory: Snakemake's benchmark files (written here by Snakemake's own
writer, so the format is the real one), read back and summed per rule for the QA report."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.dataset.report import html_table, job_time_rows
from pipeline.io.job_benchmarks import JobBenchmark, read_job_benchmarks
from pipeline.layout import Layout
from tests.job_benchmark_helpers import write_job_benchmark as _write


def test_every_rule_names_its_benchmark_file_in_the_layout() -> None:
    rules = "".join(p.read_text() for p in (Path(__file__).parents[2] / "workflow" /
                                            "rules").glob("*.smk"))
    n_rules = rules.count("\nrule ") + rules.count("\n    rule") + rules.count("checkpoint ")
    assert rules.count("benchmark:") == n_rules > 20
    assert rules.count("L.job_benchmark(") == n_rules
    lay = Layout(Path("/r/demo"))
    assert lay.job_benchmark("sentinel_month", "{aoi}/{month}") == Path(
        "/r/demo/benchmarks/sentinel_month/{aoi}/{month}.tsv")


def test_snakemakes_files_are_read_back_with_their_values(tmp_path: Path) -> None:
    lay = Layout(tmp_path)
    _write(lay.job_benchmark("tile", "demo"), 12.345, rss=423.1, cpu=20.5)
    _write(lay.job_benchmark("sentinel_month", "demo/2019-12"), 6.5, rss=1003.0, cpu=11.2,
           extended=True)
    _write(lay.job_benchmark("footprints", "demo"), 0.2)  # too short to sample: NA
    records, problems = read_job_benchmarks(lay.job_benchmarks_dir())
    assert problems == []
    by = {(r.rule, r.job): r for r in records}
    # Snakemake rounds to 2 decimals
    assert by[("tile", "demo")] == JobBenchmark("tile", "demo", 12.35, 423.1, 20.5)
    assert by[("sentinel_month", "demo/2019-12")] == JobBenchmark(
        "sentinel_month", "demo/2019-12", 6.5, 1003.0, 11.2)
    assert by[("footprints", "demo")] == JobBenchmark("footprints", "demo", 0.2, None, None)


def test_unreadable_files_are_named_and_the_rest_still_read(tmp_path: Path) -> None:
    lay = Layout(tmp_path)
    _write(lay.job_benchmark("tile", "demo"), 3.0, rss=100.0, cpu=2.0)
    (lay.job_benchmarks_dir() / "labels").mkdir(parents=True)
    (lay.job_benchmarks_dir() / "labels" / "demo.tsv").write_text("s\th:m:s\n")  # no row
    (lay.job_benchmarks_dir() / "change").mkdir()
    (lay.job_benchmarks_dir() / "change" / "demo.tsv").write_text("s\tmax_rss\nabc\t1\n")
    (lay.job_benchmarks_dir() / "stray.tsv").write_text("s\n1\n")
    records, problems = read_job_benchmarks(lay.job_benchmarks_dir())
    assert [(r.rule, r.seconds) for r in records] == [("tile", 3.0)]
    assert len(problems) == 3
    assert any("labels/demo.tsv: no row" in p for p in problems)
    assert any("change/demo.tsv" in p for p in problems)
    assert any("stray.tsv: not under a rule's folder" in p for p in problems)
    assert read_job_benchmarks(tmp_path / "absent") == ([], [])


def test_rows_sum_rank_and_share_the_build_time_per_rule() -> None:
    recs = [
        JobBenchmark("sentinel_month", "demo/2019-11", 6.0, 900.0, 11.0),
        JobBenchmark("sentinel_month", "demo/2019-12", 8.0, 1000.0, 15.0),
        JobBenchmark("tile", "demo", 5.0, 400.0, 6.0),
        JobBenchmark("footprints", "demo", 1.0, None, None),
    ]
    rows = job_time_rows(recs)
    assert [r["rule"] for r in rows] == ["sentinel_month", "tile", "footprints", "all"]
    sm = rows[0]
    assert sm["jobs"] == 2 and sm["wall s"] == 14.0 and sm["share %"] == 70.0
    assert sm["slowest job"] == "demo/2019-12" and sm["slowest s"] == 8.0
    assert sm["peak RSS MB"] == 1000 and sm["CPU s"] == 26.0 and sm["CPU / wall"] == 1.86
    assert rows[2]["peak RSS MB"] is None and rows[2]["CPU s"] is None
    everything = rows[-1]
    assert everything["jobs"] == 4 and everything["wall s"] == 20.0
    assert everything["share %"] == 100.0 and everything["peak RSS MB"] == 1000
    # CPU / wall over the sampled jobs only: 32 s of CPU in 19 s of sampled wall time
    assert everything["CPU s"] == 32.0 and everything["CPU / wall"] == pytest.approx(1.68)
    assert job_time_rows(recs[2:3])[0]["rule"] == "tile" and len(job_time_rows(recs[2:3])) == 1
    assert job_time_rows([]) == []
    assert "<td>sentinel_month</td>" in html_table(rows)
