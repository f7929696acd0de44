"""The alert service on a real broker: a SIGKILL mid-stream changes nothing in the committed
`alerts` stream (no alert lost, none doubled)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from alerts.rules import load_rules
from alerts.processor import AlertProcessor
from inference.processor import ScorerProcessor
from inference.service import load_model
from ingest import Reading, encode_reading
from runtime.metrics import StreamMetrics, new_registry
from runtime.records import InRecord
from runtime.topics import ALERTS, RISK, VITALS
from sim.cohort import CohortConfig, generate
from sim.devices import DeviceConfig
from tests.support.kafka import create_topics, produce_paced, read_committed, spawn, wait_until

pytestmark = [pytest.mark.kafka, pytest.mark.both_clients]

# The input goes straight to the stage under test, past ingest's de-duplication: no duplicate
# or reordered deliveries, so every record has exactly one expected output.
CLEAN_DELIVERY = DeviceConfig(duplicate_rate=0.0, reorder_rate=0.0, buffered_per_day=0.0)


def risk_stream(patients: int, hours: float, seed: int) -> list[tuple[bytes, bytes]]:
    """Risk records for a cohort, from the scorer's core (no Kafka)."""
    cohort = generate(CohortConfig(patients=patients, hours=hours, seed=seed, deteriorating_fraction=0.4, devices=CLEAN_DELIVERY))
    model, version = load_model("untrained")
    scorer = ScorerProcessor(model, version, StreamMetrics(new_registry(), "score"))
    readings = [Reading(**r) for r in cohort.readings]  # type: ignore[arg-type]
    out = scorer.process([InRecord(VITALS, 0, i, None, encode_reading(r), 0) for i, r in enumerate(readings)])
    return [(r.key, r.value) for r in out if r.topic == RISK]


def offline_alerts(stream: list[tuple[bytes, bytes]], partitions: int) -> list[dict]:
    """The reference: the alert core over the same records, partition by partition."""
    from kafka.partitioner.default import murmur2

    def partition_of(key: bytes) -> int:  # Kafka's default partitioner for keyed records
        return (murmur2(key) & 0x7FFFFFFF) % partitions

    processor = AlertProcessor(load_rules(None), StreamMetrics(new_registry(), "alerts"))
    records = [
        InRecord(RISK, partition_of(key), i, key, value, 0)
        for i, (key, value) in enumerate(stream)
    ]
    return [json.loads(r.value) for r in processor.process(records) if r.topic == ALERTS]


def test_sigkill_mid_stream_leaves_the_committed_alert_stream_unchanged(kafka_bootstrap: str, topic_prefix: str, workdir: Path) -> None:
    stream = risk_stream(patients=20, hours=8, seed=31)
    expected = offline_alerts(stream, partitions=6)
    assert len(expected) >= 5, "the cohort must raise alerts for this test to mean anything"

    args = ["alerts", "--bootstrap-servers", kafka_bootstrap, "--topic-prefix", topic_prefix,
            "--metrics-port", "-1", "--instance-id", "alerts-1", "--max-poll-records", "200"]
    create_topics(kafka_bootstrap, topic_prefix)
    first = spawn("alerts-1", args, workdir)
    try:
        producer = produce_paced(kafka_bootstrap, topic_prefix + RISK, stream, chunks=25, pause_s=0.3)
        threshold = random.Random(7).uniform(0.2, 0.6) * len(expected)
        wait_until(lambda: len(read_committed(kafka_bootstrap, topic_prefix + ALERTS, timeout_s=3, quiet_s=0.5)) >= threshold,
                   timeout_s=120, message="some alerts committed")
        first.kill()
        second = spawn("alerts-1b", args, workdir)
        producer.join()
        got = read_committed(kafka_bootstrap, topic_prefix + ALERTS, expect=len(expected), timeout_s=120)
        got += read_committed(kafka_bootstrap, topic_prefix + ALERTS, timeout_s=4, quiet_s=2)[len(got):]
        assert second.alive(), second.log()
    finally:
        first.stop()
        if "second" in locals():
            second.stop()

    def key(a: dict) -> tuple:
        return (a["patient_id"], a["ts_ms"], a["alert_id"], a["status"], a["severity"], a["rule"])

    got_events = [r.json() for r in got]
    assert len(got_events) == len({key(a) for a in got_events}), "an alert event was doubled"
    assert sorted(map(key, got_events)) == sorted(map(key, expected))
