"""Logging of a rule's job: to stderr and to the rule's log file, with secrets redacted."""

from __future__ import annotations

import json
import logging
import os
import sys

#: Environment variables whose values are secrets: never written to a console or a log.
SECRET_VARS: tuple[str, ...] = (
    "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ACCESS_KEY_ID", "PC_SDK_SUBSCRIPTION_KEY",
    "CDSE_S3_ACCESS_KEY", "CDSE_S3_SECRET_KEY", "AZURE_STORAGE_SAS_TOKEN",
)
#: Variables that name a key file: their value (a path) is shown, but a key's JSON put there
#: instead of its path is a secret.
KEY_PATH_VARS: tuple[str, ...] = ("EE_SERVICE_ACCOUNT_KEY", "GOOGLE_APPLICATION_CREDENTIALS")
REDACTED = "***"


def secret_values(environ: dict[str, str] | None = None) -> list[str]:
    """The strings to redact: each secret variable's value, its escaped forms (as repr and
    JSON print them) and, when it holds JSON, every string inside it of 8+ characters (a key
    split across a message); longest first."""
    env = os.environ if environ is None else environ
    out: set[str] = set()
    for var in SECRET_VARS + KEY_PATH_VARS:
        v = env.get(var, "")
        if len(v) < 4 or (var in KEY_PATH_VARS and not v.lstrip().startswith("{")):
            continue
        out |= {v, repr(v)[1:-1], json.dumps(v)[1:-1]}
        try:
            doc = json.loads(v)
        except ValueError:
            continue
        if isinstance(doc, dict):
            for x in doc.values():
                if isinstance(x, str) and len(x) >= 8:
                    out |= {x, repr(x)[1:-1], json.dumps(x)[1:-1]}
    return sorted(out, key=len, reverse=True)


def redact(text: str, secrets: list[str] | None = None) -> str:
    """``text`` with every secret value replaced by ``***``."""
    for s in secret_values() if secrets is None else secrets:
        if s and s in text:
            text = text.replace(s, REDACTED)
    return text


class RedactingFormatter(logging.Formatter):
    """A formatter whose output (message, arguments and traceback) never holds a secret."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def setup_logging(log_path: str | None = None, level: int = logging.INFO) -> None:
    """Log to stderr and, if given, to ``log_path`` (the rule's log file); warnings too.
    Values of :data:`SECRET_VARS` (and key JSON in :data:`KEY_PATH_VARS`) are redacted in
    every line."""
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_path:
        handlers.append(logging.FileHandler(log_path, mode="w"))
    fmt = RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    for h in handlers:
        h.setFormatter(fmt)
    logging.basicConfig(level=level, handlers=handlers, force=True)
    logging.captureWarnings(True)
