"""One partition's alert state: its patients, its stream time and the gap deadlines.

Stream time is the largest `ts_ms` of the risk records seen in the partition. It is what
detects a data gap: a patient whose last reading is `after_ms` older than stream time has gone
quiet while the others kept arriving. Deadlines sit in a heap of lower bounds (due, kind,
patient_id); a popped entry fires only when its due time is the patient's actual due time,
otherwise it goes back in at the actual one. Firings therefore happen in (due, kind, patient)
order whatever stale entries the heap holds, so a partition restored from its changelog
(where stream time is the largest restored `last_ts_ms`) continues exactly as the original.
Still pure: no Kafka, no clock.
"""

from __future__ import annotations

import heapq
from collections import Counter
from dataclasses import dataclass, field

from alerts import engine
from alerts.messages import ESCALATED, RAISED, RESOLVED, AlertEvent, Command, RiskReading, Snooze
from alerts.rules import Rules
from alerts.state import PatientState

GAP, FORGET = 0, 1


@dataclass(slots=True)
class Outcome:
    """Events of one input and the patients whose state changed (absent from `patients` = forgotten)."""

    events: list[AlertEvent] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    ignored: str | None = None


class PartitionAlerts:
    """The alert engine for one partition's patients."""

    def __init__(self, rules: Rules) -> None:
        self.rules = rules
        self.patients: dict[str, PatientState] = {}
        self.stream_time_ms: int | None = None
        self.active: dict[str, str] = {}  # open alert id -> severity, for the active-alerts gauge
        self.open_by_severity: Counter[str] = Counter()  # `active` counted, kept as it changes (read every batch)
        self._deadlines: list[tuple[int, int, str]] = []

    # -- restore -------------------------------------------------------------------------------
    def load(self, patient_id: str, state: PatientState) -> None:
        """Install a restored patient state (the latest one from the changelog)."""
        self.patients[patient_id] = state
        for _rule, alert in state.active_alerts():
            self._open(alert.alert_id, alert.severity)
        self._schedule(patient_id, state)
        heapq.heappush(self._deadlines, (engine.forget_due_ms(state, self.rules), FORGET, patient_id))
        if self.stream_time_ms is None or state.last_ts_ms > self.stream_time_ms:
            self.stream_time_ms = state.last_ts_ms

    # -- inputs --------------------------------------------------------------------------------
    def is_late(self, reading: RiskReading) -> bool:
        state = self.patients.get(reading.patient_id)
        return state is not None and reading.ts_ms < state.last_ts_ms

    def on_risk(self, reading: RiskReading) -> Outcome:
        """Apply one (not late) risk record, then move stream time and fire what fell due."""
        outcome = Outcome()
        previous = self.patients.get(reading.patient_id)
        transition = engine.on_reading(previous, reading, self.rules, self.stream_time_ms)
        self._apply(reading.patient_id, transition.state, transition.events, outcome)
        if previous is None:
            heapq.heappush(self._deadlines, (engine.forget_due_ms(transition.state, self.rules), FORGET, reading.patient_id))  # type: ignore[arg-type]
        if previous is None or previous.gap is not None:
            self._schedule(reading.patient_id, transition.state)  # type: ignore[arg-type]
        if self.stream_time_ms is None or reading.ts_ms > self.stream_time_ms:
            self.stream_time_ms = reading.ts_ms
        self._fire_due(outcome)
        return outcome

    def on_command(self, command: Command) -> Outcome:
        outcome = Outcome()
        transition = engine.on_command(self.patients.get(command.patient_id), command)
        outcome.ignored = transition.ignored
        if transition.ignored is None:
            self._apply(command.patient_id, transition.state, transition.events, outcome)
            if isinstance(command, Snooze) and transition.state is not None:
                # A snooze moves the gap deadline, possibly earlier than the one in the heap.
                self._schedule(command.patient_id, transition.state)
                self._fire_due(outcome)
        return outcome

    # -- internals -----------------------------------------------------------------------------
    def _apply(self, patient_id: str, state: PatientState | None, events: tuple[AlertEvent, ...], outcome: Outcome) -> None:
        if state is None:
            self.patients.pop(patient_id, None)
        else:
            self.patients[patient_id] = state
        if patient_id not in outcome.changed:
            outcome.changed.append(patient_id)
        for event in events:
            if event.status in (RAISED, ESCALATED):
                self._open(event.alert_id, event.severity)
            elif event.status == RESOLVED:
                self._close(event.alert_id)
        outcome.events.extend(events)

    def _open(self, alert_id: str, severity: str) -> None:
        self._close(alert_id)  # an escalation: the same alert, at its new severity
        self.active[alert_id] = severity
        self.open_by_severity[severity] += 1

    def _close(self, alert_id: str) -> None:
        severity = self.active.pop(alert_id, None)
        if severity is not None:
            self.open_by_severity[severity] -= 1

    def _schedule(self, patient_id: str, state: PatientState) -> None:
        due = engine.gap_due_ms(state, self.rules)
        if due is not None:
            heapq.heappush(self._deadlines, (due, GAP, patient_id))

    def _fire_due(self, outcome: Outcome) -> None:
        now = self.stream_time_ms
        if now is None:
            return
        while self._deadlines and self._deadlines[0][0] <= now:
            due, kind, patient_id = heapq.heappop(self._deadlines)
            state = self.patients.get(patient_id)
            if state is None:
                continue
            actual = engine.gap_due_ms(state, self.rules) if kind == GAP else engine.forget_due_ms(state, self.rules)
            if actual is None:
                continue  # gap alert already open; rescheduled when readings resume
            if actual != due:
                heapq.heappush(self._deadlines, (actual, kind, patient_id))
                continue
            if kind == GAP:
                transition = engine.on_gap(state, patient_id, due, self.rules)
            else:
                transition = engine.on_forget(state, patient_id, due)
            self._apply(patient_id, transition.state, transition.events, outcome)
