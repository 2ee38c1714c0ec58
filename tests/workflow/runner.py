"""The one way the workflow tests run Snakemake: ``python -m snakemake`` on the repository's
Snakefile, in the repository (default) or in a workspace folder, with the repository importable
from any working directory. Used through the ``snakemake`` fixture (tests/workflow/conftest.py)
and by the fake-cluster helpers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Snakemake:
    """Runs Snakemake; ``workspace`` (optional) is the ``--directory`` jobs run in, with its
    own ``config.yaml`` layered over the repository's ``config/config.yaml``."""

    workspace: Path | None = None
    cores: int = 1

    def cmd(self, *args: str, config: dict[str, Any] | None = None,
            configfile: Path | None = None) -> list[str]:
        """The command line (for Popen: the kill -9 tests)."""
        cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
               "--cores", str(self.cores)]
        if self.workspace is not None:
            cmd += ["--directory", str(self.workspace), "--configfile",
                    str(REPO / "config" / "config.yaml"), str(self.workspace / "config.yaml")]
        elif configfile is not None:
            cmd += ["--configfile", str(configfile)]
        if config:
            cmd += ["--config", *(f"{k}={json.dumps(v) if not isinstance(v, str) else v}"
                                  for k, v in config.items())]
        return [*cmd, *args]

    @property
    def cwd(self) -> Path:
        return self.workspace if self.workspace is not None else REPO

    @staticmethod
    def env(**extra: str) -> dict[str, str]:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
        env.update(extra)
        return env

    def run(self, *args: str, config: dict[str, Any] | None = None,
            configfile: Path | None = None, timeout: float = 300,
            **env: str) -> subprocess.CompletedProcess[str]:
        """Run to completion; the result carries returncode, stdout and stderr."""
        return subprocess.run(self.cmd(*args, config=config, configfile=configfile),
                              cwd=self.cwd, env=self.env(**env), capture_output=True,
                              text=True, timeout=timeout)

    def ok(self, *args: str, **kw: Any) -> str:
        """Run; fail the test with the output's tail unless it exits 0. Returns the output."""
        out = self.run(*args, **kw)
        text = out.stdout + out.stderr
        if out.returncode != 0:
            raise AssertionError(f"snakemake {' '.join(args)} failed:\n{text[-4000:]}")
        return text

    def at(self, workspace: Path, cores: int = 2) -> Snakemake:
        """The same runner in a workspace folder."""
        return Snakemake(workspace, cores)
