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


def _eval_rank(rank: int, world: int, store: str, out: str) -> None:
    """One DDP rank: the same seeded model evaluates a 5-sample set; writes what it saw and
    the reduced metrics."""
    import torch.distributed as tdist

    from pipeline.config import TrainConfig
    from pipeline.train.distributed import Dist
    from pipeline.train.trainer import Trainer
    from tests.train_helpers import SyntheticFusu, collate

    torch.set_num_threads(1)
    tdist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    ds = SyntheticFusu(n=5, hr=32, fp=8, t=3)
    cfg = TrainConfig(tiny=True, batch_size=2, num_workers=0, device="cpu", max_steps=1)
    tr = Trainer(cfg, ds, f"{out}/run", collate, progress=False, dist=Dist(rank, world))
    seen = sum(int(b["t1"].shape[0]) for b, _ in tr.predict_batches(ds, sharded=True))
    res = tr.evaluate(ds).compute()
    with open(f"{out}/rank{rank}.json", "w") as fh:
        json.dump({"seen": seen, "metrics": res}, fh, default=str)
    tdist.destroy_process_group()


def test_evaluation_runs_on_every_rank_and_reduces_to_the_single_process_metrics(
    tmp_path
) -> None:
    """Under DDP each rank evaluates its own share (3 + 2 of 5 samples, none twice) and the
    summed confusion matrices give every rank the metrics one process computes alone."""
    import torch.multiprocessing as tmp_mp

    from pipeline.config import TrainConfig
    from pipeline.train.trainer import Trainer
    from tests.train_helpers import SyntheticFusu, collate

    tmp_mp.spawn(_eval_rank, args=(2, str(tmp_path / "store"), str(tmp_path)), nprocs=2,
                 join=True)
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["seen"] for r in ranks] == [3, 2]
    ds = SyntheticFusu(n=5, hr=32, fp=8, t=3)
    torch.set_num_threads(1)
    single = Trainer(TrainConfig(tiny=True, batch_size=2, num_workers=0, device="cpu",
                                 max_steps=1), ds, tmp_path / "one", collate, progress=False)
    want = json.loads(json.dumps(single.evaluate(ds).compute(), default=str))
    assert ranks[0]["metrics"] == want and ranks[1]["metrics"] == want
    assert want["seg_miou"] == want["seg_miou"]  # a real number, not NaN
