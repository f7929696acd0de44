"""Structured logging: one `key=value` line per event, never vitals beside a patient id at INFO."""

from __future__ import annotations

import logging
import re
import sys
import threading
import time
from collections.abc import Callable

# The loggers Kafka client libraries write through: librdkafka logs every failed reconnect,
# which during a broker outage is several lines a second for as long as it lasts.
CLIENT_LOGGERS = ("runtime.kafka.librdkafka", "kafka")

_NUMBERS = re.compile(r"\d+")


class RepeatLimit(logging.Filter):
    """Lets one line of a kind through per `every_s` seconds and says, on the next one let
    through, how many it held back. A line's kind is its logger, level and message with every
    number blanked out ("after 0ms" and "after 2ms" are the same line). Only the lines of
    `loggers` (and their children) are limited; every other line passes untouched."""

    def __init__(self, loggers: tuple[str, ...] = CLIENT_LOGGERS, every_s: float = 30.0, clock: Callable[[], float] = time.monotonic,
                 max_kinds: int = 1000) -> None:
        super().__init__()
        self.loggers = loggers
        self.every_s = every_s
        self._clock = clock
        self._max_kinds = max_kinds
        self._lock = threading.Lock()
        self._kinds: dict[str, tuple[float, int]] = {}  # kind -> (when last let through, held back since)

    def filter(self, record: logging.LogRecord) -> bool:
        if not any(record.name == name or record.name.startswith(name + ".") for name in self.loggers):
            return True
        message = record.getMessage()
        kind = f"{record.name}\0{record.levelno}\0{_NUMBERS.sub('#', message)}"
        now = self._clock()
        with self._lock:
            seen = self._kinds.get(kind)
            if seen is not None and now - seen[0] < self.every_s:
                self._kinds[kind] = (seen[0], seen[1] + 1)
                return False
            if seen is None and len(self._kinds) >= self._max_kinds:
                self._kinds = {k: v for k, v in self._kinds.items() if now - v[0] < self.every_s}
                if len(self._kinds) >= self._max_kinds:  # a storm of distinct lines: start afresh
                    self._kinds = {}
            self._kinds[kind] = (now, 0)
        if seen is not None and seen[1]:
            record.msg = f"{message} (and {seen[1]} more like it in the last {now - seen[0]:.0f}s)"
            record.args = ()
        return True


def setup(level: str = "INFO", stage: str = "wardwatch") -> None:
    """Configure the root logger once for a service process (stderr, key=value lines)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RepeatLimit())
    handler.setFormatter(
        logging.Formatter(f"ts=%(asctime)s level=%(levelname)s stage={stage} logger=%(name)s msg=\"%(message)s\"")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # kafka-python is chatty at INFO about every reconnect and rebalance step.
    logging.getLogger("kafka").setLevel(max(logging.WARNING, logging.getLevelName(level)))
