"""End to end on a real broker: sim payloads -> ingest -> score, every record accounted for."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import pytest

from runtime.topics import RISK, VITALS, VITALS_DLQ, VITALS_RAW
from sim.cohort import CohortConfig, generate
from sim.live import live_start_ms
from runtime.records import to_json
from tests.support.kafka import produce, read_committed, spawn, wait_until

pytestmark = pytest.mark.kafka

# Known bad records and the reason each must carry on the dead-letter topic.
BAD = [
    (b"\xff\xfe\x00garbage", "undecodable"),
    (b'["not", "an", "object"]', "not_object"),
    (b'{"patient_id": "P9", "device_id": "D9", "seq": 1}', "missing_field"),
    (b'{"patient_id": "P9", "device_id": "D9", "seq": "one", "ts_ms": 1}', "wrong_type"),
    (b'{"patient_id": "P9", "device_id": "D9", "seq": 2, "ts_ms": NOW, "hr": 900}', "out_of_range"),
    (b'{"patient_id": "P9", "device_id": "D9", "seq": 3, "ts_ms": NOW, "acvpu": "Q"}', "unknown_acvpu"),
    (b'{"patient_id": "P9", "device_id": "D9", "seq": 4, "ts_ms": NOW, "sp02": 97}', "unknown_field"),
    (b'{"patient_id": "P9", "device_id": "D9", "seq": 5, "ts_ms": NOW, "hr": NaN}', "not_finite"),
]


def test_every_raw_record_is_accounted_for_and_every_valid_reading_scored_once(
    kafka_bootstrap: str, topic_prefix: str, workdir: Path
) -> None:
    hours = 3.0
    cohort = generate(CohortConfig(patients=8, hours=hours, seed=11, start_ms=live_start_ms(hours, 0), deteriorating_fraction=0.5))
    now = str(int(time.time() * 1000)).encode()
    bad = [(payload.replace(b"NOW", now), reason) for payload, reason in BAD]
    raw = [(str(r["patient_id"]).encode(), to_json(r)) for r in cohort.readings]
    # Bad records go in the middle of the stream: the stage must carry on after them.
    middle = len(raw) // 2
    stream = raw[:middle] + [(None, payload) for payload, _ in bad] + raw[middle:]
    common = ["--bootstrap-servers", kafka_bootstrap, "--topic-prefix", topic_prefix, "--metrics-port", "0"]
    ingest = spawn("ingest", ["ingest", *common], workdir)
    score = spawn("score", ["score", *common, "--checkpoint", "untrained"], workdir)
    try:
        produce(kafka_bootstrap, topic_prefix + VITALS_RAW, stream)
        risk = read_committed(kafka_bootstrap, topic_prefix + RISK, expect=len(raw), timeout_s=120)
        assert ingest.alive(), ingest.log()
        assert score.alive(), score.log()
    finally:
        ingest.stop()
        score.stop()

    vitals = read_committed(kafka_bootstrap, topic_prefix + VITALS)
    dlq = read_committed(kafka_bootstrap, topic_prefix + VITALS_DLQ)
    assert len(vitals) + len(dlq) == len(stream)
    assert len(vitals) == len(raw)
    assert sorted(r.headers["reason"].decode() for r in dlq) == sorted(reason for _, reason in bad)
    for record in dlq:
        assert record.headers["stage"] == b"ingest"
        assert record.headers["source-topic"] == (topic_prefix + VITALS_RAW).encode() or record.headers["source-topic"] == VITALS_RAW.encode()
        assert int(record.headers["source-offset"]) >= 0
        assert record.value in {payload for payload, _ in bad}

    scored = Counter((r.json()["patient_id"], r.json()["seq"]) for r in risk)
    expected = Counter((str(r["patient_id"]), int(r["seq"])) for r in cohort.readings)
    assert scored == expected, "every valid reading has exactly one risk record"
    for r in risk:
        body = r.json()
        assert 0.0 <= body["risk"] <= 1.0
        assert r.key == body["patient_id"].encode()
        assert r.headers["content-type"] == b"application/json"
