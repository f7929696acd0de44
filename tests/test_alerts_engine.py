"""The alert state machine, as a specification: tables of readings in, alert events out.

Time is event time in minutes from T0; patient "A" is under test, patient "B" only moves the
partition's stream time on (as other patients' readings do in production).
"""

from __future__ import annotations

import json
import random
from collections import Counter
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alerts import engine
from alerts.messages import Acknowledge, AlertEvent, RiskReading, Snooze
from alerts.partition import PartitionAlerts
from alerts.rules import SEVERITIES, Debounce, Level, Rule, Rules, parse_rules
from alerts.state import RuleState
from alerts.state import decode, encode

T0 = 1_767_225_600_000
MIN = 60_000


def t(minute: float) -> int:
    return T0 + int(minute * MIN)


def make_rules(readings: int = 1, of_last: int = 1, min_duration_s: float = 0, cooldown_s: float = 0, **extra: Any) -> Rules:
    rules: dict[str, Any] = {
        "model_risk": {
            "signal": "risk",
            "levels": {"urgent": {"raise_at": 0.5, "clear_below": 0.3}, "emergency": {"raise_at": 0.8, "clear_below": 0.6}},
            "debounce": {"readings": readings, "of_last": of_last, "min_duration_s": min_duration_s},
            "cooldown_s": cooldown_s,
        }
    }
    rules.update(extra)
    return parse_rules({"rules": rules, "data_gap": {"after_s": 600, "forget_after_s": 3600}})


NEWS2_RULES = parse_rules({
    "defaults": {"debounce": {"readings": 1, "of_last": 1}, "cooldown_s": 0},
    "rules": {
        "news2_aggregate": {"signal": "news2", "levels": {"urgent": {"raise_at": 5, "clear_below": 5}, "emergency": {"raise_at": 7, "clear_below": 7}}},
        "news2_single_parameter": {"signal": "news2_single3", "levels": {"low_medium": {"raise_at": 1, "clear_below": 1}}},
    },
})


# -- steps -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class R:
    """A risk record at `minute`."""

    minute: float
    risk: float = 0.0
    patient: str = "A"
    news2: int = 0
    single3: bool = False


@dataclass(frozen=True)
class Ack:
    minute: float
    raised_minute: float  # identifies the alert: ids are derived from the raising reading's time
    rule: str = "model_risk"
    by: str | None = "nurse-1"


@dataclass(frozen=True)
class Snz:
    minute: float
    until_minute: float


Step = R | Ack | Snz


def apply(part: PartitionAlerts, step: Step) -> tuple[list[AlertEvent], str | None]:
    if isinstance(step, R):
        reading = RiskReading(step.patient, t(step.minute), step.risk, step.news2, step.single3, "test")
        return part.on_risk(reading).events, None
    if isinstance(step, Ack):
        aid = engine.alert_id("A", step.rule, t(step.raised_minute))
        outcome = part.on_command(Acknowledge("A", aid, t(step.minute), step.by))
    else:
        outcome = part.on_command(Snooze("A", t(step.until_minute), t(step.minute)))
    return outcome.events, outcome.ignored


def run(steps: list[Step], rules: Rules) -> list[AlertEvent]:
    part = PartitionAlerts(rules)
    events: list[AlertEvent] = []
    for step in steps:
        events.extend(apply(part, step)[0])
    return events


def summary(events: list[AlertEvent], patient: str = "A") -> list[tuple[float, str, str, str]]:
    return [((e.ts_ms - T0) / MIN, e.status, e.severity, e.rule) for e in events if e.patient_id == patient]


def steady(risk: float, minutes: range, patient: str = "A") -> list[Step]:
    return [R(m, risk, patient) for m in minutes]


def both(minutes: range, risk_a: float, risk_b: float = 0.0) -> list[Step]:
    return [s for m in minutes for s in (R(m, risk_a), R(m + 0.5, risk_b, "B"))]


MR = "model_risk"
GAP = "data_gap"

