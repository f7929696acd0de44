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
from collections.abc import Callable, Iterator
from pathlib import Path

from runtime.kafka.client import KafkaClient, connect
from runtime.kafka.paced import Timed, produce_paced, start_ms
from runtime.records import to_json
from runtime.topics import SIM_EVENTS, VITALS_RAW

log = logging.getLogger(__name__)


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
    return start_ms(last_ms - first_ms, speed, now_ms) - first_ms


def records(path: str | Path, offset_ms: int) -> Iterator[Timed]:
    """Every line of readings.jsonl as a record, event times shifted by `offset_ms` (None for a line that is not a reading)."""
    with open(Path(path) / "readings.jsonl", "rb") as f:
        for raw in f:
            line = raw.rstrip(b"\r\n")
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except ValueError:
                yield Timed(None, None, line)
                continue
            ts = _event_time(obj)
            if ts is None:
                yield Timed(None, None, line)
                continue
            obj["ts_ms"] = ts + offset_ms
            key = obj.get("patient_id")
            yield Timed(ts + offset_ms, key.encode() if isinstance(key, str) else None, to_json(obj))


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
    pending = [Timed(int(str(e["event_ts_ms"])), str(e["patient_id"]).encode(), to_json(e)) for e in events(path, offset)]
    sent = produce_paced(kafka.producer(client_id="wardwatch-replay", linger_ms=20), topic_prefix + VITALS_RAW, records(path, offset),
                         topic_prefix + SIM_EVENTS, pending, speed=speed, start_ms=first + offset, stop=stop, on_sent=on_sent)
    log.info("replay finished records=%d", sent)
    return sent
