"""Validation of untrusted device readings: bytes in, a `Reading` or a precise reject out.

Policy:
- Unknown fields are rejected (`unknown_field`), never ignored: a misspelt vital ("sp02")
  must not be read as an absent one, and a field this version does not know (a new unit, a
  flag) must not be dropped without anyone noticing. A sender adds fields after the contract
  does.
- Numbers must be finite JSON numbers (booleans are not numbers; NaN, Infinity and literals
  that overflow a double are `not_finite`).
- Rounding: each vital is converted to its contract unit first (FHIR input, `ingest.units`),
  range-checked on the unrounded value (rounding never pulls a value into range), then rounded
  to one decimal with Python's `round(x, 1)` (round-half-even on the stored double). A tenth
  is finer than any of these bedside measurements, so rounding only removes conversion noise
  (98.6 [degF] -> 37.0 Cel) and spurious device precision.
- Timestamps must lie within [now - max_age, now + max_future] of the ingest clock.
- Identifiers are 1-128 printable characters after trimming; `seq` and `ts_ms` are integers from 0 to 2**63-1.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

from ingest.contract import ACVPU_LEVELS, ALL_FIELDS, MAX_ID_LENGTH, RANGES, SPO2_SCALES, VITALS, Reading
from runtime.records import NOT_DECODED, fast_json

_KNOWN_FIELDS: Final = frozenset(ALL_FIELDS)
_VITAL_RANGES: Final = tuple((name, RANGES[name]) for name in VITALS)

MAX_PAYLOAD_BYTES = 16 * 1024
MAX_FHIR_BYTES = 512 * 1024  # a Bundle of a few dozen Observations with narrative text
MAX_INTEGER = 2**63 - 1  # fits a signed 64-bit integer for every consumer
DEFAULT_MAX_FUTURE_MS = 5 * 60 * 1000  # device clocks drift; five minutes is generous
DEFAULT_MAX_AGE_MS = 7 * 24 * 3600 * 1000  # store-and-forward devices upload late, not this late


class Reason(StrEnum):
    """Why a record was rejected; the value is the `reason` header on `vitals.dlq`."""

    UNDECODABLE = "undecodable"
    TOO_LARGE = "too_large"
    NOT_OBJECT = "not_object"
    MISSING_FIELD = "missing_field"
    UNKNOWN_FIELD = "unknown_field"
    WRONG_TYPE = "wrong_type"
    NOT_FINITE = "not_finite"
    OUT_OF_RANGE = "out_of_range"
    UNKNOWN_ACVPU = "unknown_acvpu"
    TS_FUTURE = "ts_future"
    TS_PAST = "ts_past"
    LATE = "late"  # set by the scorer and the alert service: older than the patient's last applied event time
    DUPLICATE = "duplicate"
    UNSUPPORTED_FHIR = "unsupported_fhir"  # not a vital-signs Observation (or Bundle of them) we map
    UNSUPPORTED_UNIT = "unsupported_unit"  # a declared unit we cannot convert to the contract's


@dataclass(frozen=True, slots=True)
class Rejected(Exception):
    """A record that failed validation: the reason code plus one line a person can act on."""

    reason: Reason
    detail: str

    def __str__(self) -> str:
        return f"{self.reason}: {self.detail}"


@dataclass(frozen=True, slots=True)
class Limits:
    max_future_ms: int = DEFAULT_MAX_FUTURE_MS
    max_age_ms: int = DEFAULT_MAX_AGE_MS
    max_payload_bytes: int = MAX_PAYLOAD_BYTES  # a plain reading
    max_fhir_bytes: int = MAX_FHIR_BYTES  # a FHIR Observation or Bundle


def limits(max_future_ms: int, max_age_ms: int) -> Limits:
    """Limits from the service settings, where 0 switches a time check off (replays)."""
    never = 2**62
    return Limits(max_future_ms=max_future_ms or never, max_age_ms=max_age_ms or never)


# Offline cohorts (training, evaluation) are read long after the fact: no time check.
OFFLINE_LIMITS = limits(max_future_ms=0, max_age_ms=0)


def parse_reading(raw: bytes | None, now_ms: int, limits: Limits = Limits()) -> Reading:
    """Decode and validate one raw record; raises `Rejected` with the first problem found."""
    if raw is not None and len(raw) > limits.max_payload_bytes:
        raise Rejected(Reason.TOO_LARGE, f"payload is {len(raw)} bytes, limit {limits.max_payload_bytes}")
    return validate_object(decode_json(raw, limits.max_payload_bytes), now_ms, limits)


def decode_json(raw: bytes | None, max_bytes: int) -> Any:
    """Strict JSON: UTF-8, no NaN/Infinity constants, at most `max_bytes`."""
    if raw is None:
        raise Rejected(Reason.UNDECODABLE, "record has no value (null)")
    if len(raw) > max_bytes:
        raise Rejected(Reason.TOO_LARGE, f"payload is {len(raw)} bytes, limit {max_bytes}")
    obj = fast_json(raw)
    if obj is not NOT_DECODED:
        return obj
    try:
        return json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
    except _NonFinite as exc:
        raise Rejected(Reason.NOT_FINITE, f"JSON constant {exc.args[0]} is not a finite number") from None
    except RecursionError:
        # Thousands of nested brackets fit in a small payload; the decoder gives up, we must not.
        raise Rejected(Reason.UNDECODABLE, "JSON nested too deeply") from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise Rejected(Reason.UNDECODABLE, f"not UTF-8 JSON: {exc}") from None


def validate_object(obj: Any, now_ms: int, limits: Limits = Limits()) -> Reading:
    """Validate an already-decoded JSON value against the reading contract."""
    if not isinstance(obj, dict):
        raise Rejected(Reason.NOT_OBJECT, f"expected a JSON object, got {type(obj).__name__}")
    extra = obj.keys() - _KNOWN_FIELDS
    if extra:
        unknown = sorted(extra)
        raise Rejected(Reason.UNKNOWN_FIELD, f"unknown field(s) {_short(', '.join(map(repr, unknown)))}: the contract's fields are {', '.join(ALL_FIELDS)}")
    for name in ("patient_id", "device_id", "seq", "ts_ms"):
        if obj.get(name) is None:
            raise Rejected(Reason.MISSING_FIELD, f"{name} is required")

    patient_id = _identifier(obj, "patient_id")
    device_id = _identifier(obj, "device_id")
    seq = _integer(obj, "seq", minimum=0)
    ts_ms = _integer(obj, "ts_ms", minimum=0)
    if ts_ms > now_ms + limits.max_future_ms:
        raise Rejected(Reason.TS_FUTURE, f"ts_ms={ts_ms} is {(ts_ms - now_ms) // 1000}s ahead of the ingest clock")
    if ts_ms < now_ms - limits.max_age_ms:
        raise Rejected(Reason.TS_PAST, f"ts_ms={ts_ms} is older than {limits.max_age_ms // 3_600_000}h")

    vitals: dict[str, float | None] = {}
    for name, (low, high) in _VITAL_RANGES:
        value = obj.get(name)
        kind = type(value)
        # The common cases inline (absent, or a number in range); _vital checks everything else.
        if value is None:
            vitals[name] = None
        elif kind is float and low <= value <= high:  # NaN and infinity fail the range test
            vitals[name] = round(value, 1)
        elif kind is int and low <= value <= high:
            vitals[name] = float(value)  # exact: no rounding needed
        else:
            vitals[name] = _vital(obj, name)
    on_oxygen = obj.get("on_oxygen")
    if on_oxygen is not None and not isinstance(on_oxygen, bool):
        raise Rejected(Reason.WRONG_TYPE, f"on_oxygen={_short(on_oxygen)}, expected true, false or null")
    acvpu = obj.get("acvpu")
    if acvpu is not None:
        if not isinstance(acvpu, str):
            raise Rejected(Reason.WRONG_TYPE, f"acvpu={_short(acvpu)}, expected one of {'/'.join(ACVPU_LEVELS)}")
        acvpu = acvpu.strip().upper()
        if acvpu not in ACVPU_LEVELS:
            raise Rejected(Reason.UNKNOWN_ACVPU, f"acvpu={_short(obj['acvpu'])}, expected one of {'/'.join(ACVPU_LEVELS)}")
    scale = obj.get("spo2_scale", 1)
    if scale is None:
        scale = 1
    if isinstance(scale, bool) or scale not in SPO2_SCALES:
        raise Rejected(Reason.WRONG_TYPE, f"spo2_scale={_short(scale)}, expected 1 or 2")
    return Reading(
        patient_id=patient_id,
        device_id=device_id,
        seq=seq,
        ts_ms=ts_ms,
        on_oxygen=on_oxygen,
        acvpu=acvpu,
        spo2_scale=int(scale),
        **vitals,
    )


class _NonFinite(ValueError):
    pass


def _reject_constant(name: str) -> float:
    raise _NonFinite(name)


def _identifier(obj: dict[str, Any], name: str) -> str:
    value = obj[name]
    if not isinstance(value, str):
        raise Rejected(Reason.WRONG_TYPE, f"{name}={_short(value)}, expected a string")
    value = value.strip()
    if not value or len(value) > MAX_ID_LENGTH or not value.isprintable():
        raise Rejected(Reason.WRONG_TYPE, f"{name} must be 1-{MAX_ID_LENGTH} printable characters")
    return value


def _integer(obj: dict[str, Any], name: str, minimum: int) -> int:
    value = obj[name]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise Rejected(Reason.WRONG_TYPE, f"{name}={_short(value)}, expected an integer")
    if isinstance(value, float):
        if not math.isfinite(value):
            raise Rejected(Reason.NOT_FINITE, f"{name}={value!r} is not finite")
        if not value.is_integer():
            raise Rejected(Reason.WRONG_TYPE, f"{name}={_short(value)}, expected an integer")
        value = int(value)
    if value < minimum:
        raise Rejected(Reason.OUT_OF_RANGE, f"{name} is below {minimum}")
    if value > MAX_INTEGER:  # checked before formatting: str() of a huge int raises
        raise Rejected(Reason.OUT_OF_RANGE, f"{name} is above {MAX_INTEGER}")
    return value


def _vital(obj: dict[str, Any], name: str) -> float | None:
    value = obj.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise Rejected(Reason.WRONG_TYPE, f"{name}={_short(value)}, expected a number or null")
    try:
        number = float(value)
    except OverflowError:  # an integer literal beyond any double
        raise Rejected(Reason.NOT_FINITE, f"{name} is an integer too large for a number") from None
    if not math.isfinite(number):
        raise Rejected(Reason.NOT_FINITE, f"{name}={value!r} is not finite")
    low, high = RANGES[name]
    if not low <= number <= high:
        raise Rejected(Reason.OUT_OF_RANGE, f"{name}={number:g} outside the accepted range {low:g}-{high:g}")
    return round(number, 1)


def _short(value: Any) -> str:
    """A value for an error line: never a whole hostile payload."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