# (behaviour, rules, steps, expected (minute, status, severity, rule) for patient A)
CASES: list[tuple[str, Rules, list[Step], list[tuple[float, str, str, str]]]] = [
    ("exactly at raise_at raises", make_rules(), [R(0, 0.5)], [(0, "raised", "urgent", MR)]),
    ("just below raise_at stays quiet", make_rules(), [R(0, 0.4999), R(1, 0.4999)], []),
    ("exactly at clear_below does not resolve", make_rules(), [R(0, 0.5), R(1, 0.3)], [(0, "raised", "urgent", MR)]),
    ("just below clear_below resolves", make_rules(), [R(0, 0.5), R(1, 0.2999)],
     [(0, "raised", "urgent", MR), (1, "resolved", "urgent", MR)]),
    ("hysteresis: between clear_below and raise_at keeps the alert open", make_rules(),
     [R(0, 0.55), R(1, 0.45), R(2, 0.35), R(3, 0.31), R(4, 0.2)],
     [(0, "raised", "urgent", MR), (4, "resolved", "urgent", MR)]),
    ("flapping around raise_at never meets 3 consecutive", make_rules(3, 3),
     [R(m, 0.51 if m % 2 else 0.49) for m in range(12)], []),
    ("flapping around raise_at meets 3 of the last 5", make_rules(3, 5),
     [R(m, 0.51 if m % 2 else 0.49) for m in range(8)], [(5, "raised", "urgent", MR)]),
    ("debounce raises only on a reading that itself meets the level", make_rules(3, 5, 180),
     [R(0, 0.6), R(1, 0.6), R(2, 0.6), R(3, 0.1), R(4, 0.6)], [(4, "raised", "urgent", MR)]),
    ("flapping around clear_below with hysteresis resolves once", make_rules(),
     [R(0, 0.6)] + [R(m, 0.29 if m % 2 else 0.31) for m in range(1, 8)],
     [(0, "raised", "urgent", MR), (1, "resolved", "urgent", MR)]),
    ("min duration: raises once the condition has held 5 min", make_rules(min_duration_s=300),
     steady(0.6, range(8)), [(5, "raised", "urgent", MR)]),
    ("min duration: a dip restarts the clock", make_rules(min_duration_s=300),
     steady(0.6, range(4)) + [R(4, 0.1)] + steady(0.6, range(5, 12)), [(10, "raised", "urgent", MR)]),
    ("N of M with duration: held since the first qualifying reading", make_rules(2, 3, 180),
     [R(0, 0.6), R(1, 0.1), R(2, 0.6), R(3, 0.6), R(4, 0.4)], [(3, "raised", "urgent", MR)]),
    ("escalation to a higher severity is a new event", make_rules(),
     [R(0, 0.6), R(1, 0.85), R(2, 0.9), R(3, 0.1)],
     [(0, "raised", "urgent", MR), (1, "escalated", "emergency", MR), (3, "resolved", "emergency", MR)]),
    ("straight to the highest level raises it, no escalation", make_rules(), [R(0, 0.95)], [(0, "raised", "emergency", MR)]),
    ("escalation is debounced too", make_rules(2, 2), [R(0, 0.6), R(1, 0.6), R(2, 0.9), R(3, 0.6), R(4, 0.9), R(5, 0.9)],
     [(1, "raised", "urgent", MR), (5, "escalated", "emergency", MR)]),
    ("stepping down is silent and re-arms escalation", make_rules(),
     [R(0, 0.9), R(1, 0.7), R(2, 0.85), R(3, 0.55), R(4, 0.85), R(5, 0.1)],
     [(0, "raised", "emergency", MR), (4, "escalated", "emergency", MR), (5, "resolved", "emergency", MR)]),
    ("cool-down: no new alert within it", make_rules(cooldown_s=600),
     [R(0, 0.6), R(1, 0.1), R(2, 0.6), R(5, 0.6), R(10.9, 0.6), R(11, 0.6)],
     [(0, "raised", "urgent", MR), (1, "resolved", "urgent", MR), (11, "raised", "urgent", MR)]),
    ("cool-down: a higher severity than the resolved one breaks through", make_rules(cooldown_s=600),
     [R(0, 0.6), R(1, 0.1), R(2, 0.6), R(3, 0.9)],
     [(0, "raised", "urgent", MR), (1, "resolved", "urgent", MR), (3, "raised", "emergency", MR)]),
    ("acknowledge: an event, and later events carry it", make_rules(),
     [R(0, 0.6), Ack(0.5, 0), R(1, 0.6), R(2, 0.1)],
     [(0, "raised", "urgent", MR), (0.5, "acknowledged", "urgent", MR), (2, "resolved", "urgent", MR)]),
    ("acknowledging twice, or an unknown alert, emits nothing", make_rules(),
     [R(0, 0.6), Ack(0.5, 0), Ack(0.6, 0), Ack(0.7, 99)], [(0, "raised", "urgent", MR), (0.5, "acknowledged", "urgent", MR)]),
    ("snooze: nothing raises until it ends, then the held condition raises", make_rules(),
     [R(0, 0.1), Snz(0.5, 10)] + steady(0.6, range(1, 12)), [(10, "raised", "urgent", MR)]),
    ("snooze does not hold back a resolve", make_rules(),
     [R(0, 0.6), Snz(0.5, 30), R(1, 0.1), R(2, 0.6)], [(0, "raised", "urgent", MR), (1, "resolved", "urgent", MR)]),
    ("snooze holds back an escalation until it ends", make_rules(),
     [R(0, 0.6), Snz(0.5, 5)] + steady(0.9, range(1, 7)), [(0, "raised", "urgent", MR), (5, "escalated", "emergency", MR)]),
    ("a snooze ending in the past cancels the snooze", make_rules(),
     [R(0, 0.1), Snz(0.5, 30), Snz(1.5, 1), R(2, 0.6)], [(2, "raised", "urgent", MR)]),
    ("data gap: technical alert exactly after_s after the last reading, resolved when data resumes", make_rules(),
     [R(0, 0.1)] + [R(m, 0.0, "B") for m in range(1, 16)] + [R(16, 0.1)],
     [(10, "raised", "technical", GAP), (16, "resolved", "technical", GAP)]),
    ("data gap during an active alert: the clinical alert stays open through it", make_rules(),
     [R(0, 0.6)] + [R(m, 0.0, "B") for m in range(1, 16)] + [R(16, 0.45), R(17, 0.1)],
     [(0, "raised", "urgent", MR), (10, "raised", "technical", GAP), (16, "resolved", "technical", GAP), (17, "resolved", "urgent", MR)]),
    ("signal lost: readings before a gap do not count towards the debounce", make_rules(3, 3),
     [R(0, 0.6), R(1, 0.6)] + [R(m, 0.0, "B") for m in range(2, 15)] + steady(0.6, range(15, 18)),
     [(11, "raised", "technical", GAP), (15, "resolved", "technical", GAP), (17, "raised", "urgent", MR)]),
    ("a patient's own late reading after silence raises no gap alert", make_rules(), [R(0, 0.1), R(30, 0.1)], []),
    ("snoozed patients get no gap alert until the snooze ends", make_rules(),
     [R(0, 0.1), Snz(0.2, 20)] + [R(m, 0.0, "B") for m in range(1, 25)], [(20, "raised", "technical", GAP)]),
    ("silent past forget_after_s: open alerts resolve", make_rules(),
     [R(0, 0.9)] + [R(m, 0.0, "B") for m in range(5, 65, 5)],
     [(0, "raised", "emergency", MR), (10, "raised", "technical", GAP), (60, "resolved", "emergency", MR), (60, "resolved", "technical", GAP)]),
    ("NEWS2 5 urgent, 7 emergency, then cleared", NEWS2_RULES,
     [R(0, news2=4), R(1, news2=5), R(2, news2=6), R(3, news2=7), R(4, news2=4)],
     [(1, "raised", "urgent", "news2_aggregate"), (3, "escalated", "emergency", "news2_aggregate"), (4, "resolved", "emergency", "news2_aggregate")]),
    ("NEWS2 a 3 in a single parameter", NEWS2_RULES, [R(0, news2=3, single3=True), R(1, news2=0)],
     [(0, "raised", "low_medium", "news2_single_parameter"), (1, "resolved", "low_medium", "news2_single_parameter")]),
]


