"""The reading contract's validation, table-driven: every reject reason, and the valid shapes."""

from __future__ import annotations

import json

import pytest

from ingest import Limits, Reason, Rejected, decode_reading, encode_reading, parse_reading

NOW = 1_767_225_600_000
BASE = {"patient_id": "P1", "device_id": "D1", "seq": 7, "ts_ms": NOW}


def raw(**fields: object) -> bytes:
    return json.dumps({**BASE, **fields}).encode()


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"\xff\xfe", Reason.UNDECODABLE),
        (b"{not json", Reason.UNDECODABLE),
        (None, Reason.UNDECODABLE),
        (b"[1,2]", Reason.NOT_OBJECT),
        (b'"text"', Reason.NOT_OBJECT),
        (json.dumps({"device_id": "D1", "seq": 1, "ts_ms": NOW}).encode(), Reason.MISSING_FIELD),
        (raw(patient_id=None), Reason.MISSING_FIELD),
        (raw(seq="7"), Reason.WRONG_TYPE),
        (raw(seq=7.5), Reason.WRONG_TYPE),
        (raw(hr="80"), Reason.WRONG_TYPE),
        (raw(hr=True), Reason.WRONG_TYPE),
        (raw(patient_id=12), Reason.WRONG_TYPE),
        (raw(on_oxygen="yes"), Reason.WRONG_TYPE),
        (raw(spo2_scale=3), Reason.WRONG_TYPE),
        (raw(hr=19.9), Reason.OUT_OF_RANGE),
        (raw(hr=300.1), Reason.OUT_OF_RANGE),
        (raw(spo2=101), Reason.OUT_OF_RANGE),
        (raw(seq=-1), Reason.OUT_OF_RANGE),
        (raw(acvpu="X"), Reason.UNKNOWN_ACVPU),
        (raw(sp02=97), Reason.UNKNOWN_FIELD),
        (raw(ts_ms=NOW + 10 * 60_000), Reason.TS_FUTURE),
        (raw(ts_ms=NOW - 8 * 24 * 3_600_000), Reason.TS_PAST),
        (b'{"patient_id":"P1","device_id":"D1","seq":1,"ts_ms":1,"hr":NaN}', Reason.NOT_FINITE),
        (b'{"patient_id":"P1","device_id":"D1","seq":1,"ts_ms":1,"hr":Infinity}', Reason.NOT_FINITE),
        (b"{" + b" " * 20_000 + b"}", Reason.TOO_LARGE),
    ],
)
def test_rejects_carry_the_precise_reason(payload: bytes | None, reason: Reason) -> None:
    with pytest.raises(Rejected) as info:
        parse_reading(payload, NOW)
    assert info.value.reason is reason
    assert info.value.detail  # a line a person can act on


def test_range_edges_are_inclusive_and_values_rounded_to_a_tenth() -> None:
    reading = parse_reading(raw(hr=20, rr=80, spo2=100, temp=36.849, sbp=300, dbp=20), NOW)
    assert (reading.hr, reading.rr, reading.spo2, reading.temp, reading.sbp, reading.dbp) == (20, 80, 100, 36.8, 300, 20)


def test_absent_vitals_are_none_and_acvpu_is_normalised() -> None:
    reading = parse_reading(raw(hr=None, acvpu=" v "), NOW)
    assert reading.hr is None and reading.spo2 is None
    assert reading.acvpu == "V"
    assert reading.spo2_scale == 1


def test_time_checks_can_be_widened_for_replays() -> None:
    old = raw(ts_ms=1_000)
    assert parse_reading(old, NOW, Limits(max_age_ms=2**62)).ts_ms == 1_000


def test_codec_round_trip() -> None:
    reading = parse_reading(raw(hr=71.5, on_oxygen=True, acvpu="A", spo2_scale=2), NOW)
    assert decode_reading(encode_reading(reading)) == reading
