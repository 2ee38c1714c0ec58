"""FUSU-scale planning: `snakemake -n` on five generated AOIs totalling >= 63,000 patches.

    python -m benchmarks.scale_dryrun [--aois 5] [--side-patches 113] [--months 25] [--repeat 3]

Writes five synthetic ``generated: true`` AOI definitions (demo-style: their HR images,
annotations and scene archives are what the ``demo_inputs`` / ``demo_scenes`` rules would
produce, so nothing exists and no imagery is needed) plus a config into a temporary folder,
and times ``snakemake -n --quiet`` on it in a subprocess (the Snakefile is parsed, every AOI
validated, the whole DAG built). The city side is ``side_patches x patch_size_px x gsd_m``
(113 x 512 x 0.5 m = 28.9 km, 12,769 patches per AOI, 63,845 in total; FUSU has 62,752) and
the dates span 25 calendar months (2018-08..2020-08, as FUSU).

It then repeats the dry run with the demo's default 3.6 km city (49 patches per AOI) and with
twice the AOIs, to show that the job count is set by AOIs x months (one HR job per AOI, one
Sentinel job per AOI-month), never by the number of patches.

Measured (2 shared cores, snakemake 9.27): see the README section "Running on a cluster".
"""

from __future__ import annotations

import argparse
import json
import math
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def write_config(
    folder: Path, n_aois: int, side_patches: int, months: int, patch_px: int = 512,
    gsd_m: float = 0.5,
) -> tuple[Path, int, float]:
    """Write ``n_aois`` generated AOI YAMLs + ``config.yaml`` under ``folder``.

    Returns (config path, total patches, city side in m). Patches per AOI =
    ``side_patches**2`` (the demo city is a square fully covered by imagery).
    """
    import datetime as dt

    t1 = dt.date(2018, 8, 15)
    y, m = divmod(t1.month - 1 + months - 1, 12)
    t2 = dt.date(t1.year + y, m + 1, 20)
    side_m = side_patches * patch_px * gsd_m
    aois = []
    for i in range(n_aois):
        name = f"district{i + 1}"
        inp = folder / "inputs" / name
        spec = {
            "name": name,
            "city": f"city{i % 2 + 1}",
            "t1": t1.isoformat(),
            "t2": t2.isoformat(),
            "images": {"t1": str(inp / "hr_t1.tif"), "t2": str(inp / "hr_t2.tif")},
            "annotations": {"t1": str(inp / "labels_t1.gpkg"), "t2": str(inp / "labels_t2.gpkg")},
            "sentinel_archive": str(inp / "scenes"),
            "generated": True,
        }
        path = folder / f"{name}.yaml"
        path.write_text(json.dumps(spec, indent=1))
        aois.append(str(path))
    cfg = {
        "dataset": "fusu-scale",
        "results_dir": str(folder / "results"),
        "aois": aois,
        "demo": {"size_m": side_m, "gsd_m": gsd_m},
        "tile": {"patch_size_px": patch_px},
    }
    cfg_path = folder / "config.yaml"
    cfg_path.write_text(json.dumps(cfg, indent=1))
    n_px = math.ceil(side_m / gsd_m - 1e-9)
    return cfg_path, n_aois * (n_px // patch_px) ** 2, side_m


def dry_run(cfg_path: Path, workdir: Path) -> tuple[float, dict[str, int]]:
    """Time ``snakemake -n`` on ``cfg_path``; return (seconds, job counts per rule)."""
    cmd = [
        sys.executable, "-m", "snakemake", "-n", "--quiet", "rules", "--cores", "16",
        "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir),
        "--configfile", str(REPO / "config" / "config.yaml"), str(cfg_path),
    ]
    env = {**__import__("os").environ, "PYTHONPATH": str(REPO)}
    t0 = time.perf_counter()
    out = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, env=env)
    secs = time.perf_counter() - t0
    if out.returncode != 0:
        raise SystemExit(f"snakemake -n failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
    counts: dict[str, int] = {}
    for line in (out.stdout + out.stderr).splitlines():
        mt = re.match(r"^([A-Za-z_][\w]*)\s+(\d+)$", line.strip())
        if mt:
            counts[mt.group(1)] = int(mt.group(2))
    return secs, counts


def _case(label: str, n_aois: int, side: int, months: int, repeat: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="scale-dryrun-") as d:
        folder = Path(d)
        cfg, patches, side_m = write_config(folder, n_aois, side, months)
        times = []
        counts: dict[str, int] = {}
        for _ in range(repeat):
            s, counts = dry_run(cfg, folder)
            times.append(s)
    return {
        "case": label, "aois": n_aois, "months": months, "side_m": side_m, "patches": patches,
        "jobs": counts.get("total", sum(counts.values())), "seconds": min(times),
        "sentinel_month": counts.get("sentinel_month", 0),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--aois", type=int, default=5)
    ap.add_argument("--side-patches", type=int, default=113, help="patches per city side")
    ap.add_argument("--months", type=int, default=25)
    ap.add_argument("--repeat", type=int, default=3, help="dry runs per case (min time kept)")
    ap.add_argument("--json", type=Path, default=None, help="also write the rows as JSON")
    args = ap.parse_args()
    rows = [
        _case("fusu-scale", args.aois, args.side_patches, args.months, args.repeat),
        _case("small cities", args.aois, 7, args.months, args.repeat),
        _case("2x AOIs", 2 * args.aois, args.side_patches, args.months, args.repeat),
    ]
    print(f"{'case':<18}{'AOIs':>5}{'months':>7}{'side km':>9}{'patches':>9}{'jobs':>6}"
          f"{'AOIxmonth':>10}{'dry-run s':>10}")
    for r in rows:
        print(f"{r['case']:<18}{r['aois']:>5}{r['months']:>7}{r['side_m'] / 1000:>9.1f}"
              f"{r['patches']:>9}{r['jobs']:>6}{r['sentinel_month']:>10}{r['seconds']:>10.2f}")
    big, small, dbl = rows
    print(f"jobs per 1000 patches at FUSU scale: {1000 * big['jobs'] / big['patches']:.2f}")
    print(f"job ratio fusu-scale / small cities: {big['jobs'] / small['jobs']:.2f} "
          f"(patch ratio {big['patches'] / small['patches']:.0f}x)")
    print(f"job ratio 2x AOIs / fusu-scale: {dbl['jobs'] / big['jobs']:.2f}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
