"""The `risk` record's contract (inference/records.py): one codec for the scorer and every reader."""

from __future__ import annotations

import json

import pytest

from alerts.messages import MessageError, RiskReading, parse_risk
from inference.model import TorchStep, untrained
from inference.news2 import PARAMETERS
from inference.records import Risk, RiskDecodeError, decode_risk, encode_risk, explanation_from_object, format_risk
from inference.processor import ScorerProcessor
from ingest import Reading, encode_reading
from runtime.metrics import StreamMetrics, new_registry
from runtime.records import InRecord
from runtime.topics import RISK, VITALS
from wardwatch.ward import Ward

T0 = 1_767_225_600_000
MIN = 60_000


def scored_records() -> list[bytes]:
    """What the real scorer writes on `risk` for a few patients with missing vitals."""
    scorer = ScorerProcessor(TorchStep(untrained(0)), "test-model", StreamMetrics(new_registry(), "score"), clock=lambda: T0 / 1000)
    inputs = []
    for i in range(24):
        reading = Reading(
            patient_id=f"P{i % 3}", device_id=f"D{i % 3}", seq=i, ts_ms=T0 + i * MIN,
            hr=60.0 + i if i % 4 else None, rr=14.0 + i % 9, spo2=None if i % 5 == 0 else 95.0 - i % 7,
            temp=37.0 if i % 6 == 0 else None, sbp=120.0 - 3 * i if i % 8 == 0 else None,
            on_oxygen=(i % 2 == 0) if i % 3 else None, acvpu="A" if i % 7 else "V", spo2_scale=2 if i % 3 == 2 else 1,
        )
        inputs.append(InRecord(VITALS, i % 3, i, reading.patient_id.encode(), encode_reading(reading), T0 + i * MIN))
    values = [o.value for o in scorer.process(inputs) if o.topic == RISK]
    assert len(values) == 24
    return values  # type: ignore[return-value]


def test_what_the_scorer_writes_decodes_and_reencodes_to_the_same_bytes() -> None:
    explained = 0
    for value in scored_records():
        record = decode_risk(value)
        assert encode_risk(record) == value
        obj = json.loads(value)
        assert record == Risk(obj["patient_id"], obj["ts_ms"], obj["risk"], obj["news2"], obj["news2_single3"],
                              obj["model"], obj["seq"], obj["news2_scores"], explanation_from_object(obj.get("explain")))
        fields = ["patient_id", "ts_ms", "seq", "risk", "news2", "news2_single3", "news2_scores", "model"]
        assert list(obj) == fields + (["explain"] if "explain" in obj else [])
        assert list(obj["news2_scores"]) == list(PARAMETERS)
        explained += record.explain is not None
    assert explained > 0


def test_format_round_trips_through_decode_rounding_risk_to_six_places() -> None:
    value = format_risk('P "7"', T0, 42, 0.123456789, 6, True, [3, 0, -1, 1, 2, -1, 0], json.dumps("gru-x"))
    record = decode_risk(value)
    assert record == Risk('P "7"', T0, 0.123457, 6, True, "gru-x", 42,
                          {"rr": 3, "spo2": 0, "on_oxygen": None, "sbp": 1, "hr": 2, "acvpu": None, "temp": 0})
    assert encode_risk(record) == value
    assert decode_risk(value.decode()) == record


def test_every_reader_sees_the_same_record() -> None:
    ward = Ward()
    for value in scored_records():
        record = decode_risk(value)
        assert parse_risk(value) == RiskReading(record.patient_id, record.ts_ms, record.risk, record.news2,
                                                record.news2_single3, record.model, record.seq, record.news2_scores, record.explain)
        assert hash(parse_risk(value)) == hash(parse_risk(value))  # usable as a key, as before
        assert ward.apply(RISK, value) is None
        patient = ward.patients[record.patient_id].to_json()
        assert (patient["risk"], patient["news2"], patient["news2_single3"], patient["model"]) == (
            record.risk, record.news2, record.news2_single3, record.model)
        assert patient["news2_scores"] == record.news2_scores


BAD = {
    None: "value=None: expected a JSON object",
    b"[1, 2]": "value=list: expected a JSON object",
    b'{"patient_id": "P1", "ts_ms": 1, "risk": "high", "news2": 0, "news2_single3": false, "model": "m"}': "risk='high': expected a number in 0-1",
    b'{"patient_id": "P1", "ts_ms": 1, "risk": 2.5, "news2": 0, "news2_single3": false, "model": "m"}': "risk=2.5: expected a number in 0-1",
    b'{"patient_id": "P1", "ts_ms": 1, "risk": NaN, "news2": 0, "news2_single3": false, "model": "m"}': "risk=nan: expected a number in 0-1",
    b'{"patient_id": "P1", "ts_ms": 1, "risk": 0.5, "news2": 21, "news2_single3": false, "model": "m"}': "news2=21: expected an integer in 0-20",
    b'{"patient_id": "P1", "ts_ms": 1, "risk": 0.5, "news2": true, "news2_single3": false, "model": "m"}': "news2=True: expected an integer in 0-20",
    b'{"patient_id": "P1", "ts_ms": 1, "risk": 0.5, "news2": 3, "news2_single3": "yes", "model": "m"}': "news2_single3='yes': expected true or false",
    b'{"patient_id": "P1", "ts_ms": 1, "risk": 0.5, "news2": 3, "news2_single3": true, "model": 5}': "model=5: expected the model version string",
    b'{"patient_id": "", "ts_ms": 1, "risk": 0.5, "news2": 3, "news2_single3": true, "model": "m"}': "patient_id='': expected a non-empty string of at most 128 characters",
    b'{"patient_id": "P1", "ts_ms": -1, "risk": 0.5, "news2": 3, "news2_single3": true, "model": "m"}': "ts_ms=-1: expected epoch milliseconds (an integer >= 0)",
}


@pytest.mark.parametrize("value", list(BAD))
def test_a_bad_record_is_refused_with_the_same_line_by_every_reader(value: bytes | None) -> None:
    with pytest.raises(RiskDecodeError) as decoded:
        decode_risk(value)
    assert str(decoded.value) == BAD[value]
    with pytest.raises(MessageError) as parsed:
        parse_risk(value)
    assert str(parsed.value) == BAD[value]  # the alert service's dead-letter detail is unchanged
    if value is not None and value.startswith(b"{") and b'"patient_id": ""' not in value and b"-1" not in value:
        assert Ward().apply(RISK, value) == "bad_risk"


def test_optional_fields_that_are_malformed_read_as_absent() -> None:
    value = {"patient_id": "P1", "ts_ms": 5, "risk": 0.25, "news2": 2, "news2_single3": False, "model": "m",
             "seq": "seven", "news2_scores": {"rr": 4, "hr": True, "spo2": 1, "nonsense": 2, "temp": None}}
    record = decode_risk(json.dumps(value))
    assert record.seq is None
    assert record.news2_scores == {"spo2": 1, "temp": None}
    assert decode_risk(json.dumps({k: v for k, v in value.items() if k not in ("seq", "news2_scores")})).news2_scores == {}
    with pytest.raises(ValueError, match="seq is required"):
        encode_risk(record)
