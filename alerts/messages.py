"""The messages the alert service reads and writes: `risk` in, `alerts.control` in, `alerts` out.

`risk` (produced by the scorer; decoded by its contract, `inference/records.py`): the rules
look at patient_id, ts_ms, risk, news2, news2_single3 and model; news2_scores and explain go
into the `explain` field of the events a reading raises or escalates.

`alerts.control` (keyed by patient_id, so a command lands in its patient's partition):
    {"command": "acknowledge", "patient_id": "P00001", "alert_id": "...", "ts_ms": 1767225600000, "by": "nurse-7"}
    {"command": "snooze", "patient_id": "P00001", "until_ts_ms": 1767229200000, "ts_ms": 1767225600000, "by": "..."}
`by` is optional. A snooze with `until_ts_ms` at or before its `ts_ms` ends a snooze early.

`alerts` events: alert_id, patient_id, ts_ms, status, severity, rule, reason, plus
raised_ts_ms (when the alert began) and acknowledged (whether a person has acknowledged it);
an `acknowledged` event also carries `by`, the command's user (the ward view's signed-in user);
a `raised` or `escalated` event also carries `explain`, why (`alert_explanation`):
    {"risk": 0.64, "news2": 6, "news2_scores": {"rr": 3, ...},    the reading's scores (NEWS2
                                                                  parameters scoring 1 or more)
     "top": [["rr", 0.36], ...], "values": {...}, "trend": {...}}  the risk record's explanation,
                                                                  when the scorer explained it
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any, Final

from inference.records import DOMINANT, Risk, RiskDecodeError, decode_risk, format_explanation
from ingest import MAX_ID_LENGTH
from runtime.records import json_object

RAISED: Final = "raised"
ESCALATED: Final = "escalated"
RESOLVED: Final = "resolved"
ACKNOWLEDGED: Final = "acknowledged"
STATUSES: Final = (RAISED, ESCALATED, RESOLVED, ACKNOWLEDGED)



class MessageError(ValueError):
    """A record that is not a usable message; the text names the field and the value."""


@dataclass(frozen=True, slots=True)
class RiskReading(Risk):
    """A `risk` record as the alert rules see it: the contract's fields, and a rule's signal.

    The rules look at the first six fields (patient_id, ts_ms, risk, news2, news2_single3,
    model); `news2_scores` and `explain` are carried for the events' explanation, `seq` as read.
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
    explain: dict[str, Any] | None = field(default=None, hash=False)  # why: on `raised` and `escalated` events

    def to_dict(self) -> dict[str, Any]:
        event = asdict(self)
        for optional in ("by", "explain"):
            if event[optional] is None:
                del event[optional]  # other events keep their exact shape
        return event


def alert_explanation(reading: Risk) -> dict[str, Any]:
    """The `explain` field of an event this reading raised or escalated: its scores, and why."""
    why: dict[str, Any] = {
        "risk": reading.risk,
        "news2": reading.news2,
        "news2_scores": {name: score for name, score in reading.news2_scores.items() if score},
    }
    if reading.explain is not None:
        why.update(json.loads(format_explanation(reading.explain)))
    return why


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
        return decode_risk(data, RiskReading)
    except RiskDecodeError as exc:
        raise MessageError(str(exc)) from None


def parse_command(data: bytes | str | None) -> Command:
    """Decode and check an `alerts.control` record value; raises MessageError naming the bad field."""
    obj = json_object(data, MessageError)
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


def decode_alert(data: bytes | str | None) -> AlertEvent:
    """Decode and check an `alerts` record value (what `AlertEvent.to_dict` wrote); raises
    MessageError naming the bad field."""
    return alert_from_object(json_object(data, MessageError))


