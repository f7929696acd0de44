"""Alert quality on a labelled cohort: does a rule set catch deteriorations early, and at what burden?

Metrics (docs/alerts.md, "Judging a rule set"): alerts per patient-day, event sensitivity, PPV, median lead time.
- The stay of a patient with an event ends at the event (transfer to higher care): readings
  after it are dropped, so nothing after the event counts as an alert or as monitored time.
- An alert is a `raised` event of a clinical rule (escalations belong to the same alert;
  technical data-gap alerts are counted apart).
- An event is caught when its patient had an alert raised within `horizon_ms` before it; the
  lead time is from the earliest such alert. An alert is a true positive when an event of its
  patient follows within `horizon_ms`.
Pure: risk records and events in, numbers out (the CLI in wardwatch/commands does the I/O).
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

from alerts.messages import RAISED, AlertEvent, RiskReading
from alerts.partition import PartitionAlerts
from alerts.rules import DATA_GAP_RULE, Rules

MS_PER_HOUR = 3_600_000
MS_PER_DAY = 24 * MS_PER_HOUR
HORIZON_MS = 12 * MS_PER_HOUR  # an alert this long before an event catches it


@dataclass(frozen=True, slots=True)
class OutcomeEvent:
    """A ground-truth deterioration event."""

    patient_id: str
    ts_ms: int


@dataclass(frozen=True, slots=True)
class Quality:
    rules: str
    patients: int
    patient_days: float
    events: int
    alerts: int
    technical_alerts: int
    alerts_per_patient_day: float
    caught: int
    sensitivity: float | None
    true_alerts: int
    ppv: float | None
    median_lead_time_h: float | None

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def censor(readings: Sequence[RiskReading], events: Sequence[OutcomeEvent]) -> list[RiskReading]:
    """Readings in event-time order, each patient's stopping at their first event."""
    end: dict[str, int] = {}
    for e in events:
        end[e.patient_id] = min(e.ts_ms, end.get(e.patient_id, e.ts_ms))
    kept = [r for r in readings if r.ts_ms <= end.get(r.patient_id, r.ts_ms)]
    return sorted(kept, key=lambda r: (r.ts_ms, r.patient_id))


def run_rules(readings: Sequence[RiskReading], rules: Rules) -> list[AlertEvent]:
    """Every alert event the rules emit over time-ordered readings (one partition, no Kafka)."""
    part = PartitionAlerts(rules)
    events: list[AlertEvent] = []
    for reading in readings:
        if not part.is_late(reading):
            events.extend(part.on_risk(reading).events)
    return events


def evaluate(
    readings: Sequence[RiskReading], events: Sequence[OutcomeEvent], rules: Rules, *, name: str, horizon_ms: int = HORIZON_MS
) -> Quality:
    """Quality of one rule set on one cohort's risk records and ground-truth events."""
    kept = censor(readings, events)
    span: dict[str, tuple[int, int]] = {}
    for r in kept:
        first, last = span.get(r.patient_id, (r.ts_ms, r.ts_ms))
        span[r.patient_id] = (min(first, r.ts_ms), max(last, r.ts_ms))
    patient_days = sum(last - first for first, last in span.values()) / MS_PER_DAY
    emitted = run_rules(kept, rules)
    raised = [e for e in emitted if e.status == RAISED and e.rule != DATA_GAP_RULE]
    technical = sum(1 for e in emitted if e.status == RAISED and e.rule == DATA_GAP_RULE)
    outcomes = [e for e in events if e.patient_id in span]

    def in_window(alert: AlertEvent, event: OutcomeEvent) -> bool:
        return alert.patient_id == event.patient_id and event.ts_ms - horizon_ms <= alert.ts_ms <= event.ts_ms

    leads: list[int] = []
    for event in outcomes:
        before = [a.ts_ms for a in raised if in_window(a, event)]
        if before:
            leads.append(event.ts_ms - min(before))
    true_alerts = sum(1 for a in raised if any(in_window(a, e) for e in outcomes))
    return Quality(
        rules=name,
        patients=len(span),
        patient_days=round(patient_days, 3),
        events=len(outcomes),
        alerts=len(raised),
        technical_alerts=technical,
        alerts_per_patient_day=round(len(raised) / patient_days, 3) if patient_days > 0 else 0.0,
        caught=len(leads),
        sensitivity=round(len(leads) / len(outcomes), 3) if outcomes else None,
        true_alerts=true_alerts,
        ppv=round(true_alerts / len(raised), 3) if raised else None,
        median_lead_time_h=round(statistics.median(leads) / MS_PER_HOUR, 2) if leads else None,
    )


def compare(
    readings: Sequence[RiskReading],
    events: Sequence[OutcomeEvent],
    rule_sets: Mapping[str, Rules],
    *,
    horizon_ms: int = HORIZON_MS,
) -> list[Quality]:
    """Each named rule set (e.g. default, news2_only, model_only) on the same cohort."""
    return [evaluate(readings, events, rules, name=name, horizon_ms=horizon_ms) for name, rules in rule_sets.items()]


def _fmt(value: float | None, pct: bool = False) -> str:
    if value is None:
        return "–"
    return f"{value * 100:.0f}%" if pct else f"{value:g}"


def to_markdown(results: Sequence[Quality], context: dict[str, object]) -> str:
    """A short report: what was run, then one row per rule set."""
    lines = ["# Alert quality", ""]
    lines += [f"- {key}: {value}" for key, value in context.items()]
    lines += [
        "",
        "| rules | alerts / patient-day | event sensitivity | PPV | median lead time (h) | alerts | events caught | technical alerts |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for q in results:
        lines.append(
            f"| {q.rules} | {q.alerts_per_patient_day:.2f} | {_fmt(q.sensitivity, True)} | {_fmt(q.ppv, True)} | "
            f"{_fmt(q.median_lead_time_h)} | {q.alerts} | {q.caught}/{q.events} | {q.technical_alerts} |"
        )
    lines += [
        "",
        "An alert is a `raised` clinical alert; an event is caught when an alert was raised within the "
        "horizon before it; PPV is the share of alerts followed by an event within the horizon. "
        "Each stay ends at its event.",
        "",
    ]
    return "\n".join(lines)
