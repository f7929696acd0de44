"""Structured logging: one `key=value` line per event, never vitals beside a patient id at INFO."""

from __future__ import annotations

import logging
import sys


def setup(level: str = "INFO", stage: str = "wardwatch") -> None:
    """Configure the root logger once for a service process (stderr, key=value lines)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        logging.Formatter(f"ts=%(asctime)s level=%(levelname)s stage={stage} logger=%(name)s msg=\"%(message)s\"")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # kafka-python is chatty at INFO about every reconnect and rebalance step.
    logging.getLogger("kafka").setLevel(max(logging.WARNING, logging.getLevelName(level)))
