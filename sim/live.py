"""Live mode: replay a cohort into `vitals.raw` at real time or `speed` times faster.

Event time is the devices' own clock. With speed S over a stay of H hours the cohort starts
H·(1 − 1/S) hours in the past, so event time never runs ahead of the wall clock (ingest
rejects readings from the future; device clock skew of seconds stays well inside its
tolerance) and ends at "now". Records are paced by their simulated arrival time, so
store-and-forward bursts, held-back readings and retried duplicates arrive when the cohort
says they do. Ground-truth events go to `sim.events` when their time comes. For a seed the
sequence of records is deterministic; only the wall-clock pacing varies.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator

import numpy as np

from runtime.kafka.client import KafkaClient, connect
from runtime.kafka.paced import Timed, produce_paced, start_ms
from runtime.records import to_json
from runtime.topics import SIM_EVENTS, VITALS_RAW
from sim.cohort import Cohort
from sim.output import event_record

log = logging.getLogger(__name__)

# Malformed payloads a real device fleet sends now and then; the pipeline must dead-letter them.
BAD_PAYLOADS: tuple[bytes, ...] = (
    b"\xff\xfe not json",
    b'{"patient_id": "P00000", "device_id": "D00000", "seq": 1}',  # no ts_ms
    b'{"patient_id": "P00000", "device_id": "D00000", "seq": 1, "ts_ms": "yesterday"}',
    b"[1, 2, 3]",
)


def live_start_ms(hours: float, speed: float, now_ms: int | None = None) -> int:
    """Event-time start so that a replay at `speed` ends at the wall clock, never ahead of it."""
    return start_ms(hours * 3_600_000, speed, now_ms)


def payloads(cohort: Cohort, bad_rate: float, seed: int) -> Iterator[tuple[str | None, int, bytes]]:
    """(key, arrival time ms on the cohort's clock, value) in delivery order, malformed payloads mixed in."""
    rng = np.random.default_rng(seed + 7919)
    for reading, ts in zip(cohort.readings, cohort.columns.deliver_ms.tolist()):
        if bad_rate > 0 and rng.random() < bad_rate:
            yield str(reading["patient_id"]), ts, BAD_PAYLOADS[int(rng.integers(len(BAD_PAYLOADS)))]
        yield str(reading["patient_id"]), ts, to_json(reading)


def run_live(
    cohort: Cohort,
    kafka: KafkaClient | str,
    *,
    speed: float,
    stop: threading.Event,
    bad_rate: float = 0.0,
    on_sent: Callable[[int], None] | None = None,
    topic_prefix: str = "",
) -> int:
    """Produce the cohort paced by event time; returns the number of records sent.

    `kafka`: a client (`runtime.kafka.client.from_config`) or a bootstrap address."""
    kafka = connect(kafka) if isinstance(kafka, str) else kafka
    events = [Timed(e.event_ts_ms, e.patient_id.encode(), to_json(event_record(e))) for e in sorted(cohort.events, key=lambda e: e.event_ts_ms)]
    readings = (Timed(ts, key.encode() if key else None, value) for key, ts, value in payloads(cohort, bad_rate, cohort.config.seed))
    sent = produce_paced(kafka.producer(client_id="wardwatch-sim", linger_ms=20), topic_prefix + VITALS_RAW, readings,
                         topic_prefix + SIM_EVENTS, events, speed=speed, start_ms=cohort.config.start_ms, stop=stop, on_sent=on_sent)
    log.info("sim finished records=%d", sent)
    return sent


def write_jsonl(cohort: Cohort, path: str, bad_rate: float = 0.0) -> int:
    """The same payloads as live mode, to a JSONL file (one raw record per line)."""
    n = 0
    with open(path, "wb") as f:
        for _key, _ts, value in payloads(cohort, bad_rate, cohort.config.seed):
            f.write(value.replace(b"\n", b" ") + b"\n")
            n += 1
    return n
