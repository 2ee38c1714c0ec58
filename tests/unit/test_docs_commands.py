"""Every shell command that README.md and docs/ show runs as written in a new shell after the
README's set-up command: nothing is on PATH then, so a command names ``.venv/bin/<tool>`` (which
the set-up installs), a script of the repository, or a system tool the set-up itself needs;
``python -m <module>`` names a module that exists, ``--profile <folder>`` a profile that
exists."""

from __future__ import annotations

import importlib.util
import re
import shlex
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
#: tools installed into .venv/bin by the set-up; written bare, they are not found
VENV_TOOLS = {"snakemake", "earthengine", "python", "pip", "pytest", "mypy", "ruff", "rio"}
#: commands a fresh shell has (the set-up command itself uses python3)
SYSTEM = {"python3", "cd", "export", "git", "ls", "cat", "open", "xdg-open", "sbatch"}


def _fenced_shell(text: str) -> list[tuple[int, str]]:
    """(line number, logical command line) of every ``bash``/``sh`` block: continuation lines
    joined, a quoted string spanning lines kept whole, comments dropped."""
    out: list[tuple[int, str]] = []
    lang: str | None = None
    pending, start = "", 0
    for i, line in enumerate(text.splitlines(), 1):
        fence = re.match(r"^\s*```(\S*)\s*$", line)
        if fence:
            lang = (fence.group(1) or "text") if lang is None else None
            continue
        if lang not in ("bash", "sh", "shell"):
            continue
        if not pending:
            if not line.strip() or line.strip().startswith("#"):
                continue
            start = i
        pending += line.rstrip("\\") + "\n" if line.endswith("\\") else line + "\n"
        if line.endswith("\\") or pending.count('"') % 2 or pending.count("'") % 2:
            continue
        out.append((start, pending.replace("\\\n", " ").strip()))
        pending = ""
    return out


def _inline(text: str) -> list[tuple[int, str]]:
    """Inline code spans that are commands (start with a tool, bare or under .venv/bin)."""
    tools = "|".join(sorted(VENV_TOOLS))
    out = []
    for m in re.finditer(r"`((?:\.venv/bin/)?(?:" + tools + r") [^`]*)`", text):
        out.append((text.count("\n", 0, m.start()) + 1, m.group(1).replace("\n", " ")))
    return out


def _split(cmd: str) -> list[list[str]]:
    """Words of each simple command of a shell line (split at unquoted ``&& || ; |``)."""
    lex = shlex.shlex(cmd, posix=True, punctuation_chars="&|;")
    lex.whitespace_split, lex.commenters = True, "#"
    out: list[list[str]] = [[]]
    for tok in lex:
        if tok in ("&&", "||", ";", "|", ";;", "&"):
            out.append([])
        else:
            out[-1].append(tok)
    return [w for w in out if w]


def _commands() -> list[tuple[str, list[str]]]:
    found = []
    for doc in DOCS:
        text = doc.read_text()
        for line, cmd in _fenced_shell(text) + _inline(text):
            for words in _split(cmd):
                found.append((f"{doc.relative_to(REPO)}:{line}", words))
    return found


COMMANDS = _commands()


def test_the_docs_show_commands() -> None:
    where = {w.split(":")[0] for w, _ in COMMANDS}
    assert {"README.md", "docs/training.md", "docs/earth-engine.md"} <= where
    assert len(COMMANDS) > 30


@pytest.mark.parametrize(("where", "words"), COMMANDS, ids=[w for w, _ in COMMANDS])
def test_each_command_names_what_the_setup_installs(where: str, words: list[str]) -> None:
    cmd, exe = " ".join(words), words[0]
    if exe in VENV_TOOLS:
        pytest.fail(f"{where}: `{cmd}` starts with bare {exe!r}, which is not on PATH after "
                    f"the README's set-up: write .venv/bin/{exe}")
    if exe.startswith(".venv/bin/"):
        tool = exe.removeprefix(".venv/bin/")
        # the environment running the tests is the one the set-up made
        assert (Path(sys.executable).parent / tool).exists(), f"{where}: {exe} is not installed"
    elif "/" in exe:
        assert (REPO / exe).exists(), f"{where}: {exe} does not exist in the repository"
    else:
        assert exe in SYSTEM, (f"{where}: `{cmd}`: {exe!r} is neither in .venv/bin nor a known "
                               "system command")
    if "-m" in words[:-1] and exe.endswith("python"):
        module = words[words.index("-m") + 1]
        if "<" not in module:
            assert importlib.util.find_spec(module) is not None, f"{where}: no module {module}"
    if "--profile" in words[:-1]:
        assert (REPO / words[words.index("--profile") + 1]).is_dir(), f"{where}: no profile"