@pytest.mark.parametrize("behaviour, rules, steps, expected", CASES, ids=[c[0] for c in CASES])
def test_state_machine(behaviour: str, rules: Rules, steps: list[Step], expected: list[tuple[float, str, str, str]]) -> None:
    assert summary(run(steps, rules)) == expected


def test_events_of_one_alert_share_its_deterministic_id() -> None:
    events = run([R(0, 0.6), R(1, 0.9), R(2, 0.1)], make_rules())
    assert {e.alert_id for e in events} == {engine.alert_id("A", MR, t(0))}
    assert all(e.raised_ts_ms == t(0) for e in events)
    assert all(e.reason for e in events)


def test_acknowledged_flag_is_cleared_by_escalation() -> None:
    events = run([R(0, 0.6), Ack(0.5, 0), R(1, 0.9), R(2, 0.1)], make_rules())
    assert [(e.status, e.acknowledged) for e in events] == [
        ("raised", False), ("acknowledged", True), ("escalated", False), ("resolved", False)
    ]


def test_commands_say_why_they_were_ignored() -> None:
    part = PartitionAlerts(make_rules())
    assert apply(part, Ack(0, 0))[1] == "unknown_patient"
    apply(part, R(0, 0.6))
    assert apply(part, Ack(1, 5))[1] == "unknown_alert"
    assert apply(part, Ack(1, 0))[1] is None
    assert apply(part, Ack(2, 0))[1] == "already_acknowledged"


