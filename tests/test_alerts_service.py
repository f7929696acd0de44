"""The alert processor without Kafka: records in, alert/state/dead-letter records out."""

from __future__ import annotations

import json

from alerts.rules import load_rules
from alerts.processor import AlertProcessor
from runtime.metrics import StreamMetrics, new_registry
from runtime.records import InRecord, OutRecord, header
from runtime.topics import ALERTS, ALERTS_CONTROL, ALERTS_STATE, RISK, VITALS_DLQ

T0 = 1_767_225_600_000
MIN = 60_000


def processor() -> AlertProcessor:
    return AlertProcessor(load_rules(), StreamMetrics(new_registry(), "alerts"), clock=lambda: T0 / 1000 + 3600)


def risk_record(offset: int, patient: str, minute: float, risk: float, news2: int = 0, partition: int = 0) -> InRecord:
    value = {"patient_id": patient, "ts_ms": T0 + int(minute * MIN), "risk": risk, "news2": news2,
             "news2_single3": False, "news2_scores": {}, "model": "test"}
    return InRecord(RISK, partition, offset, patient.encode(), json.dumps(value).encode(), T0 + int(minute * MIN))


def stream(n_minutes: int = 240) -> list[InRecord]:
    """Three patients; P2 deteriorates, P3 goes silent for an hour in the middle."""
    records: list[InRecord] = []
    for m in range(n_minutes):
        for patient, risk, news2 in (("P1", 0.05, 1), ("P2", min(0.99, 0.01 * m), min(12, m // 15)), ("P3", 0.1, 2)):
            if patient == "P3" and 60 <= m < 120:
                continue
            records.append(risk_record(len(records), patient, m, risk, news2))
    return records


def alerts_of(outputs: list[OutRecord]) -> list[dict[str, object]]:
    return [json.loads(o.value) for o in outputs if o.topic == ALERTS and o.value is not None]


def test_same_input_from_restored_state_gives_the_same_alerts() -> None:
    records = stream()
    straight = processor()
    expected = [o for i in range(0, len(records), 50) for o in straight.process(records[i : i + 50])]
    for split in (7, 200, 333):
        first = processor()
        outputs = first.process(records[:split])
        changelog = [(o.key, o.value) for o in outputs if o.topic == ALERTS_STATE]
        second = processor()
        second.restore(0, changelog)
        outputs += [o for i in range(split, len(records), 97) for o in second.process(records[i : i + 97])]
        assert alerts_of(outputs) == alerts_of(expected)
    kinds = {(a["rule"], a["status"]) for a in alerts_of(expected)}
    assert ("model_risk", "raised") in kinds and ("data_gap", "raised") in kinds and ("data_gap", "resolved") in kinds


def test_state_records_are_keyed_by_patient_and_pinned_to_the_input_partition() -> None:
    outputs = processor().process([risk_record(0, "P9", 0, 0.1, partition=4)])
    state = [o for o in outputs if o.topic == ALERTS_STATE]
    assert [(o.key, o.partition) for o in state] == [(b"P9", 4)]
    assert json.loads(state[0].value)["last_ts_ms"] == T0


def test_bad_and_late_records_go_to_the_dead_letter_topic() -> None:
    bad = InRecord(RISK, 0, 1, b"P1", b'{"patient_id":"P1","ts_ms":1,"risk":"high"}', T0)
    not_json = InRecord(ALERTS_CONTROL, 0, 2, b"P1", b"ack!", T0)
    outputs = processor().process([risk_record(0, "P1", 5, 0.1), bad, not_json, risk_record(3, "P1", 4, 0.1)])
    dlq = [(header(o, "reason"), header(o, "source-offset")) for o in outputs if o.topic == VITALS_DLQ]
    assert dlq == [("bad_risk", "1"), ("bad_command", "2"), ("late", "3")]


def test_acknowledge_command_from_the_control_topic() -> None:
    p = processor()
    outputs = [o for i, r in enumerate(stream(120)) for o in p.process([r])]
    raised = next(a for a in alerts_of(outputs) if a["status"] == "raised" and a["patient_id"] == "P2")
    command = {"command": "acknowledge", "patient_id": "P2", "alert_id": raised["alert_id"], "ts_ms": T0 + 121 * MIN, "by": "nurse-1"}
    out = p.process([InRecord(ALERTS_CONTROL, 0, 0, b"P2", json.dumps(command).encode(), T0)])
    assert [(a["status"], a["alert_id"], a["acknowledged"]) for a in alerts_of(out)] == [("acknowledged", raised["alert_id"], True)]
    assert any(o.topic == ALERTS_STATE and o.key == b"P2" for o in out)


def test_metrics_count_alerts_by_severity_and_status_never_by_patient() -> None:
    p = processor()
    p.process(stream())
    registry = p.metrics.registry
    assert registry.get_sample_value("wardwatch_alerts_total", {"severity": "technical", "status": "raised"}) == 1
    assert registry.get_sample_value("wardwatch_reading_to_alert_seconds_count") >= 1
    assert registry.get_sample_value("wardwatch_active_alerts", {"severity": "technical"}) == 0
    labels = {k for metric in registry.collect() for s in metric.samples for k in s.labels}
    assert "patient_id" not in labels
