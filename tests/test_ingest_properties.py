"""Property-based: whatever arrives, ingest answers with readings or reasons, never an exception."""

from __future__ import annotations

import json
import math

from hypothesis import given, settings
from hypothesis import strategies as st

from ingest import RANGES, Reading, encode_reading
from ingest.payload import items_of, parse_payload
from ingest.validate import Limits, Rejected

NOW = 1_767_225_600_000
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=12), children, max_size=6),
    max_leaves=30,
)
FIELDS = ["patient_id", "device_id", "seq", "ts_ms", "hr", "rr", "spo2", "temp", "sbp", "dbp", "on_oxygen", "acvpu",
          "spo2_scale", "resourceType", "status", "code", "subject", "valueQuantity", "entry", "effectiveDateTime"]
reading_like = st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=10)


def vital(name: str) -> st.SearchStrategy:
    low, high = RANGES[name]
    return st.none() | st.floats(min_value=low, max_value=high, allow_nan=False)


valid_readings = st.builds(
    Reading,
    patient_id=st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-", min_size=1, max_size=16),
    device_id=st.text(alphabet="abcdef0123456789", min_size=1, max_size=16),
    seq=st.integers(min_value=0, max_value=2**53),
    ts_ms=st.integers(min_value=NOW - 3_600_000, max_value=NOW),
    hr=vital("hr"), rr=vital("rr"), spo2=vital("spo2"), temp=vital("temp"), sbp=vital("sbp"), dbp=vital("dbp"),
    on_oxygen=st.none() | st.booleans(),
    acvpu=st.none() | st.sampled_from("ACVPU"),
    spo2_scale=st.sampled_from([1, 2]),
)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_raise(raw: bytes) -> None:
    items = parse_payload(raw, NOW)
    assert items and all(item.reading is not None or item.rejected is not None for item in items)


@settings(max_examples=300, deadline=None)
@given(json_values | reading_like)
def test_arbitrary_json_never_raises_and_every_reject_has_a_reason(obj: object) -> None:
    for item in items_of(obj, NOW, Limits()):
        if item.rejected is not None:
            assert isinstance(item.rejected, Rejected) and item.rejected.reason.value and item.rejected.detail


@settings(max_examples=200, deadline=None)
@given(valid_readings)
def test_valid_readings_are_accepted_and_round_to_a_tenth(reading: Reading) -> None:
    items = parse_payload(encode_reading(reading), NOW)
    assert len(items) == 1 and items[0].reading is not None, items[0].rejected
    got = items[0].reading
    assert (got.patient_id, got.device_id, got.seq, got.ts_ms) == (reading.patient_id, reading.device_id, reading.seq, reading.ts_ms)
    for name in ("hr", "rr", "spo2", "temp", "sbp", "dbp"):
        sent, kept = getattr(reading, name), getattr(got, name)
        assert (sent is None) == (kept is None)
        if sent is not None:
            assert math.isclose(kept, round(sent, 1), abs_tol=0.051)


@settings(max_examples=100, deadline=None)
@given(valid_readings, st.sampled_from(["hr", "rr", "spo2", "temp", "sbp", "dbp"]), st.floats(allow_nan=False, allow_infinity=False))
def test_out_of_range_values_are_rejected_never_clamped(reading: Reading, name: str, value: float) -> None:
    low, high = RANGES[name]
    obj = json.loads(encode_reading(reading))
    obj[name] = value
    items = items_of(obj, NOW, Limits())
    if low <= value <= high:
        assert items[0].reading is not None
    else:
        assert items[0].rejected is not None and items[0].rejected.reason.value == "out_of_range"
