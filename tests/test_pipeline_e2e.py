"""End to end on a real broker: sim -> ingest -> score -> alerts, every record accounted for."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import pytest

from runtime.topics import ALERTS, RISK, VITALS, VITALS_DLQ, VITALS_RAW
from sim.cohort import CohortConfig, generate
from sim.confounders import ConfounderRates
from sim.devices import DeviceConfig
from sim.live import live_start_ms
from runtime.records import to_json
from tests.support.kafka import create_topics, produce, read_committed, spawn

pytestmark = [pytest.mark.kafka, pytest.mark.both_clients]

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


def scripted_cohort(hours: float):  # noqa: ANN201
    """A scripted ward: half the patients deteriorate; no confounders, artefacts or delivery
    faults and hourly blood pressure, so every deterioration shows in NEWS2, every stable
    patient should stay quiet and every reading should be scored."""
    return generate(CohortConfig(
        patients=10, hours=hours, seed=11, start_ms=live_start_ms(hours, 0), deteriorating_fraction=0.5,
        confounders=ConfounderRates(copd=0, chronic_tachycardia=0, transient_fever=0, recovering=0, exercise=0),
        devices=DeviceConfig(
            duplicate_rate=0.0, reorder_rate=0.0, buffered_per_day=0.0, artefact_rate=0.0, spike_rate=0.0,
            bp_schedule=((3600.0, 1.0),),
        ),
    ))


def test_every_raw_record_is_accounted_for_and_alerts_follow_the_deteriorating_patients(
    kafka_bootstrap: str, topic_prefix: str, workdir: Path
) -> None:
    hours = 10.0
    cohort = scripted_cohort(hours)
    deteriorating = {e.patient_id for e in cohort.events}
    stable = {p.patient_id for p in cohort.patients} - deteriorating
    assert deteriorating and stable
    now = str(int(time.time() * 1000)).encode()
    bad = [(payload.replace(b"NOW", now), reason) for payload, reason in BAD]
    raw = [(str(r["patient_id"]).encode(), to_json(r)) for r in cohort.readings]
    # Bad records go in the middle of the stream: the stage must carry on after them.
    middle = len(raw) // 2
    stream = raw[:middle] + [(None, payload) for payload, _ in bad] + raw[middle:]
    common = ["--bootstrap-servers", kafka_bootstrap, "--topic-prefix", topic_prefix, "--metrics-port", "0"]
    create_topics(kafka_bootstrap, topic_prefix)
    ingest = spawn("ingest", ["ingest", *common], workdir)
    score = spawn("score", ["score", *common], workdir)
    alerts = spawn("alerts", ["alerts", *common], workdir)
    try:
        produce(kafka_bootstrap, topic_prefix + VITALS_RAW, stream)
        risk = read_committed(kafka_bootstrap, topic_prefix + RISK, expect=len(raw), timeout_s=180)
        alert_events = [r.json() for r in read_committed(kafka_bootstrap, topic_prefix + ALERTS, timeout_s=60, quiet_s=5)]
        for service in (ingest, score, alerts):
            assert service.alive(), service.log()
    finally:
        for service in (ingest, score, alerts):
            service.stop()

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

    # Urgent and emergency alerts (NEWS2 >= 5 or model risk) mark a deteriorating patient. A
    # low-medium "red score" (one NEWS2 parameter at 3, such as RR 8 in a sleeping patient)
    # can be genuine in a stable patient: NEWS2 asks for a review then, not a response.
    escalating = {
        a["patient_id"] for a in alert_events if a["status"] in ("raised", "escalated") and a["severity"] in ("urgent", "emergency")
    }
    assert deteriorating <= escalating, f"no urgent alert for deteriorating patients {sorted(deteriorating - escalating)}"
    assert not escalating & stable, f"urgent alerts for stable patients {sorted(escalating & stable)}"
