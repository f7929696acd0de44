"""Producing recorded data paced by its event time: the simulator's live mode and replay.

Event time runs `speed` times as fast as the wall clock from `start_ms` (speed 0: as fast as
possible). A record waits until the paced clock reaches its event time; the clock follows the
latest event time sent, so a record older than one already sent (out of order) never waits.
Events (the ground truth, on their own topic) go out just before the first record at or after
their time.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from runtime.kafka.client.base import Producer
from runtime.records import JSON_HEADERS


@dataclass(frozen=True, slots=True)
class Timed:
    """One record to send, with its event time (None: send it at once, it has no time)."""

    ts_ms: int | None
    key: bytes | None
    value: bytes


def start_ms(span_ms: float, speed: float, now_ms: int | None = None) -> int:
    """The event time to start at so that `span_ms` of event time at `speed` ends at `now_ms`
    (the wall clock by default): event time never runs ahead of the clock."""
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    if speed <= 0:  # as fast as possible: the whole span lies in the past
        return now_ms - int(span_ms)
    return now_ms - int(span_ms * (1.0 - 1.0 / speed))


def produce_paced(
    producer: Producer,
    topic: str,
    records: Iterable[Timed],
    events_topic: str,
    events: Sequence[Timed],
    *,
    speed: float,
    start_ms: int,
    stop: threading.Event,
    on_sent: Callable[[int], None] | None = None,
) -> int:
    """Send `records` to `topic` in order, paced, and `events` (in event-time order) to
    `events_topic` when their time comes; flush and close the producer. Returns the records
    sent (not counting events); stops early when `stop` is set."""
    sent, next_event = 0, 0
    t0_wall = time.monotonic()
    paced = start_ms
    try:
        for record in records:
            if stop.is_set():
                break
            if record.ts_ms is not None:
                paced = max(paced, record.ts_ms)
            if speed > 0:
                delay = (paced - start_ms) / 1000.0 / speed - (time.monotonic() - t0_wall)
                if delay > 0 and stop.wait(delay):
                    break
            while next_event < len(events) and (events[next_event].ts_ms or 0) <= paced:
                event = events[next_event]
                producer.send(events_topic, event.value, key=event.key, headers=list(JSON_HEADERS))
                next_event += 1
            producer.send(topic, record.value, key=record.key, headers=list(JSON_HEADERS))
            sent += 1
            if on_sent is not None:
                on_sent(1)
        producer.flush(timeout_s=120)
    finally:
        producer.close(timeout_s=10)
    return sent
