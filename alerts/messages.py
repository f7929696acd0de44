"""The messages the alert service reads and writes: `risk` in, `alerts.control` in, `alerts` out.

`risk` (produced by the scorer; decoded by its contract, `inference/records.py`): the rules
look at patient_id, ts_ms, risk, news2, news2_single3 and model; the other fields are not
needed here.

`alerts.control` (keyed by patient_id, so a command lands in its patient's partition):
    {"command": "acknowledge", "patient_id": "P00001", "alert_id": "...", "ts_ms": 1767225600000, "by": "nurse-7"}
    {"command": "snooze", "patient_id": "P00001", "until_ts_ms": 1767229200000, "ts_ms": 1767225600000, "by": "..."}
`by` is optional. A snooze with `until_ts_ms` at or before its `ts_ms` ends a snooze early.

`alerts` events: alert_id, patient_id, ts_ms, status, severity, rule, reason, plus
raised_ts_ms (when the alert began) and acknowledged (whether a person has acknowledged it);
an `acknowledged` event also carries `by`, the command's user (the ward view's signed-in user).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any, Final

from inference.records import Risk, RiskDecodeError, decode_risk

RAISED: Final = "raised"
ESCALATED: Final = "escalated"
RESOLVED: Final = "resolved"
ACKNOWLEDGED: Final = "acknowledged"
STATUSES: Final = (RAISED, ESCALATED, RESOLVED, ACKNOWLEDGED)

MAX_ID_LENGTH: Final = 128


class MessageError(ValueError):
    """A record that is not a usable message; the text names the field and the value."""


@dataclass(frozen=True, slots=True)
class RiskReading(Risk):
    """A `risk` record as the alert rules see it: the contract's fields, and a rule's signal.

    Built from the first six fields (patient_id, ts_ms, risk, news2, news2_single3, model);
    the rules never look at `seq` or `news2_scores`, so `parse_risk` leaves them out.
    """

    def signal(self, name: str) -> float:
        """The value a rule's `signal` names (see `alerts.rules.SIGNALS`)."""
        if name == "risk":
            return self.risk
        if name == "news2":
            return float(self.news2)
        if name == "news2_single3":
            return 1.0 if self.news2_single3 else 0.0
        raise KeyError(name)


@dataclass(frozen=True, slots=True)
class Acknowledge:
    patient_id: str
    alert_id: str
    ts_ms: int
    by: str | None = None


@dataclass(frozen=True, slots=True)
class Snooze:
    patient_id: str
    until_ts_ms: int
    ts_ms: int
    by: str | None = None


Command = Acknowledge | Snooze


@dataclass(frozen=True, slots=True)
class AlertEvent:
    """One lifecycle event of one alert, as written to the `alerts` topic."""

    alert_id: str
    patient_id: str
    ts_ms: int
    status: str
    severity: str
    rule: str
    reason: str
    raised_ts_ms: int
    acknowledged: bool = False
    by: str | None = None  # who acknowledged: set on `acknowledged` events only

    def to_dict(self) -> dict[str, Any]:
        event = asdict(self)
        if event["by"] is None:
            del event["by"]  # other events keep their exact shape
        return event


def _object(data: bytes | str | None) -> dict[str, Any]:
    if data is None:
        raise MessageError("value=None: expected a JSON object")
    try:
        obj = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MessageError(f"value is not JSON ({exc})") from None
    if not isinstance(obj, dict):
        raise MessageError(f"value={type(obj).__name__}: expected a JSON object")
    return obj


def _text(obj: dict[str, Any], name: str, optional: bool = False) -> str | None:
    value = obj.get(name)
    if value is None and optional:
        return None
    if not isinstance(value, str) or not 0 < len(value) <= MAX_ID_LENGTH:
        raise MessageError(f"{name}={value!r}: expected a non-empty string of at most {MAX_ID_LENGTH} characters")
    return value


def _int(obj: dict[str, Any], name: str) -> int:
    value = obj.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise MessageError(f"{name}={value!r}: expected epoch milliseconds (an integer >= 0)")
    return value


def parse_risk(data: bytes | str | None) -> RiskReading:
    """Decode and check a `risk` record value; raises MessageError naming the bad field."""
    try:
        record = decode_risk(data)
    except RiskDecodeError as exc:
        raise MessageError(str(exc)) from None
    return RiskReading(record.patient_id, record.ts_ms, record.risk, record.news2, record.news2_single3, record.model)


def parse_command(data: bytes | str | None) -> Command:
    """Decode and check an `alerts.control` record value; raises MessageError naming the bad field."""
    obj = _object(data)
    command = obj.get("command")
    patient_id = _text(obj, "patient_id")
    assert patient_id is not None
    by = _text(obj, "by", optional=True)
    if command == "acknowledge":
        alert_id = _text(obj, "alert_id")
        assert alert_id is not None
        return Acknowledge(patient_id=patient_id, alert_id=alert_id, ts_ms=_int(obj, "ts_ms"), by=by)
    if command == "snooze":
        return Snooze(patient_id=patient_id, until_ts_ms=_int(obj, "until_ts_ms"), ts_ms=_int(obj, "ts_ms"), by=by)
    raise MessageError(f"command={command!r}: expected 'acknowledge' or 'snooze'")
