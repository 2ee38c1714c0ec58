"""Apply one-line mutations to the Earth Engine recipe one at a time and report which ones the
test suite catches (issue 21: a wrong band, collection id, scale or mask must fail a test).

    .venv/bin/python scripts/mutation_check.py [--tests tests/unit/test_gee_source.py ...]

Each mutation is applied to a copy of the working tree (a temporary ``git worktree`` of HEAD
with the working tree's changes to ``pipeline/`` copied in), the selected tests run there
(``pytest -x -q``), and the mutation is **caught** when they fail, **survived** when they pass.
The unmutated tree must pass first (exit 2 otherwise). The working tree is never modified.
Exit status 1 when any mutation survived.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RECIPE = "pipeline/sentinel/sources/gee/recipe.py"


@dataclass(frozen=True)
class Mutation:
    """Replace ``old`` (must occur in ``path``) by ``new``; ``what`` names the mistake."""

    what: str
    path: str
    old: str
    new: str


#: The changes of issue 21's table: each passes on real Earth Engine silently or fails there
#: only at build time.
MUTATIONS = [
    Mutation('select("probability") -> "probabilty"', RECIPE,
             '.select("probability")', '.select("probabilty")'),
    Mutation("S2_CLOUD_PROBABILITY id misspelt", RECIPE,
             'S2_CLOUD_PROB = "COPERNICUS/S2_CLOUD_PROBABILITY"',
             'S2_CLOUD_PROB = "COPERNICUS/S2_CLOUD_PROBABILTY"'),
    Mutation("Cloud Score+ collection id wrong", RECIPE,
             'CLOUD_SCORE_PLUS = "GOOGLE/CLOUD_SCORE_PLUS/V1/S2_HARMONIZED"',
             'CLOUD_SCORE_PLUS = "GOOGLE/CLOUD_SCORE_PLUS/V1/S2_HARMONISED"'),
    Mutation("divide(10000) -> divide(1000)", RECIPE, ".divide(10000)", ".divide(1000)"),
    Mutation("S1 log10().multiply(10) -> multiply(20)", RECIPE,
             "mean.log10().multiply(10)", "mean.log10().multiply(20)"),
    Mutation(".updateMask(clear) removed", RECIPE,
             ".addBands(flag).updateMask(clear)", ".addBands(flag)"),
    Mutation("transmitterReceiverPolarisation misspelt in the VH filter", RECIPE,
             'ee.Filter.listContains("transmitterReceiverPolarisation", "VH")',
             'ee.Filter.listContains("transmitterReceiverPolarization", "VH")'),
    # beyond the table: what the evaluating fake and the equivalence test also catch
    Mutation("scene-edge mask removed", RECIPE,
             "clear = bad_of(img).Not().And(_edge_mask(img))", "clear = bad_of(img).Not()"),
    Mutation("one S2 observation per datatake removed", RECIPE,
             "observations = one_per(ee, joined.map(mask), S2_DATATAKE)",
             "observations = joined.map(mask)"),
    Mutation("one S1 observation per pass removed", RECIPE,
             "observations = one_per(ee, s1_collection(ee, region, month, recipe).map(both), "
             "S1_PASS_KEY)",
             "observations = s1_collection(ee, region, month, recipe).map(both)"),
    Mutation("L1C-only granules of an L2A month not counted", RECIPE,
             '"L1C_only": l1c_only(ee, region, month).size()', '"L1C_only": ee.Number(0)'),
    Mutation("masked S2 means not unmasked to the no-data fill (sent as 0)", RECIPE,
             ".unmask(NODATA_FILL, False).rename(list(S2_BANDS))",
             ".rename(list(S2_BANDS))"),
    Mutation("cloud threshold prob > t -> prob >= t", RECIPE,
             "bad = prob.gt(threshold_pct)", "bad = prob.gte(threshold_pct)"),
    Mutation("shadow azimuth flipped (projected towards the sun)", RECIPE,
             "ee.Number(90).subtract(", "ee.Number(270).subtract("),
]

DEFAULT_TESTS = ["tests/unit/test_gee_source.py",
                 "tests/unit/test_source_equivalence.py"]


def _tree(tmp: Path) -> Path:
    """A worktree of HEAD with the working tree's pipeline/ and tests/ copied over it."""
    wt = tmp / "wt"
    subprocess.run(["git", "worktree", "add", "--detach", "-q", str(wt), "HEAD"], cwd=REPO,
                   check=True)
    for d in ("pipeline", "tests"):
        shutil.rmtree(wt / d)
        shutil.copytree(REPO / d, wt / d, ignore=shutil.ignore_patterns("__pycache__"))
    return wt


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tests", nargs="+", default=None,
                    help=f"test files to run per mutation (default: {DEFAULT_TESTS}, those "
                    "that exist)")
    args = ap.parse_args()
    tests = args.tests or [t for t in DEFAULT_TESTS if (REPO / t).is_file()]
    results: list[tuple[str, str, float]] = []
    with tempfile.TemporaryDirectory(prefix="mutation-") as d:
        wt = _tree(Path(d))
        env = {**os.environ, "PYTHONPATH": str(wt)}
        pytest = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests]
        try:
            base = subprocess.run(pytest, cwd=wt, capture_output=True, text=True, env=env)
            if base.returncode != 0:  # a failure without a mutation would count as "caught"
                print(base.stdout[-3000:] + base.stderr[-2000:])
                print(f"the unmutated tree fails {' '.join(tests)}: fix that first")
                return 2
            for m in MUTATIONS:
                target = wt / m.path
                original = target.read_text()
                if original.count(m.old) < 1:
                    results.append((m.what, "NOT APPLICABLE (text not found)", 0.0))
                    continue
                target.write_text(original.replace(m.old, m.new))
                t = time.perf_counter()
                run = subprocess.run(pytest, cwd=wt, capture_output=True, text=True, env=env)
                target.write_text(original)
                status = "caught" if run.returncode != 0 else "SURVIVED"
                results.append((m.what, status, time.perf_counter() - t))
                print(f"{status:>9}  {m.what}  ({time.perf_counter() - t:.0f} s)", flush=True)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(wt)], cwd=REPO,
                           check=False)
    caught = sum(1 for _, s, _ in results if s == "caught")
    print(f"\n{caught} of {len(results)} mutations caught by {' '.join(tests)}")
    return 0 if caught == len(results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
