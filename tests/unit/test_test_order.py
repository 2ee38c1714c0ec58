"""The suite's own ordering hook (tests/conftest.py): files holding `slow` tests run first,
whole and in their own order, so that pytest-xdist (`--dist loadfile`, scripts/test.sh)
starts the longest files early instead of leaving them alone at the end."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.conftest import pytest_collection_modifyitems


@dataclass
class _Item:
    name: str
    path: Path
    keywords: dict[str, Any] = field(default_factory=dict)

    def add_marker(self, marker: Any) -> None:  # what the hook calls for skips
        self.keywords[marker.name] = marker


class _Config:
    def getoption(self, name: str, default: Any = None) -> Any:
        return ""


def test_files_with_slow_tests_come_first_in_their_own_order() -> None:
    fast_a = _Item("a1", Path("test_a.py"))
    slow_b = _Item("b1", Path("test_b.py"), {"slow": True})
    fast_b = _Item("b2", Path("test_b.py"))
    fast_c = _Item("c1", Path("test_c.py"))
    slow_d = _Item("d1", Path("test_d.py"), {"slow": True})
    fast_d = _Item("d0", Path("test_d.py"))
    items: list[Any] = [fast_a, fast_d, slow_b, fast_c, slow_d, fast_b]
    pytest_collection_modifyitems(_Config(), items)  # type: ignore[arg-type]
    assert [i.name for i in items] == ["d0", "b1", "d1", "b2", "a1", "c1"]
