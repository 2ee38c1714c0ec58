"""``python -m pipeline.train <dataset root> [--config JSON]``: the train rule's driver outside
Snakemake, e.g. under ``torchrun`` for multi-GPU (or multi-process CPU) DDP training::

    torchrun --standalone --nproc_per_node 4 -m pipeline.train results/demo \\
        --config '{"train": {"run": "ddp", "preset": "paper"}}'

``--config`` takes the same keys as the workflow config (validated by the same schema).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pipeline.config import load_config
from pipeline.errors import PipelineError
from pipeline.layout import Layout
from pipeline.logs import setup_logging
from pipeline.train.drivers import train_model


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("root", help="dataset folder (results/<dataset>)")
    ap.add_argument("--config", default="{}", help="workflow config overrides (JSON)")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    setup_logging(None)
    try:
        cfg = load_config(json.loads(args.config), "--config")
        train_model(cfg.train, Layout(Path(args.root)), threads=args.threads, progress=False)
    except PipelineError as exc:
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