def alert_from_object(obj: dict[str, Any]) -> AlertEvent:
    """`decode_alert` for a value already parsed from JSON."""
    status = obj.get("status")
    if status not in STATUSES:
        raise MessageError(f"status={status!r}: expected one of {', '.join(STATUSES)}")
    texts = {name: _text(obj, name) for name in ("alert_id", "patient_id", "severity", "rule")}
    reason = obj.get("reason")
    if not isinstance(reason, str):
        raise MessageError(f"reason={reason!r}: expected a string")
    acknowledged = obj.get("acknowledged", False)
    if not isinstance(acknowledged, bool):
        raise MessageError(f"acknowledged={acknowledged!r}: expected true or false")
    explain = obj.get("explain")
    if explain is not None and not isinstance(explain, dict):
        raise MessageError(f"explain={explain!r}: expected an object")
    return AlertEvent(
        alert_id=texts["alert_id"], patient_id=texts["patient_id"], ts_ms=_int(obj, "ts_ms"), status=status,  # type: ignore[arg-type]
        severity=texts["severity"], rule=texts["rule"], reason=reason, raised_ts_ms=_int(obj, "raised_ts_ms"),  # type: ignore[arg-type]
        acknowledged=acknowledged, by=_text(obj, "by", optional=True), explain=explain,
    )


def encode_command(command: Command) -> bytes:
    """An `alerts.control` record value (what `parse_command` reads back); key it by `command.patient_id`."""
    obj: dict[str, Any] = {"command": "acknowledge" if isinstance(command, Acknowledge) else "snooze", **asdict(command)}
    if obj["by"] is None:
        del obj["by"]
    return json.dumps(obj, separators=(",", ":")).encode()


# -- the explanation in words (the demo's summary line; the ward view words it the same way) ------
_LABEL: Final = {"hr": ("HR", "/min"), "rr": ("RR", "/min"), "spo2": ("SpO2", "%"), "temp": ("Temp", " °C"),
                 "sbp": ("SBP", " mmHg"), "dbp": ("DBP", " mmHg"), "bp": ("BP", " mmHg"), "on_oxygen": ("O2", ""),
                 "acvpu": ("ACVPU", "")}
_NEWS2_LABEL: Final = {"rr": "RR", "spo2": "SpO2", "on_oxygen": "O2", "sbp": "SBP", "hr": "HR", "acvpu": "ACVPU", "temp": "Temp"}
# A change over 4 h worth naming: about one NEWS2 band of each vital.
NOTABLE_CHANGE: Final = {"hr": 10.0, "rr": 4.0, "spo2": 3.0, "temp": 0.6, "sbp": 15.0, "dbp": 10.0}


def _fmt(value: float) -> str:
    return f"{value:.1f}" if abs(value) < 50 and value != int(value) else f"{value:.0f}"


def _input_text(name: str, values: dict[str, Any]) -> str:
    label, unit = _LABEL[name]
    if name == "bp":
        sbp, dbp = values.get("sbp"), values.get("dbp")
        return f"BP {_fmt(sbp)}/{_fmt(dbp)}" if sbp is not None and dbp is not None else ("BP" if sbp is None else f"SBP {_fmt(sbp)}")
    value = values.get(name)
    return label if value is None else f"{label} {_fmt(value)}{unit}"


def explanation_line(explain: dict[str, Any] | None) -> str:
    """One line for a person: what drives the model, what NEWS2 scores, what changed in 4 h.

    E.g. "model: RR 28/min +36 pts · NEWS2 5: RR 3, O2 2 · 4 h: RR +14, risk +52 pts".
    """
    if not explain:
        return ""
    values = explain.get("values") or {}
    parts: list[str] = []
    top = [(n, c) for n, c in explain.get("top") or [] if abs(c) >= DOMINANT]
    if "top" in explain:
        parts.append("model: " + (", ".join(f"{_input_text(n, values)} {c * 100:+.0f} pts" for n, c in top)
                                  if top else "no single input dominant"))
    scores = explain.get("news2_scores") or {}
    if "news2" in explain:
        named = ", ".join(f"{_NEWS2_LABEL.get(n, n)} {s}" for n, s in sorted(scores.items(), key=lambda kv: -kv[1]))
        parts.append(f"NEWS2 {explain['news2']}" + (f": {named}" if named else ""))
    trend = explain.get("trend") or {}
    changes = []
    for name, limit in NOTABLE_CHANGE.items():
        pair = trend.get(name)
        if pair and pair[1] is not None and abs(pair[1]) >= limit:
            changes.append(f"{_LABEL[name][0]} {pair[1]:+.{1 if name == 'temp' else 0}f}")
    risk_change = (trend.get("risk") or [None, None])[1]
    if risk_change is not None and abs(risk_change) >= DOMINANT:
        changes.append(f"risk {risk_change * 100:+.0f} pts")
    if changes:
        parts.append("4 h: " + ", ".join(changes))
    return " · ".join(parts)
