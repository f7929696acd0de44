"""The log limit on Kafka client libraries' repeated lines (runtime/logs.py)."""

from __future__ import annotations

import io
import logging

import pytest

from runtime.logs import RepeatLimit


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def limited() -> tuple[logging.Logger, logging.Logger, io.StringIO, Clock]:
    clock = Clock()
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.addFilter(RepeatLimit(loggers=("test.client",), every_s=30.0, clock=clock))
    handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    client, own = logging.getLogger("test.client"), logging.getLogger("test.own")
    for logger in (client, own):
        logger.handlers[:] = [handler]
        logger.propagate = False
        logger.setLevel(logging.DEBUG)
    return client, own, out, clock


def test_an_outage_s_reconnect_failures_are_one_line_per_interval_with_a_count(limited) -> None:  # noqa: ANN001
    client, _own, out, clock = limited
    for ms in range(150):  # librdkafka's reconnect failures differ only in their numbers
        client.error("FAIL [consumer-3] sasl_ssl://127.0.0.1:46339/1: connection refused (after %dms in state CONNECT)", ms)
    clock.now += 31
    client.error("FAIL [consumer-3] sasl_ssl://127.0.0.1:46339/1: connection refused (after %dms in state CONNECT)", 7)
    lines = out.getvalue().splitlines()
    assert len(lines) == 2, lines
    assert lines[0].endswith("(after 0ms in state CONNECT)")
    assert lines[1].endswith("(after 7ms in state CONNECT) (and 149 more like it in the last 31s)")


def test_different_lines_levels_and_loggers_are_not_held_back(limited) -> None:  # noqa: ANN001
    client, own, out, _clock = limited
    client.error("FAIL broker 1 down")
    client.warning("FAIL broker 1 down")  # another level
    client.error("SESSTMOUT session timed out")  # another line
    logging.getLogger("test.client.conn").error("FAIL broker 1 down")  # a child logger: its own kind
    for _ in range(3):
        own.warning("transaction aborted stage=score records=%d", 5)  # not a client logger: never limited
    lines = out.getvalue().splitlines()
    assert len(lines) == 7, lines
    assert sum("transaction aborted" in line for line in lines) == 3


def test_the_kinds_remembered_are_bounded(limited) -> None:  # noqa: ANN001
    client, _own, out, clock = limited
    limit = RepeatLimit(loggers=("test.client",), every_s=30.0, clock=clock, max_kinds=10)
    for i in range(100):
        record = client.makeRecord("test.client", logging.ERROR, __file__, 1, f"line kind {chr(65 + i % 26)}{chr(65 + i // 26)}", (), None)
        clock.now += 5
        limit.filter(record)
    assert len(limit._kinds) <= 10


def test_a_storm_of_distinct_lines_does_not_grow_memory(limited) -> None:  # noqa: ANN001
    client, _own, _out, clock = limited
    limit = RepeatLimit(loggers=("test.client",), every_s=30.0, clock=clock, max_kinds=10)
    for i in range(100):  # all within one interval
        limit.filter(client.makeRecord("test.client", logging.ERROR, __file__, 1, f"kind {chr(65 + i % 26)}{chr(65 + i // 26)}", (), None))
    assert len(limit._kinds) <= 10
