#!/usr/bin/env bash
# One command that sets up a fresh machine and runs the whole test suite:
#   - a virtual environment in .venv (reused if present),
#   - PyTorch from the pinned wheel (pip takes it from local disk where available) so that the
#     `train` extra's lower bound does not pull a different multi-GB build,
#   - the package with its dev + train extras,
#   - Debian's chromium (for the QA-report rendering test) when running as root,
#   - pytest, on min(CPUs, 4) worker processes (pytest-xdist; each test file runs whole on one
#     worker, so module and session fixtures are built once per worker): 929 s -> 534 s for
#     the whole suite on 2 cores. FUSU_TEST_WORKERS=0 runs it in this one process.
# Extra arguments are passed to pytest, e.g. `scripts/test.sh -k labels -x`.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -c "import torch, torchvision" 2>/dev/null \
  || .venv/bin/python -m pip install -q "torch==2.14.1" "torchvision==0.29.1"
.venv/bin/python -m pip install -q -e ".[dev,train]"
if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
    || echo "warning: could not install chromium; the report rendering test will be skipped" >&2
fi
export PATH="$PWD/.venv/bin:$PATH"
CPUS=$(.venv/bin/python -c "import os; print(len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count() or 1)")
WORKERS=${FUSU_TEST_WORKERS:-$(( CPUS < 4 ? CPUS : 4 ))}
exec .venv/bin/python -m pytest -n "$WORKERS" --dist loadfile "$@"
