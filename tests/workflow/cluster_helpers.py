"""Helpers for the workflow-level tests (cluster executor, kill/resume).

A *tiny workspace* is a folder holding generated (``generated: true``) demo AOI definitions and
a config file whose paths are all relative to the folder, so two workspaces built with the same
arguments describe byte-identical builds and Snakemake runs in them with ``--directory`` share
nothing (each has its own ``.snakemake``). The demo generator makes the inputs (HR pair,
polygons, Sentinel scene archive) as ordinary jobs of the workflow.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

from tests.workflow.runner import REPO, Snakemake

RESULTS = "res"
DATASET = "tiny"

# Resume fingerprints of the labels / change stages: they hash input paths and mtimes, so they
# differ between two builds of the same data by design (not dataset content).
RESUME_STATE_FILES = {"_inputs.json"}
# Keys of JSON outputs that legitimately differ between two runs (timings, host paths, file
# mtimes in manifests and in the ledger keys, and the per-run fetch counters of a month job
# that resumed its blocks).
VOLATILE_JSON_KEYS = re.compile(
    r"(second|elapsed|duration|created|updated|timestamp|mtime|blocks_done|blocks_skipped"
    r"|recipe_key|_s$)"
)


def write_workspace(
    folder: Path,
    aois: Sequence[str] = ("tiny",),
    *,
    t1: str = "2019-08-05",
    t2: str = "2019-08-25",
    size_m: float = 600.0,
    gsd_m: float = 2.0,
    patch_px: int = 128,
) -> Path:
    """Write AOI YAMLs + ``config.yaml`` for a tiny demo build under ``folder``.

    Each AOI is a ``size_m`` square demo city at ``gsd_m`` tiled into ``patch_px`` patches
    (600 m / 2 m / 128 px = 2 x 2 patches), one Sentinel month by default. Returns the config.
    """
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in aois:
        inp = f"inputs/{name}"
        spec = {
            "name": name, "city": "tinycity", "t1": t1, "t2": t2,
            "images": {"t1": f"{inp}/hr_t1.tif", "t2": f"{inp}/hr_t2.tif"},
            "annotations": {"t1": f"{inp}/labels_t1.gpkg", "t2": f"{inp}/labels_t2.gpkg"},
            "sentinel_archive": f"{inp}/scenes",
            "generated": True,
        }
        (folder / f"{name}.yaml").write_text(json.dumps(spec, indent=1))
        paths.append(f"{name}.yaml")
    cfg = {
        "dataset": DATASET,
        "results_dir": RESULTS,
        "aois": paths,
        "demo": {"size_m": size_m, "gsd_m": gsd_m},
        "tile": {"patch_size_px": patch_px},
        "splits": {"mode": "random"},
    }
    path = folder / "config.yaml"
    path.write_text(json.dumps(cfg, indent=1))
    return path


def runner(folder: Path) -> Snakemake:
    """The Snakemake runner in workspace ``folder`` (2 cores)."""
    return Snakemake(folder, cores=2)


def output_files(folder: Path) -> list[Path]:
    """Every file the build wrote (results + generated inputs), without logs, the jobs'
    benchmark files (their times) and temp files."""
    files = []
    for base in (folder / RESULTS, folder / "inputs"):
        for p in sorted(base.rglob("*")):
            rel = p.relative_to(folder)
            if (not p.is_file() or "logs" in rel.parts or "benchmarks" in rel.parts
                    or p.name.startswith(".")):
                continue
            if p.name in RESUME_STATE_FILES:
                continue
            files.append(rel)
    return files


def _strip_volatile(obj: object) -> object:
    if isinstance(obj, dict):
        return {
            k: _strip_volatile(v) for k, v in obj.items() if not VOLATILE_JSON_KEYS.search(k)
        }
    if isinstance(obj, list):
        return [_strip_volatile(v) for v in obj]
    return obj


def _gpkg_digest(path: Path) -> str:
    """Content digest of a GeoPackage (the file embeds a write timestamp)."""
    import geopandas as gpd

    gdf = gpd.read_file(path)
    h = hashlib.sha256(str(gdf.crs).encode())
    h.update(gdf.drop(columns="geometry").to_csv(index=False).encode())
    h.update(b"".join(gdf.geometry.to_wkb()))
    return h.hexdigest()


def checksums(folder: Path, files: Iterable[Path] | None = None) -> dict[str, str]:
    """sha256 per output file (relative path -> digest).

    JSON files are compared without timing / timestamp keys, GeoPackages by content, HTML
    reports are skipped (they embed run times); everything else byte for byte.
    """
    out: dict[str, str] = {}
    for rel in files if files is not None else output_files(folder):
        p = folder / rel
        if p.suffix == ".html":
            continue
        if p.suffix == ".json":
            doc = _strip_volatile(json.loads(p.read_text()))
            out[str(rel)] = hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()
        elif p.suffix == ".gpkg":
            out[str(rel)] = _gpkg_digest(p)
        else:
            out[str(rel)] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


_JOB_RE = re.compile(r"^\s*(?:local)?rule (\w+):\s*$")
_OUT_RE = re.compile(r"^\s*output: (.+)$")
_ID_RE = re.compile(r"^\s*jobid: (\d+)\s*$")
_FIN_RE = re.compile(r"Finished jobid: (\d+)")


def parse_jobs(log: str) -> tuple[dict[int, tuple[str, list[str]]], set[int]]:
    """Jobs a snakemake run started ({jobid: (rule, outputs)}) and the ids it finished."""
    started: dict[int, tuple[str, list[str]]] = {}
    rule: str | None = None
    outputs: list[str] = []
    for line in log.splitlines():
        if m := _JOB_RE.match(line):
            rule, outputs = m.group(1), []
        elif (m := _OUT_RE.match(line)) and rule:
            outputs = [s.strip() for s in m.group(1).split(",")]
        elif (m := _ID_RE.match(line)) and rule:
            started[int(m.group(1))] = (rule, outputs)
            rule = None
    finished = {int(m.group(1)) for m in _FIN_RE.finditer(log)}
    return started, finished


# ------------------------------------------------------------------ fake cluster (cluster-generic)

CLUSTER_DIR = REPO / "tests" / "workflow" / "cluster"
TWO_AOIS = ("ta", "tb")


def cluster_args(jobs: int = 4) -> list[str]:
    """Snakemake arguments that run every non-local job through tests/workflow/cluster/submit.sh."""
    return [
        "--executor", "cluster-generic",
        "--cluster-generic-submit-cmd", str(CLUSTER_DIR / "submit.sh"),
        "--cluster-generic-status-cmd", str(CLUSTER_DIR / "status.sh"),
        "--cluster-generic-cancel-cmd", str(CLUSTER_DIR / "cancel.sh"),
        "--jobs", str(jobs), "--latency-wait", "30", "--seconds-between-status-checks", "1",
    ]


def build_on_fake_cluster(folder: Path, aois: Sequence[str] = TWO_AOIS) -> tuple[str, Path]:
    """Build a tiny workspace with every job a separate detached process (see submit.sh).

    Returns (snakemake output, fake-cluster state folder with <id>.sh/.log/.rc per job).
    """
    write_workspace(folder, aois)
    state = folder / "fake-cluster"
    log = runner(folder).ok(*cluster_args(), timeout=600, FAKE_CLUSTER_DIR=str(state))
    return log, state


_BUILDS: dict[str, tuple[Path, str, Path]] = {}


def shared_cluster_build(factory: object) -> tuple[Path, str, Path]:
    """The tiny two-AOI fake-cluster build, made once per test session.

    ``factory`` is pytest's ``tmp_path_factory``. Used by tests/workflow/test_cluster.py and (as the
    uninterrupted reference) tests/workflow/test_resume_workflow.py, whichever runs first builds it.
    Returns (workspace, snakemake output, fake-cluster state folder).
    """
    if "two" not in _BUILDS:
        folder = factory.mktemp("cluster-build")  # type: ignore[attr-defined]
        _BUILDS["two"] = (folder, *build_on_fake_cluster(folder))
    return _BUILDS["two"]
