"""``python -m pipeline.train.compare <dataset root> <run> [<run> ...]``: a table of trained
runs' test scores (the project's and the official code's SECOND score / SeK), written to
``train/compare.md`` / ``.csv`` and printed; e.g. the ``official`` preset beside the default::

    .venv/bin/python -m pipeline.train.compare results/fusu official default
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pipeline.errors import PipelineError
from pipeline.layout import Layout
from pipeline.train.drivers import ABLATION_COLUMNS, compare_runs


def compare_main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("root", help="dataset folder (results/<dataset>)")
    ap.add_argument("runs", nargs="+", help="run names (train.run)")
    args = ap.parse_args(argv)
    layout = Layout(Path(args.root))
    try:
        rows = compare_runs(layout, args.runs)
    except PipelineError as exc:
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    for r in rows:
        print("  ".join(f"{h}={r[h]}" for h, _ in ABLATION_COLUMNS if r[h] is not None))
    print(f"table: {layout.root / 'train' / 'compare.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(compare_main())