# -- replay and state ----------------------------------------------------------------------------
def random_steps(seed: int, n: int = 600) -> list[Step]:
    """Several patients, drifting risk, occasional silences and commands: exercises every path."""
    rng = random.Random(seed)
    level = {p: rng.random() for p in "ABCD"}
    silent_until = {p: -1.0 for p in "ABCD"}
    steps: list[Step] = []
    for i in range(n):
        minute = i / 2
        patient = "ABCD"[i % 4]
        if minute < silent_until[patient]:
            continue
        if rng.random() < 0.01:
            silent_until[patient] = minute + rng.choice((5, 15, 40, 90))
        level[patient] = min(1.0, max(0.0, level[patient] + rng.gauss(0, 0.12)))
        steps.append(R(minute, round(level[patient], 3), patient, news2=rng.randint(0, 9), single3=rng.random() < 0.1))
        if patient == "A" and rng.random() < 0.03:
            steps.append(Snz(minute, minute + rng.choice((0, 5, 20))))
    return steps


def realistic_rules() -> Rules:
    return make_rules(
        2, 3, 60, 300,
        news2_aggregate={"signal": "news2", "levels": {"urgent": {"raise_at": 5, "clear_below": 4}, "emergency": {"raise_at": 7, "clear_below": 6}}},
        news2_single_parameter={"signal": "news2_single3", "levels": {"low_medium": {"raise_at": 1, "clear_below": 1}}},
    )


def test_replay_gives_the_same_events_and_ids() -> None:
    steps = random_steps(1)
    first, second = run(steps, realistic_rules()), run(steps, realistic_rules())
    assert len(first) > 20
    assert first == second
    raised = [e.alert_id for e in first if e.status == "raised"]
    assert len(raised) == len(set(raised))


def test_state_round_trips_through_json() -> None:
    rules = realistic_rules()
    part = PartitionAlerts(rules)
    seen = 0
    for step in random_steps(2):
        apply(part, step)
        for state in part.patients.values():
            assert decode(encode(state), rules) == state
            json.loads(encode(state))
            seen += 1
    assert seen > 100


@pytest.mark.parametrize("split", [1, 50, 137, 300, 451])
def test_restored_partition_continues_exactly_as_the_original(split: int) -> None:
    """Restore = load each patient's last changelog value; stream time and deadlines follow."""
    rules = realistic_rules()
    steps = random_steps(3)
    expected = run(steps, rules)
    original = PartitionAlerts(rules)
    events: list[AlertEvent] = []
    for step in steps[:split]:
        events.extend(apply(original, step)[0])
    restored = PartitionAlerts(rules)
    for patient_id, state in original.patients.items():
        restored.load(patient_id, decode(encode(state), rules))
    assert restored.active == original.active
    assert +restored.open_by_severity == +original.open_by_severity == Counter(original.active.values())
    for step in steps[split:]:
        events.extend(apply(restored, step)[0])
        assert +restored.open_by_severity == Counter(restored.active.values())  # kept as alerts open, escalate, close
    assert events == expected


# -- the debounce, against its definition ------------------------------------------------------
@settings(max_examples=300, deadline=None)
@given(
    levels=st.integers(1, 3),
    readings=st.integers(1, 5),
    extra=st.integers(0, 5),
    min_duration=st.sampled_from([0, 2 * MIN, 10 * MIN]),
    steps=st.lists(st.tuples(st.integers(1, 3 * MIN), st.integers(0, 3)), max_size=40),
)
def test_the_debounce_holds_a_level_exactly_when_enough_recent_readings_meet_it(
    levels: int, readings: int, extra: int, min_duration: int, steps: list[tuple[int, int]]
) -> None:
    # The mostly-quiet case takes a short cut; whichever path runs, the result is the definition's.
    of_last = readings + extra
    rule = Rule("r", "risk", tuple(Level(SEVERITIES[0], 0.1 * (i + 1), 0.1 * (i + 1)) for i in range(levels)),
                Debounce(readings, of_last, min_duration))
    rs, ts, history = RuleState(), T0, []
    for gap, rank in steps:
        ts, rank = ts + gap, min(rank, levels)
        history.append((ts, rank))
        window, since, target = engine._debounce(rs, rule, ts, rank)
        assert window == tuple(history[-of_last:])
        for level in range(1, levels + 1):
            meeting = [t for t, r in window if r >= level]
            if len(meeting) < readings:
                assert since[level - 1] is None
            else:  # held since the first meeting reading of the run, kept while the run lasts
                previous = rs.since[level - 1] if rs.since else None
                assert since[level - 1] == (previous if previous is not None else meeting[0])
        held = [lv for lv in range(1, levels + 1) if rank >= lv and since[lv - 1] is not None and ts - since[lv - 1] >= min_duration]
        assert target == max(held, default=0)
        rs = RuleState(window, since)
