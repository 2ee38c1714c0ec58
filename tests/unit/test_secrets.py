"""Secrets never reach a console or a log: credential variables' values are redacted, and a
key's JSON put where its path belongs is refused without being echoed."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

KEY = {"type": "service_account", "project_id": "p", "private_key_id": "abcdef0123456789",
       "private_key": "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END "
                      "PRIVATE KEY-----\n",
       "client_email": "svc@p.iam.gserviceaccount.com"}


def test_key_json_in_the_path_variable_is_refused_without_echo(
    monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("ee")
    import ee

    from pipeline.errors import CredentialsError
    from pipeline.sentinel.sources.gee.auth import resolve_credentials

    monkeypatch.setenv("EE_SERVICE_ACCOUNT_KEY", json.dumps(KEY))
    with pytest.raises(CredentialsError, match="JSON content instead of a path") as err:
        resolve_credentials(ee, None)
    assert "PRIVATE KEY" not in str(err.value) and "abcdef0123456789" not in str(err.value)


def test_logs_and_console_redact_credential_values(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from pipeline.logs import setup_logging

    monkeypatch.setenv("EE_SERVICE_ACCOUNT_KEY", json.dumps(KEY))
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
    log_file = tmp_path / "job.log"
    setup_logging(str(log_file))
    log = logging.getLogger("pipeline.test")
    log.error("bad key %s", json.dumps(KEY))
    log.error("repr %r and aws %s", KEY["private_key"], "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
    try:
        raise ValueError(f"cannot parse {KEY['private_key']}")
    except ValueError:
        log.exception("failed")
    logging.shutdown()
    for text in (log_file.read_text(), capsys.readouterr().err):
        assert "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC" not in text
        assert "abcdef0123456789" not in text and "EXAMPLEKEY" not in text
        assert text.count("***") >= 4 and "bad key" in text and "failed" in text
    setup_logging(None)


def test_key_paths_stay_readable() -> None:
    """A key file's path is no secret: messages keep it (only key JSON there is redacted)."""
    from pipeline.logs import redact, secret_values

    env = {"EE_SERVICE_ACCOUNT_KEY": "/home/me/keys/ee.json",
           "AWS_SECRET_ACCESS_KEY": "s3cr3tv4lue"}
    assert redact("points to /home/me/keys/ee.json; s3cr3tv4lue", secret_values(env)) == \
        "points to /home/me/keys/ee.json; ***"
