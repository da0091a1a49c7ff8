"""Logging for rule scripts: one log file per job, progress lines with timestamps."""
from __future__ import annotations

import logging
import sys


def start(log_path: str | None, name: str) -> logging.Logger:
    """Send INFO and above to `log_path` (and stderr) and return the rule's logger."""
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_path:
        handlers.append(logging.FileHandler(log_path, mode="w"))
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s", handlers=handlers, force=True
    )
    return logging.getLogger(name)
