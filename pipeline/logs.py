"""Logging of a rule's job: to stderr and to the rule's log file."""

from __future__ import annotations

import logging
import sys


def setup_logging(log_path: str | None = None, level: int = logging.INFO) -> None:
    """Log to stderr and, if given, to ``log_path`` (the rule's log file); warnings too."""
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_path:
        handlers.append(logging.FileHandler(log_path, mode="w"))
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        handlers=handlers,
        force=True,
    )
    logging.captureWarnings(True)
