"""The ward as the ward view sees it: per patient, latest vitals, a risk history, NEWS2, the
latest explanation and open alerts, built from the `vitals`, `risk` and `alerts` records.
Pure: no Kafka, no HTTP. Bad records are reported (a reason string), never raised.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Final

from alerts.messages import AlertEvent, MessageError, alert_from_object
from alerts.rules import load_rules
from inference.records import DOMINANT, Risk, RiskDecodeError, format_explanation, risk_from_object
from ingest.contract import MAX_ID_LENGTH, VITALS
from runtime.topics import ALERTS, RISK
from runtime.topics import VITALS as VITALS_TOPIC

SEVERITY_ORDER: Final = {"emergency": 3, "urgent": 2, "low_medium": 1, "technical": 0}
EXTRA_FIELDS: Final = ("on_oxygen", "acvpu", "spo2_scale")
MAX_EXPLAIN_BYTES: Final = 4096  # an alert event's explanation is a few hundred bytes; more is not ours


def model_risk_levels(rules_path: str | None = None) -> list[dict[str, Any]]:
    """The risk thresholds of the alert rules (the shipped ones by default), lowest first."""
    rules = load_rules(rules_path)
    return sorted(({"severity": level.severity, "raise_at": level.raise_at, "rule": rule.name}
                   for rule in rules.rules if rule.signal == "risk" for level in rule.levels), key=lambda level: level["raise_at"])


def text_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and 0 < len(value) <= MAX_ID_LENGTH else None


def number_or_none(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def ts_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


@dataclass
class Patient:
    patient_id: str
    ts_ms: int = 0
    reading_ts_ms: int = 0  # the latest reading's event time
    vitals: dict[str, Any] = field(default_factory=dict)  # name -> latest non-missing value
    vitals_ts_ms: dict[str, int] = field(default_factory=dict)
    risk: float | None = None
    news2: int | None = None
    news2_single3: bool = False
    news2_scores: dict[str, int | None] = field(default_factory=dict)
    model: str | None = None
    history: deque[tuple[int, float, int | None]] = field(default_factory=deque)
    explain: dict[str, Any] | None = None  # the latest explanation (risk record's), with its ts_ms
    alerts: dict[str, dict[str, Any]] = field(default_factory=dict)  # open alerts by alert_id
    ack_pending: set[str] = field(default_factory=set)

    def to_json(self) -> dict[str, Any]:
        alerts = sorted(self.alerts.values(), key=lambda a: (-SEVERITY_ORDER.get(a["severity"], 0), a["raised_ts_ms"]))
        return {
            "patient_id": self.patient_id, "ts_ms": self.ts_ms, "vitals": self.vitals, "vitals_ts_ms": self.vitals_ts_ms,
            "risk": self.risk, "news2": self.news2, "news2_single3": self.news2_single3, "news2_scores": self.news2_scores,
            "model": self.model, "history": [[t, r] for t, r, _ in self.history], "explain": self.explain,
            "alerts": [{**a, "ack_pending": a["alert_id"] in self.ack_pending} for a in alerts],
        }


class Ward:
    """Every patient's latest vitals, risk history, NEWS2 and open alerts; thread-safe.

    `apply(topic, value)` takes one record value and never raises: a record it cannot use is
    counted as rejected and skipped. `version` increases with every change (the SSE stream
    sends a new snapshot when it moves).
    """

    def __init__(self, history: int = 90, max_patients: int = 2000, risk_levels: list[dict[str, Any]] | None = None) -> None:
        self.history = history
        self.risk_levels = model_risk_levels() if risk_levels is None else risk_levels
        self.max_patients = max_patients
        self.patients: dict[str, Patient] = {}
        self.recent: deque[dict[str, Any]] = deque(maxlen=30)
        self.version = 0
        self.connected = False
        self.changed = threading.Condition()

    def apply(self, topic: str, value: bytes | None) -> str | None:
        """Fold one record in; returns None, or the reason it was not used."""
        try:
            obj = json.loads(value) if value is not None else None
        except (ValueError, UnicodeDecodeError):
            return "undecodable"
        if not isinstance(obj, dict):
            return "not_object"
        patient_id = text_or_none(obj.get("patient_id"))
        ts_ms = ts_or_none(obj.get("ts_ms"))
        if patient_id is None or ts_ms is None:
            return "missing_field"
        with self.changed:
            if topic == VITALS_TOPIC:
                self._vitals(self._patient(patient_id), ts_ms, obj)
            elif topic == RISK:
                try:
                    record = risk_from_object(obj)
                except RiskDecodeError:
                    return "bad_risk"  # not the scorer's contract (inference/records.py)
                self._risk(self._patient(patient_id), record)
            elif topic == ALERTS:
                try:
                    alert = alert_from_object(obj)
                except MessageError:
                    return "bad_alert"  # not the alert service's contract (alerts/messages.py)
                self._alert(alert)
            else:
                return "unknown_topic"
            self.version += 1
            self.changed.notify_all()
        return None

    def _patient(self, patient_id: str) -> Patient:
        patient = self.patients.get(patient_id)
        if patient is None:
            if len(self.patients) >= self.max_patients:
                quiet = min(self.patients.values(), key=lambda p: p.ts_ms)
                del self.patients[quiet.patient_id]
            patient = self.patients[patient_id] = Patient(patient_id, history=deque(maxlen=self.history))
        return patient

    @staticmethod
    def _vitals(patient: Patient, ts_ms: int, obj: dict[str, Any]) -> None:
        if ts_ms < patient.reading_ts_ms:
            return  # an older reading arriving late never hides a newer value
        patient.reading_ts_ms = ts_ms
        patient.ts_ms = max(patient.ts_ms, ts_ms)
        for name in VITALS:
            value = number_or_none(obj.get(name))
            if value is not None:
                patient.vitals[name] = value
                patient.vitals_ts_ms[name] = ts_ms
        if isinstance(obj.get("on_oxygen"), bool):
            patient.vitals["on_oxygen"] = obj["on_oxygen"]
        if text_or_none(obj.get("acvpu")) and len(obj["acvpu"]) == 1:
            patient.vitals["acvpu"] = obj["acvpu"]
        if obj.get("spo2_scale") in (1, 2):
            patient.vitals["spo2_scale"] = obj["spo2_scale"]

    @staticmethod
    def _risk(patient: Patient, record: Risk) -> None:
        ts_ms, news2 = record.ts_ms, record.news2
        if patient.history and ts_ms < patient.history[-1][0]:
            return  # late: the sparkline is in event-time order
        patient.ts_ms = max(patient.ts_ms, ts_ms)
        patient.risk, patient.news2 = record.risk, news2
        patient.news2_single3 = record.news2_single3
        patient.news2_scores = dict(record.news2_scores)
        patient.model = record.model
        patient.history.append((ts_ms, record.risk, news2))
        if record.explain is not None:
            patient.explain = {**json.loads(format_explanation(record.explain)), "ts_ms": ts_ms, "risk": record.risk}

    def _alert(self, alert: AlertEvent) -> None:
        event = {
            "alert_id": alert.alert_id, "status": alert.status, "severity": alert.severity, "ts_ms": alert.ts_ms,
            "rule": alert.rule, "reason": alert.reason[:300], "raised_ts_ms": alert.raised_ts_ms or alert.ts_ms,
            "acknowledged": alert.acknowledged,
        }
        why = alert.explain
        if why is not None and len(json.dumps(why)) <= MAX_EXPLAIN_BYTES:
            event["explain"] = why  # shown as text only (the page escapes every string)
        alert_id, status = alert.alert_id, alert.status
        patient = self._patient(alert.patient_id)
        if status in ("raised", "escalated"):
            if "explain" not in event and alert_id in patient.alerts and "explain" in patient.alerts[alert_id]:
                event["explain"] = patient.alerts[alert_id]["explain"]
            patient.alerts[alert_id] = event
        elif status == "acknowledged":
            if alert_id in patient.alerts:
                patient.alerts[alert_id] = {**patient.alerts[alert_id], "acknowledged": True}
            patient.ack_pending.discard(alert_id)
        else:  # resolved (decode_alert admits no other status)
            patient.alerts.pop(alert_id, None)
            patient.ack_pending.discard(alert_id)
        self.recent.appendleft({**{k: v for k, v in event.items() if k != "explain"}, "patient_id": alert.patient_id})

    def open_alert(self, patient_id: str, alert_id: str) -> dict[str, Any] | None:
        with self.changed:
            patient = self.patients.get(patient_id)
            return dict(patient.alerts[alert_id]) if patient and alert_id in patient.alerts else None

    def mark_ack_pending(self, patient_id: str, alert_id: str) -> None:
        with self.changed:
            patient = self.patients.get(patient_id)
            if patient is not None and alert_id in patient.alerts:
                patient.ack_pending.add(alert_id)
                self.version += 1
                self.changed.notify_all()

    def event_time(self, patient_id: str) -> int:
        with self.changed:
            patient = self.patients.get(patient_id)
            return patient.ts_ms if patient else 0

    def set_connected(self, connected: bool) -> None:
        with self.changed:
            if connected != self.connected:
                self.connected = connected
                self.version += 1
                self.changed.notify_all()

    def snapshot(self) -> dict[str, Any]:
        """The ward as JSON: the sickest first (open alert severity, then NEWS2, then risk)."""
        with self.changed:
            patients = [p.to_json() for p in self.patients.values()]
            recent = list(self.recent)
            version, connected = self.version, self.connected
        patients.sort(key=lambda p: (
            -max((SEVERITY_ORDER.get(a["severity"], 0) + 1 for a in p["alerts"] if not a["acknowledged"]), default=0),
            -(p["news2"] or 0), -(p["risk"] or 0.0), p["patient_id"],
        ))
        open_alerts: dict[str, int] = {}
        for p in patients:
            for a in p["alerts"]:
                open_alerts[a["severity"]] = open_alerts.get(a["severity"], 0) + 1
        return {"version": version, "connected": connected, "served_ms": int(time.time() * 1000),
                "patients": patients, "open_alerts": open_alerts, "recent": recent,
                "risk_levels": self.risk_levels, "dominant": DOMINANT}
