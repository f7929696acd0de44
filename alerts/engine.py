"""The alert state machine: pure functions from (patient state, input) to (new state, events).

No Kafka and no wall clock: time is event time, the `ts_ms` of the risk records, so a replay
of the same records from the same state gives the same events, byte for byte.

Per clinical rule and patient (docs/alerts.md):
- A reading's rank is how many of the rule's levels it meets (signal >= raise_at).
- Debounce: level i holds when `readings` of the last `of_last` readings have rank >= i; it
  has held since the first of those readings. The rule raises (or escalates to) the highest
  level i that holds, for at least `min_duration_ms`, with the current reading at rank >= i.
- Hysteresis: an open alert steps down a level when the signal falls below that level's
  clear_below and resolves when it falls below the lowest level's. Stepping down emits nothing
  (a de-escalation is not worth a page) but re-arms escalation: rising again to a higher level
  is a new `escalated` event.
- Cool-down: after a resolve the rule raises nothing for `cooldown_ms` unless a severity higher
  than the resolved alert's is reached.
- Snooze: a snoozed patient raises and escalates nothing; resolves still go out, so no alert
  is left open. Raising resumes at the first reading after the snooze whose debounce holds.
- Signal lost: a reading after a gap of at least `data_gap.after_ms` starts every rule's
  debounce afresh (readings before a gap are not evidence that a condition held across it), and
  closes the technical `data_gap` alert. Open clinical alerts stay open through a gap: no data
  is not evidence of recovery.
- Alert ids are a hash of patient, rule and the event time at which the alert was raised, so
  replaying the same input raises the same ids; later events of an alert carry its id.
- A raised or escalated event carries the reading's explanation (`alert_explanation`): its
  NEWS2 parameter scores and, when the scorer explained it, the model's top contributions and
  the trends, so the page and the pager say why without a second lookup.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace

from alerts.messages import (
    ACKNOWLEDGED,
    ESCALATED,
    RAISED,
    RESOLVED,
    Acknowledge,
    AlertEvent,
    Command,
    RiskReading,
    alert_explanation,
)
from alerts.rules import DATA_GAP_RULE, SEVERITIES, TECHNICAL, Rule, Rules
from alerts.state import ActiveAlert, PatientState, RuleState

MS_PER_MINUTE = 60_000


@dataclass(frozen=True, slots=True)
class Transition:
    """The outcome of one input: the new state (None = forget the patient) and its events."""

    state: PatientState | None
    events: tuple[AlertEvent, ...] = ()
    ignored: str | None = None  # why a command had no effect (a metric label), else None


def alert_id(patient_id: str, rule: str, raised_ts_ms: int) -> str:
    """Deterministic id: the same alert raised again by a replay has the same id."""
    return hashlib.sha256(f"{patient_id}|{rule}|{raised_ts_ms}".encode()).hexdigest()[:24]


def severity_rank(severity: str) -> int:
    return SEVERITIES.index(severity) + 1 if severity in SEVERITIES else 0


def _event(
    alert: ActiveAlert, patient_id: str, ts_ms: int, status: str, rule: str, reason: str, why: RiskReading | None = None
) -> AlertEvent:
    return AlertEvent(
        alert_id=alert.alert_id,
        patient_id=patient_id,
        ts_ms=ts_ms,
        status=status,
        severity=alert.severity,
        rule=rule,
        reason=reason,
        raised_ts_ms=alert.raised_ts_ms,
        acknowledged=alert.acknowledged,
        explain=alert_explanation(why) if why is not None else None,
    )


def _describe(rule: Rule, value: float) -> str:
    if rule.signal == "risk":
        return f"model risk {value:.2f}"
    if rule.signal == "news2":
        return f"NEWS2 {value:.0f}"
    return "a single NEWS2 parameter scoring 3" if value >= 1 else "no NEWS2 parameter scoring 3"


def _minutes(ms: int) -> str:
    return f"{ms / MS_PER_MINUTE:.0f} min"


# -- clinical rules ----------------------------------------------------------------------------
def _debounce(rs: RuleState, rule: Rule, ts_ms: int, rank: int) -> tuple[tuple[tuple[int, int], ...], tuple[int | None, ...], int]:
    """The new window and `since`, and the highest level whose debounce holds now (0 = none)."""
    n_levels = len(rule.levels)
    window = (rs.window + ((ts_ms, rank),))[-rule.debounce.of_last :]
    if rank == 0 and sum(1 for _, r in window if r) < rule.debounce.readings:
        # The common case, and exactly what the loops below give for it: fewer readings than the
        # debounce needs meet even the lowest level, so no level holds, and a reading at no level
        # raises nothing.
        return window, (None,) * n_levels, 0
    previous = rs.since if len(rs.since) == n_levels else (None,) * n_levels
    since: list[int | None] = []
    for level in range(1, n_levels + 1):
        meeting = [t for t, r in window if r >= level]
        if len(meeting) >= rule.debounce.readings:
            since.append(previous[level - 1] if previous[level - 1] is not None else meeting[0])
        else:
            since.append(None)
    target = 0
    for level in range(n_levels, 0, -1):
        start = since[level - 1]
        if rank >= level and start is not None and ts_ms - start >= rule.debounce.min_duration_ms:
            target = level
            break
    return window, tuple(since), target


def _evidence(rule: Rule, window: tuple[tuple[int, int], ...], level: int, since: int | None, ts_ms: int) -> str:
    n = sum(1 for _, r in window if r >= level)
    held = f", held {_minutes(ts_ms - since)}" if since is not None and rule.debounce.min_duration_ms else ""
    return f"in {n} of the last {len(window)} readings{held}"


def step_rule(
    rs: RuleState, rule: Rule, patient_id: str, reading: RiskReading, snoozed: bool
) -> tuple[RuleState, list[AlertEvent]]:
    """Apply one reading to one rule of one patient."""
    ts = reading.ts_ms
    value = reading.signal(rule.signal)
    rank = sum(1 for level in rule.levels if value >= level.raise_at)
    window, since, target = _debounce(rs, rule, ts, rank)
    alert = rs.alert
    cooldown_until, cooldown_rank = rs.cooldown_until_ms, rs.cooldown_rank
    if cooldown_until is not None and ts >= cooldown_until:
        cooldown_until, cooldown_rank = None, 0
    events: list[AlertEvent] = []
    if alert is not None:
        level = alert.level
        while level > 0 and value < rule.levels[level - 1].clear_below:
            level -= 1
        if level == 0:
            lowest = rule.levels[0]
            reason = f"{_describe(rule, value)} below {lowest.clear_below:g}: cleared"
            events.append(_event(alert, patient_id, ts, RESOLVED, rule.name, reason))
            if rule.cooldown_ms > 0:
                cooldown_until, cooldown_rank = ts + rule.cooldown_ms, severity_rank(alert.severity)
            alert = None
        elif target > level and not snoozed:
            to = rule.levels[target - 1]
            # A person acknowledged a lesser alert: the escalation needs its own acknowledgement.
            alert = replace(alert, severity=to.severity, level=target, acknowledged=False)
            reason = f"{_describe(rule, value)} rose to {to.raise_at:g} or more ({to.severity}) {_evidence(rule, window, target, since[target - 1], ts)}"
            events.append(_event(alert, patient_id, ts, ESCALATED, rule.name, reason, reading))
        elif level != alert.level:
            alert = replace(alert, level=level)
    elif target > 0 and not snoozed:
        to = rule.levels[target - 1]
        if cooldown_until is None or to.rank > cooldown_rank:
            alert = ActiveAlert(alert_id(patient_id, rule.name, ts), to.severity, target, ts)
            reason = f"{_describe(rule, value)} at {to.raise_at:g} or more ({to.severity}) {_evidence(rule, window, target, since[target - 1], ts)}"
            events.append(_event(alert, patient_id, ts, RAISED, rule.name, reason, reading))
    return RuleState(window, since, alert, cooldown_until, cooldown_rank), events


def on_reading(
    state: PatientState | None, reading: RiskReading, rules: Rules, stream_time_ms: int | None = None
) -> Transition:
    """Apply one risk record (not late: ts_ms >= the patient's last) to the patient's state.

    An open data-gap alert resolves only on a *current* reading, one within `after_ms` of the
    partition's stream time: a device uploading its backlog after reconnecting is still behind,
    and resolving on each old reading would make the technical alert flap.
    """
    patient_id, ts = reading.patient_id, reading.ts_ms
    events: list[AlertEvent] = []
    if state is None:
        state = PatientState(last_ts_ms=ts)
        resumed = False
    else:
        resumed = ts - state.last_ts_ms >= rules.data_gap.after_ms
    gap = state.gap
    current = stream_time_ms is None or stream_time_ms - ts < rules.data_gap.after_ms
    if gap is not None and current:
        reason = f"readings resumed after {_minutes(ts - gap.raised_ts_ms)} without current data"
        events.append(_event(gap, patient_id, ts, RESOLVED, DATA_GAP_RULE, reason))
        gap = None
    snoozed_until = state.snoozed_until_ms
    if snoozed_until is not None and ts >= snoozed_until:
        snoozed_until = None
    rule_states: dict[str, RuleState] = {}
    for rule in rules.rules:
        rs = state.rule(rule.name)
        if resumed:
            rs = replace(rs, window=(), since=())
        rs, rule_events = step_rule(rs, rule, patient_id, reading, snoozed=snoozed_until is not None)
        rule_states[rule.name] = rs
        events.extend(rule_events)
    return Transition(PatientState(ts, rule_states, gap, snoozed_until), tuple(events))


# -- technical alert and forgetting ------------------------------------------------------------
def gap_due_ms(state: PatientState, rules: Rules) -> int | None:
    """Event time at which this patient's data-gap alert is due (None: already open)."""
    if state.gap is not None:
        return None
    due = state.last_ts_ms + rules.data_gap.after_ms
    if state.snoozed_until_ms is not None:
        due = max(due, state.snoozed_until_ms)
    return due


def forget_due_ms(state: PatientState, rules: Rules) -> int:
    return state.last_ts_ms + rules.data_gap.forget_after_ms


def on_gap(state: PatientState, patient_id: str, due_ms: int, rules: Rules) -> Transition:
    """Stream time reached `due_ms` with no reading from this patient: raise the technical alert."""
    gap = ActiveAlert(alert_id(patient_id, DATA_GAP_RULE, due_ms), TECHNICAL, 1, due_ms)
    reason = f"no readings for {_minutes(due_ms - state.last_ts_ms)} while the partition's stream time moved on"
    event = _event(gap, patient_id, due_ms, RAISED, DATA_GAP_RULE, reason)
    return Transition(replace(state, gap=gap), (event,))


def on_forget(state: PatientState, patient_id: str, due_ms: int) -> Transition:
    """Silent for `forget_after_ms`: taken as discharged; open alerts resolve, state goes."""
    reason = f"no readings for {_minutes(due_ms - state.last_ts_ms)}: patient taken as discharged"
    events = tuple(_event(alert, patient_id, due_ms, RESOLVED, rule, reason) for rule, alert in state.active_alerts())
    return Transition(None, events)


# -- commands from alerts.control --------------------------------------------------------------
def on_command(state: PatientState | None, command: Command) -> Transition:
    """Acknowledge an open alert, or snooze the patient until `until_ts_ms`."""
    if state is None:
        return Transition(None, (), ignored="unknown_patient")
    if isinstance(command, Acknowledge):
        for rule, alert in state.active_alerts():
            if alert.alert_id != command.alert_id:
                continue
            if alert.acknowledged:
                return Transition(state, (), ignored="already_acknowledged")
            acked = replace(alert, acknowledged=True)
            reason = f"acknowledged by {command.by}" if command.by else "acknowledged"
            event = replace(_event(acked, command.patient_id, command.ts_ms, ACKNOWLEDGED, rule, reason), by=command.by)
            if rule == DATA_GAP_RULE:
                return Transition(replace(state, gap=acked), (event,))
            rules = dict(state.rules)
            rules[rule] = replace(rules[rule], alert=acked)
            return Transition(replace(state, rules=rules), (event,))
        return Transition(state, (), ignored="unknown_alert")
    until = command.until_ts_ms if command.until_ts_ms > command.ts_ms else None
    return Transition(replace(state, snoozed_until_ms=until))
