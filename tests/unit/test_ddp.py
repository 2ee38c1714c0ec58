"""torchrun DDP on the CPU: 2 processes, gloo, the real entry point (``-m pipeline.train``)."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("timm")


def test_torchrun_two_processes_gloo(tmp_path) -> None:
    """Two processes train one run together: rank 0 alone writes logs, checkpoints and
    metrics; a step is one batch per process; a rerun resumes the finished run."""
    from tests.torchds_helpers import make_dataset

    layout = make_dataset(tmp_path / "ds")
    cfg = {"train": {"run": "ddp", "tiny": True, "batch_size": 1, "max_steps": 3,
                     "num_workers": 0, "device": "cpu", "log_every": 1, "eval_every": 2,
                     "checkpoint_every": 1}}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
           "2", "-m", "pipeline.train", str(layout.root), "--config", json.dumps(cfg)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert out.returncode == 0, out.stderr[-4000:]
    run = layout.train_dir("ddp")
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["processes"] == 2 and metrics["global_batch"] == 2 and metrics["step"] == 3
    rows = list(csv.DictReader((run / "log.csv").open()))
    assert [int(r["step"]) for r in rows] == [1, 2, 3]  # one writer, no duplicated rows
    assert (run / "checkpoints" / "last.pt").exists() and (run / "model.pt").exists()
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert again.returncode == 0, again.stderr[-4000:]
    assert json.loads((run / "metrics.json").read_text())["step"] == 3
