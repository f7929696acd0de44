"""Replay a cohort directory (imported or simulated) into `vitals.raw`, paced by event time.

Every line of `readings.jsonl` becomes one record, keyed by patient, in file order. Event
times are shifted so that, at `speed` S over a cohort spanning H hours, the replay starts
H·(1 − 1/S) hours in the past and ends at the wall clock (as `sim.live` does): event time never
runs ahead of ingest's clock. A line that is not a reading object is sent unchanged, so ingest
dead-letters it with its reason, exactly as a bad record from a device. Events from
`events.jsonl` go to `sim.events` when their (shifted) time comes.

Ingest's `--max-age-ms` must cover the replayed span (default 7 days), or be 0 for replays.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from runtime.kafka.client import KafkaClient, connect
from runtime.records import JSON_HEADERS, to_json
from runtime.topics import SIM_EVENTS, VITALS_RAW

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReplayRecord:
    key: bytes | None
    ts_ms: int | None  # shifted event time, None for a line that is not a reading
    value: bytes


def _event_time(obj: object) -> int | None:
    if isinstance(obj, dict):
        ts = obj.get("ts_ms")
        if isinstance(ts, int) and not isinstance(ts, bool):
            return ts
    return None


def cohort_span(path: str | Path) -> tuple[int, int]:
    """(first, last) event time of the readings in a cohort directory."""
    first, last = None, None
    with open(Path(path) / "readings.jsonl", "rb") as f:
        for line in f:
            try:
                ts = _event_time(json.loads(line))
            except ValueError:
                continue
            if ts is not None:
                first = ts if first is None else min(first, ts)
                last = ts if last is None else max(last, ts)
    if first is None or last is None:
        raise ValueError(f"{path}: readings.jsonl has no readings")
    return first, last


def replay_offset(first_ms: int, last_ms: int, speed: float, now_ms: int | None = None) -> int:
    """Milliseconds to add to every event time so the replay ends at `now_ms`, never ahead of it."""
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    span = last_ms - first_ms
    start = now_ms - span if speed <= 0 else now_ms - int(span * (1.0 - 1.0 / speed))
    return start - first_ms


def records(path: str | Path, offset_ms: int) -> Iterator[ReplayRecord]:
    """Every line of readings.jsonl as a record, event times shifted by `offset_ms`."""
    with open(Path(path) / "readings.jsonl", "rb") as f:
        for raw in f:
            line = raw.rstrip(b"\r\n")
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except ValueError:
                yield ReplayRecord(None, None, line)
                continue
            ts = _event_time(obj)
            if ts is None:
                yield ReplayRecord(None, None, line)
                continue
            obj["ts_ms"] = ts + offset_ms
            key = obj.get("patient_id")
            yield ReplayRecord(key.encode() if isinstance(key, str) else None, ts + offset_ms, to_json(obj))


def events(path: str | Path, offset_ms: int) -> list[dict[str, object]]:
    file = Path(path) / "events.jsonl"
    out = []
    if file.is_file():
        for line in file.read_text().splitlines():
            if line.strip():
                e = json.loads(line)
                e["event_ts_ms"] = int(e["event_ts_ms"]) + offset_ms
                if e.get("onset_ts_ms") is not None:
                    e["onset_ts_ms"] = int(e["onset_ts_ms"]) + offset_ms
                out.append(e)
    return sorted(out, key=lambda e: e["event_ts_ms"])


def run_replay(
    path: str | Path,
    kafka: KafkaClient | str,
    *,
    speed: float,
    stop: threading.Event,
    topic_prefix: str = "",
    on_sent: Callable[[int], None] | None = None,
    now_ms: int | None = None,
) -> int:
    """Produce the cohort paced by event time (speed 0: as fast as possible); returns records sent.
    `kafka`: a client (`runtime.kafka.client.from_config`) or a bootstrap address."""
    kafka = connect(kafka) if isinstance(kafka, str) else kafka
    first, last = cohort_span(path)
    offset = replay_offset(first, last, speed, now_ms)
    pending = events(path, offset)
    producer = kafka.producer(client_id="wardwatch-replay", linger_ms=20)
    sent, next_event = 0, 0
    t0_wall, t0_event = time.monotonic(), first + offset
    paced = t0_event  # pace by the latest event time seen: out-of-order lines never wait
    try:
        for record in records(path, offset):
            if stop.is_set():
                break
            if record.ts_ms is not None:
                paced = max(paced, record.ts_ms)
            if speed > 0:
                delay = (paced - t0_event) / 1000.0 / speed - (time.monotonic() - t0_wall)
                if delay > 0 and stop.wait(delay):
                    break
            while next_event < len(pending) and int(str(pending[next_event]["event_ts_ms"])) <= paced:
                e = pending[next_event]
                producer.send(topic_prefix + SIM_EVENTS, to_json(e), key=str(e["patient_id"]).encode(), headers=list(JSON_HEADERS))
                next_event += 1
            producer.send(topic_prefix + VITALS_RAW, record.value, key=record.key, headers=list(JSON_HEADERS))
            sent += 1
            if on_sent is not None:
                on_sent(1)
        producer.flush(timeout_s=120)
    finally:
        producer.close(timeout_s=10)
    log.info("replay finished records=%d", sent)
    return sent
