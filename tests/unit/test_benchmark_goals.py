"""benchmarks.goals: every benchmark judges its goals the same way (MET / NOT MET, exit 1 when
one is missed)."""

from __future__ import annotations

import math

import pytest

from benchmarks.goals import Goal, report


@pytest.mark.parametrize(
    ("value", "op", "target", "met"),
    [
        (2.0, ">=", 2.0, True),  # the boundary counts as met
        (1.999, ">=", 2.0, False),
        (3.5, ">=", 2.0, True),
        (1.3, "<=", 1.3, True),
        (1.31, "<=", 1.3, False),
        (0.0, "<=", 0.0, True),  # "no array differs"
        (1.0, "<=", 0.0, False),
        (math.nan, ">=", 2.0, False),  # a failed measurement never meets a goal
        (math.nan, "<=", 1.3, False),
    ],
)
def test_a_goal_is_met_only_on_its_side_of_the_target(
    value: float, op: str, target: float, met: bool
) -> None:
    assert Goal("x", value, op, target).met is met  # type: ignore[arg-type]


def test_an_unknown_comparison_is_refused() -> None:
    with pytest.raises(ValueError, match="op must be"):
        Goal("x", 1.0, "<", 2.0)  # type: ignore[arg-type]


def test_report_prints_every_goal_and_exits_1_when_one_is_missed(
    capsys: pytest.CaptureFixture[str],
) -> None:
    goals = [Goal("HR stages / naive script, 99 patches", 1.4, ">=", 3.0),
             Goal("staging arrays differing", 0, "<=", 0)]
    assert report(goals) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "goals:"
    assert out[1].split() == ["HR", "stages", "/", "naive", "script,", "99", "patches", "1.400",
                              "(goal", ">=", "3)", "NOT", "MET"]
    assert out[2].split()[-4:] == ["(goal", "<=", "0)", "MET"]
    assert out[3] == "goals met: 1 of 2"
    assert report(goals[1:]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "goals met: 1 of 1"
