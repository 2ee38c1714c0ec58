"""Flat memory: peak RSS and runtime of every workflow stage at 1x and 4x the AOI area.

    python -m benchmarks.memory_scale [--size-m 2560] [--months 2] [--keep DIR]

Builds a generated demo AOI (``generated: true``; the demo generator is part of the run) of
side ``s`` and then ``2s`` with the real workflow (``snakemake --cores 1``, so jobs run one
after another, including the FUSU-layout export), in a temporary workspace each. A monitor
polls every job process Snakemake starts (psutil, every 0.1 s) and records its peak RSS from
``/proc/<pid>/status`` ``VmHWM`` (the kernel's high-water mark, so short peaks between polls
are not missed) and its wall time; jobs are named by their stage script
(``.snakemake/scripts/tmpXXXX.<stage>.py``). Per stage it prints peak RSS (max over the
stage's jobs, e.g. months) and summed runtime at both sizes, and the ratios 4x / 1x.
Goals (exit 1 when one is missed): RSS ratio <= 1.3 (every stage streams by patch, block or
shard) except for the stages in :data:`CAPPED`, whose memory is bounded by a cap the docs state
instead of the area, and runtime ratio <= 4.5 (linear in the area).

Not run in CI (minutes). Measured figures: docs/benchmarks.md (Scale benchmarks).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.goals import Goal, report

REPO = Path(__file__).resolve().parents[1]

#: stages left out of the peak-RSS goal, with the bound that holds instead (docs/benchmarks.md)
CAPPED = {
    "sentinel_month": "bounded by its block, sentinel.block_size_px / the 640 px cap; at a "
    "fixed block size tests/unit/test_month_memory.py holds 4x the area to <= 1.15x",
    "demo_scenes": "the synthetic Sentinel archive of the demo, one 10 m scene of the whole "
    "city in memory: test data, not a stage that runs on real inputs",
}
_SCRIPT_RE = re.compile(r"\.snakemake/scripts/tmp[^/.]*\.(\w+)\.py$")


def _peak_rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def write_workspace(folder: Path, size_m: float, months: int) -> Path:
    """One generated AOI of side ``size_m`` (0.5 m GSD, 512 px patches) + config."""
    folder.mkdir(parents=True, exist_ok=True)
    t2 = f"2019-{7 + months:02d}-25"
    spec = {
        "name": "city", "city": "benchcity", "t1": "2019-08-05", "t2": t2,
        "images": {"t1": "inputs/hr_t1.tif", "t2": "inputs/hr_t2.tif"},
        "annotations": {"t1": "inputs/labels_t1.gpkg", "t2": "inputs/labels_t2.gpkg"},
        "sentinel_archive": "inputs/scenes", "generated": True,
    }
    (folder / "city.yaml").write_text(json.dumps(spec))
    cfg = {
        "dataset": "bench", "results_dir": "res", "aois": ["city.yaml"],
        "demo": {"size_m": size_m}, "splits": {"mode": "random"},
        "export": {"fusu_layout": True},
    }
    (folder / "config.yaml").write_text(json.dumps(cfg))
    return folder / "config.yaml"


def run_workflow(folder: Path) -> dict[str, dict[str, float]]:
    """Run the workflow in ``folder``; per stage: peak_mb (max over jobs), seconds, jobs."""
    import psutil

    cmd = [
        sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
        "--directory", str(folder), "--cores", "1", "--configfile",
        str(REPO / "config" / "config.yaml"), str(folder / "config.yaml"),
    ]
    env = dict(os.environ, PYTHONPATH=str(REPO))
    log = (folder / "snakemake.out").open("w")
    proc = subprocess.Popen(cmd, cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT)
    root = psutil.Process(proc.pid)
    jobs: dict[int, dict[str, object]] = {}
    while proc.poll() is None:
        try:
            children = root.children(recursive=True)
        except psutil.NoSuchProcess:
            break
        now = time.monotonic()
        for ch in children:
            job = jobs.get(ch.pid)
            if job is None:
                try:
                    m = next((_SCRIPT_RE.search(a) for a in ch.cmdline() if
                              _SCRIPT_RE.search(a)), None)
                except (psutil.NoSuchProcess, psutil.AccessDenied):
                    continue
                if m is None:
                    continue
                job = jobs[ch.pid] = {"stage": m.group(1), "start": ch.create_time(),
                                      "t0": now, "peak": 0.0}
            peak = _peak_rss_mb(ch.pid)
            if peak is not None:
                job["peak"] = max(float(job["peak"]), peak)  # type: ignore[arg-type]
                job["t1"] = now
        time.sleep(0.1)
    log.close()
    if proc.returncode != 0:
        tail = (folder / "snakemake.out").read_text()[-4000:]
        raise SystemExit(f"workflow failed in {folder}:\n{tail}")
    stages: dict[str, dict[str, float]] = {}
    for job in jobs.values():
        st = stages.setdefault(str(job["stage"]), {"peak_mb": 0.0, "seconds": 0.0, "jobs": 0})
        st["peak_mb"] = max(st["peak_mb"], float(job["peak"]))  # type: ignore[arg-type]
        st["seconds"] += float(job.get("t1", job["t0"])) - float(job["t0"])  # type: ignore[arg-type]
        st["jobs"] += 1
    return stages


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--size-m", type=float, default=2560.0, help="1x city side (m)")
    ap.add_argument("--months", type=int, default=2)
    ap.add_argument("--keep", type=Path, default=None, help="keep the builds in this folder")
    ap.add_argument("--json", type=Path, default=None, help="also write the results as JSON")
    args = ap.parse_args()
    runs = []
    with tempfile.TemporaryDirectory(prefix="mem-bench-") as d:
        base = args.keep or Path(d)
        for f in (1, 2):
            folder = base / f"x{f * f}"
            write_workspace(folder, f * args.size_m, args.months)
            t = time.monotonic()
            runs.append((run_workflow(folder), time.monotonic() - t))
    (a, ta), (b, tb) = runs
    print(f"city side {args.size_m / 1000:.2f} km (1x) and {2 * args.size_m / 1000:.2f} km "
          f"(4x area), {args.months} months; total wall {ta:.0f} s / {tb:.0f} s")
    print(f"{'stage':<18}{'jobs':>5}{'peak MB 1x':>11}{'4x':>8}{'ratio':>7}"
          f"{'s 1x':>8}{'4x':>8}{'ratio':>7}")
    worst_mem = worst_t = 0.0
    for st in sorted(set(a) | set(b)):
        if st not in a or st not in b:
            continue
        rm = b[st]["peak_mb"] / a[st]["peak_mb"]
        rt = b[st]["seconds"] / max(a[st]["seconds"], 1e-3)
        if st not in CAPPED:
            worst_mem = max(worst_mem, rm)
        worst_t = max(worst_t, rt)
        print(f"{st:<18}{int(a[st]['jobs']):>5}{a[st]['peak_mb']:>11.0f}{b[st]['peak_mb']:>8.0f}"
              f"{rm:>7.2f}{a[st]['seconds']:>8.1f}{b[st]['seconds']:>8.1f}{rt:>7.2f}")
    print(f"worst peak-RSS ratio {worst_mem:.2f} of the stages without a stated cap; worst "
          f"runtime ratio {worst_t:.2f}; total runtime ratio {tb / ta:.2f}")
    for st, why in CAPPED.items():
        print(f"  not in the peak-RSS goal: {st} ({why})")
    if args.json:
        args.json.write_text(json.dumps({"1x": a, "4x": b, "wall_s": [ta, tb]}, indent=1))
    return report([Goal("worst peak-RSS ratio 4x / 1x (uncapped stages)", worst_mem, "<=", 1.3),
                   Goal("worst runtime ratio 4x / 1x", worst_t, "<=", 4.5)])


if __name__ == "__main__":
    raise SystemExit(main())
