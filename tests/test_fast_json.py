"""orjson on the hot paths writes and reads exactly what the standard library did.

`encode_reading` must give the same bytes as `json.dumps(..., separators=(",", ":"))` for any
Reading (orjson writes non-ASCII and some floats differently, so those go to the standard
encoder); ingest's `decode_json` must give the same value, or the same rejection, as the
standard decoder for any payload; `json_object` the same object or error as before.
"""

from __future__ import annotations

import json
import math

from hypothesis import given, settings
from hypothesis import strategies as st
import pytest

from ingest.contract import Reading, encode_reading
from ingest.validate import Rejected, _reject_constant, decode_json
from runtime.records import json_object

TEXT = st.text(min_size=1, max_size=12)  # any characters: non-ASCII, controls, quotes, surrogates
FLOATS = st.one_of(st.floats(allow_nan=False, allow_infinity=False), st.floats(min_value=20, max_value=300).map(lambda x: round(x, 1)))
OPTIONAL = st.one_of(st.none(), FLOATS)
INTS = st.one_of(st.integers(min_value=0, max_value=2**53), st.integers(min_value=0, max_value=2**80))


@settings(max_examples=400, deadline=None)
@given(TEXT, TEXT, INTS, INTS, OPTIONAL, OPTIONAL, OPTIONAL, OPTIONAL, OPTIONAL, OPTIONAL,
       st.one_of(st.none(), st.booleans()), st.one_of(st.none(), st.sampled_from("ACVPU"), TEXT))
def test_a_reading_is_encoded_to_the_bytes_the_standard_encoder_writes(
        patient_id, device_id, seq, ts_ms, hr, rr, spo2, temp, sbp, dbp, on_oxygen, acvpu) -> None:
    reading = Reading(patient_id, device_id, seq, ts_ms, hr, rr, spo2, temp, sbp, dbp, on_oxygen, acvpu)
    try:
        expected = json.dumps(reading.to_dict(), separators=(",", ":"), allow_nan=False).encode()
    except UnicodeEncodeError:  # a lone surrogate: neither encoder writes it
        return
    assert encode_reading(reading) == expected


def _standard(raw: bytes):
    try:
        return json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
    except Exception as exc:  # noqa: BLE001 - compared by kind only
        return type(exc)


JSON_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70), st.floats(allow_nan=False), TEXT),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(TEXT, inner, max_size=3)),
    max_leaves=8,
)


@settings(max_examples=400, deadline=None)
@given(JSON_VALUES)
def test_ingest_decodes_any_json_to_the_value_the_standard_decoder_gives(value) -> None:
    try:
        raw = json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raw = json.dumps(value).encode()  # lone surrogates as escapes: orjson refuses, the fallback reads them
    expected = _standard(raw)
    try:
        got = decode_json(raw, 10**6)
    except Rejected:
        assert isinstance(expected, type) or (isinstance(expected, float) and not math.isfinite(expected))
        return
    assert got == expected
    assert json.dumps(got) == json.dumps(expected)  # the same types too (an int stays an int)


@pytest.mark.parametrize("raw, reason", [
    (b'{"hr": NaN}', "not_finite"),
    (b'{"hr": Infinity}', "not_finite"),
    (b'\xef\xbb\xbf{}', "undecodable"),
    (b'{"hr": 1', "undecodable"),
    (b'\xff{}', "undecodable"),
])
def test_what_orjson_refuses_is_rejected_as_before(raw: bytes, reason: str) -> None:
    with pytest.raises(Rejected) as rejected:
        decode_json(raw, 10**6)
    assert rejected.value.reason.value == reason


def test_a_long_integer_stays_an_integer() -> None:
    assert decode_json(b'{"seq": -99999999999999999999}', 10**6) == {"seq": -99999999999999999999}
    assert json_object(b'{"seq": -99999999999999999999}') == {"seq": -99999999999999999999}


def test_a_record_value_with_nan_still_reaches_the_field_check() -> None:
    assert math.isnan(json_object(b'{"risk": NaN}')["risk"])
    with pytest.raises(ValueError, match="not JSON"):
        json_object(b'{"risk": ')
