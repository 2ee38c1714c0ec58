"""The goals a benchmark measures itself against, printed the same way by every benchmark.

A benchmark collects its :class:`Goal` values and ends with ``raise SystemExit(report(goals))``:
one line per goal (``MET`` / ``NOT MET``), a ``goals met: k of n`` line, and exit status 1
when any is missed (``tests/unit/test_benchmarks_run.py`` accepts 0 or 1, never a traceback).
The goals themselves come from the issues that set them; docs/benchmarks.md lists the figures.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class Goal:
    """One measured ratio (or count) against its target.

    Args:
        name: what was measured, e.g. ``"HR stages / naive, 99 patches"``.
        value: the measured value (a ratio, a count of differing arrays, ...).
        op: ``">="`` (at least ``target``) or ``"<="`` (at most ``target``).
        target: the goal's threshold.
    """

    name: str
    value: float
    op: Literal[">=", "<="]
    target: float

    def __post_init__(self) -> None:
        if self.op not in (">=", "<="):
            raise ValueError(f"goal {self.name!r}: op must be '>=' or '<=', not {self.op!r}")

    @property
    def met(self) -> bool:
        """Whether ``value`` reaches ``target`` (a NaN value never does)."""
        return self.value >= self.target if self.op == ">=" else self.value <= self.target

    def line(self) -> str:
        """``  <name>  <value>  (goal <op> <target>)  MET|NOT MET``."""
        return (f"  {self.name:<44s} {self.value:10.3f}  (goal {self.op} {self.target:g})  "
                f"{'MET' if self.met else 'NOT MET'}")


def report(goals: Sequence[Goal]) -> int:
    """Print every goal and ``goals met: k of n``; return the exit status (0: all met)."""
    print("goals:")
    for g in goals:
        print(g.line())
    n_met = sum(g.met for g in goals)
    print(f"goals met: {n_met} of {len(goals)}")
    return 0 if n_met == len(goals) else 1
