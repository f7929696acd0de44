"""Scenario 5: event-to-score latency at fixed offered loads.

Definition: from the input record's Kafka CreateTime (set by the bench's producer when it
sends the reading, wall clock) to the moment a read_committed consumer receives the `risk`
record for it (wall clock, same host). The scorer copies the input's timestamp onto the risk
record, so each risk record carries its own start time. This includes the producer's linger
(5 ms), the scorer's poll, scoring, the transaction commit and the consumer's fetch.

Each load gets a fresh set of topics and a fresh scorer process; a warm-up of a few hundred
readings is scored before the paced phase starts, so start-up and the first assignment are
not counted.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka import Producer

from bench.common import Input, Observer, create_topics, fresh_prefix, percentiles, producer, spawn, stop
from runtime.topics import RISK, VITALS, VITALS_DLQ

WARMUP = 300
TICK_S = 0.005
# Most new patients first appear in the first seconds of the paced phase; reported separately.
STEADY_AFTER_S = 2.0


@dataclass(frozen=True)
class LatencyResult:
    offered_per_s: int
    achieved_offered_per_s: float
    achieved_scored_per_s: float
    sent: int
    scored: int
    event_to_score_ms: dict[str, float]
    steady_event_to_score_ms: dict[str, float]  # the same, without the paced phase's first STEADY_AFTER_S

    def as_dict(self) -> dict[str, object]:
        return {"offered_per_s": self.offered_per_s, "achieved_offered_per_s": round(self.achieved_offered_per_s, 1),
                "achieved_scored_per_s": round(self.achieved_scored_per_s, 1), "sent": self.sent, "scored": self.scored,
                "event_to_score_ms": self.event_to_score_ms, "steady_event_to_score_ms": self.steady_event_to_score_ms,
                "steady_after_s": STEADY_AFTER_S}


def run(bootstrap: str, data: Input, command: list[str], rate: int, seconds: float, logdir: Path) -> LatencyResult:
    """One scorer process; `rate` readings/s for `seconds` after a warm-up."""
    needed = WARMUP + int(rate * seconds)
    if len(data.records) < needed:
        raise ValueError(f"latency at {rate}/s for {seconds}s needs {needed} readings, input has {len(data.records)}")
    prefix = fresh_prefix(f"latency{rate}")
    create_topics(bootstrap, prefix)
    observer = Observer(bootstrap, [prefix + RISK, prefix + VITALS_DLQ])
    process = spawn([a.format(prefix=prefix, instance=f"latency{rate}") for a in command], logdir / f"latency-{rate}.log")
    # One producer for the warm-up and the paced phase: a fresh one would spend its first few
    # hundred milliseconds connecting and getting a producer id, and the readings it stamped
    # meanwhile would measure the load generator's start-up, not the scorer.
    paced_producer = producer(bootstrap)
    try:
        for key, value in data.records[:WARMUP]:
            paced_producer.produce(prefix + VITALS, key=key, value=value)
        paced_producer.flush(30)
        observer.wait_for(WARMUP, 120, stall_s=120)
        if observer.seen.count < WARMUP:
            raise RuntimeError(f"latency {rate}/s: warm-up not scored (process rc={process.poll()}); see {logdir}")
        start_ms = int(time.time() * 1000)
        sent, elapsed = _paced(paced_producer, prefix + VITALS, data.records[WARMUP:needed], rate, seconds)
        observer.wait_for(WARMUP + sent, 60, stall_s=15)
    finally:
        stop([process])
        observer.close()
    seen = observer.seen
    paced = [(r, c) for r, c in zip(seen.receive_s, seen.create_ms) if c >= start_ms]
    latencies = [r * 1000.0 - c for r, c in paced]
    steady = [r * 1000.0 - c for r, c in paced if c >= start_ms + STEADY_AFTER_S * 1000]
    scored_window = (max(r for r, _ in paced) - start_ms / 1000.0) if paced else 0.0
    return LatencyResult(rate, sent / elapsed, len(paced) / scored_window if scored_window > 0 else 0.0,
                         sent, len(paced), percentiles(latencies), percentiles(steady))


def _paced(p: Producer, topic: str, records, rate: int, seconds: float) -> tuple[int, float]:  # noqa: ANN001
    """Send at `rate`/s in 5 ms ticks (each record stamped when sent); returns (sent, seconds)."""
    started = time.perf_counter()
    sent = 0
    total = min(len(records), int(rate * seconds))
    while sent < total:
        due = min(total, int((time.perf_counter() - started) * rate) + 1)
        while sent < due:
            key, value = records[sent]
            try:
                p.produce(topic, key=key, value=value)
            except BufferError:
                p.poll(0.01)
                continue
            sent += 1
        p.poll(0)
        time.sleep(TICK_S)
    elapsed = time.perf_counter() - started
    p.flush(30)
    return sent, elapsed
