"""The live Earth Engine test is left out of the default run without credentials, and fails
(not skips) when asked for with ``-m gee_live`` and no credentials in any form."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _pytest(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("EE_SERVICE_ACCOUNT_KEY", "GOOGLE_APPLICATION_CREDENTIALS", "EE_PROJECT",
                        "CLOUDSDK_CONFIG", "PYTEST_ADDOPTS")}
    env["HOME"] = str(tmp_path)  # no ~/.config/earthengine or gcloud files
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q",
                           "tests/unit/test_gee_live.py", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)


def test_live_test_is_skipped_by_default_and_fails_when_asked_without_credentials(
        tmp_path: Path) -> None:
    default = _pytest(tmp_path)
    assert default.returncode == 0, default.stdout[-2000:]
    assert "skipped" in default.stdout and "pytest -m gee_live" in default.stdout
    asked = _pytest(tmp_path, "-m", "gee_live")
    out = asked.stdout + asked.stderr
    assert asked.returncode != 0, out[-2000:]
    assert "no Earth Engine credentials found" in out and "earthengine authenticate" in out


def test_live_cdse_test_is_left_out_by_default_and_fails_when_asked_without_keys(
        tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items()
           if k not in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "PYTEST_ADDOPTS")}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q",
                               "tests/unit/test_cdse_live.py", *args], cwd=REPO, env=env,
                              capture_output=True, text=True, timeout=300)

    default = run()
    assert default.returncode == 0 and "pytest -m cdse_live" in default.stdout, default.stdout
    asked = run("-m", "cdse_live")
    out = asked.stdout + asked.stderr
    assert asked.returncode != 0 and "eodata-s3keysmanager" in out, out[-2000:]
