"""Explanations on the `risk` record (inference/explain.py): contributions by occlusion on the
serving runtime, each vital's trend, which readings get one, and that restore, batching and the
codec leave them as they are."""

from __future__ import annotations

import json
from functools import cache

import numpy as np
import pytest

from inference import explain
from inference.checkpoint import default_checkpoint_path, load_step
from inference.records import Explanation, Risk, decode_risk, encode_risk, format_explanation
from inference.processor import ScorerProcessor, ScorerSettings
from inference.state.changelog import MAGIC_V1, decode_row
from inference.step import OnnxStep
from ingest import Reading
from runtime.metrics import StreamMetrics, new_registry
from runtime.records import OutRecord
from runtime.topics import RISK, SCORER_STATE
from tests.support.equivalence import EXPLANATION_ABS_TOLERANCE, RISK_ABS_TOLERANCE
from tests.test_scorer import exported, make_readings, records, run_in_batches, torch_model

T0 = 1_767_225_600_000
MIN = 60_000
HOUR = 60 * MIN


@cache
def shipped() -> tuple[OnnxStep, str]:
    return load_step(default_checkpoint_path())


def scorer(step: OnnxStep | None = None, version: str = "gru-test", **settings: object) -> ScorerProcessor:
    if step is None:
        step, version = OnnxStep(exported("gru"), torch_model("gru").config), "gru-test"
    return ScorerProcessor(step, version, StreamMetrics(new_registry(), "score"), ScorerSettings(**settings))  # type: ignore[arg-type]


def scripted(minutes: int, rr=lambda h: 14.0, sbp=lambda h: 125.0, hr=lambda h: 82.0, spo2=lambda h: 96.0) -> list[Reading]:
    """A wearable every minute (HR, RR, SpO2), temperature every 15 min, BP from a cuff every 15 min,
    oxygen and consciousness charted hourly: values a little off the reference, as real ones are."""
    out = []
    for i in range(minutes):
        h = i / 60
        cuff = i % 15 == 0
        out.append(Reading(
            "P1", "D1", i, T0 + i * MIN, hr=hr(h), rr=rr(h), spo2=spo2(h), temp=36.8 if cuff else None,
            sbp=sbp(h) if cuff else None, dbp=round(sbp(h) * 0.6, 1) if cuff else None,
            on_oxygen=False if i % 60 == 0 else None, acvpu="A" if i % 60 == 0 else None,
        ))
    return out


def explained(out: list[OutRecord]) -> list[Risk]:
    return [decode_risk(r.value) for r in out if r.topic == RISK]


def last_explanation(readings: list[Reading]) -> Risk:
    step, version = shipped()
    s = scorer(step, version, explain="all")
    record = explained(s.process(records(readings, partitions=1)))[-1]
    assert record.explain is not None
    return record


# -- acceptance: the shipped model on scripted patients ------------------------------------------
def test_a_patient_whose_only_abnormal_input_is_the_respiratory_rate_shows_rr_first_and_dominant() -> None:
    record = last_explanation(scripted(5 * 60 + 1, rr=lambda h: 14.0 if h < 1 else 28.0))
    assert record.explain.top[0][0] == "rr" and record.explain.top[0][1] > 0
    assert explain.dominant(record.explain.top) == "rr"
    assert record.explain.change("rr", "4h") == pytest.approx(14.0)  # 14 -> 28 since more than 4 h ago


def test_a_patient_whose_only_change_is_falling_blood_pressure_shows_bp_first() -> None:
    falling = scripted(3 * 60 + 1, sbp=lambda h: 125.0 if h < 1 else 125.0 - (h - 1) * 20)
    record = last_explanation(falling)
    assert record.explain.top[0][0] == "bp" and record.explain.top[0][1] > 0
    # 3 h in, the 1 h trend is measured from 90 min (the grid boundary more than 1 h back): 115 -> 85.
    assert record.explain.since_ms[0] == T0 + 90 * MIN
    assert record.explain.change("sbp", "1h") == pytest.approx(-30.0)
    assert record.explain.values["sbp"] == pytest.approx(85.0)


def test_a_stable_patient_has_no_dominant_contribution() -> None:
    record = last_explanation(scripted(4 * 60))
    assert all(abs(c) < explain.DOMINANT for _, c in record.explain.top)
    assert explain.dominant(record.explain.top) is None
    assert record.explain.change("hr", "1h") == 0.0


# -- the method ------------------------------------------------------------------------------------
def test_inputs_at_the_reference_or_never_seen_contribute_exactly_nothing_and_cost_no_step_row() -> None:
    step = OnnxStep(exported("gru"), torch_model("gru").config)
    calls: list[int] = []

    class Counting:
        def step(self, state, *inputs):  # type: ignore[no-untyped-def]
            calls.append(len(state))
            return step.step(state, *inputs)

    n = 3
    values = np.tile(explain.REFERENCE, (n, 1))
    values[0, 1] = 30.0  # RR off the reference
    mask = np.ones_like(values)
    mask[:, 3] = 0.0  # temperature not measured now
    last_mask = mask.copy()  # ... nor ever
    state = np.zeros((n, step.state_size), dtype=np.float32)
    delta = np.zeros_like(values)
    _, risk = step.step(state, values, mask, delta, values.copy(), last_mask)
    c = explain.contributions(Counting(), state, values, mask, delta, values.copy(), last_mask, risk)  # type: ignore[arg-type]
    assert calls == [n * (explain.N_GROUPS - 1)], "one call; no row for the group never seen"
    temp = explain.GROUP_NAMES.index("temp")
    assert (c[:, temp] == 0).all()
    others = [g for g in range(explain.N_GROUPS) if g != explain.GROUP_NAMES.index("rr")]
    assert np.abs(c[:, others]).max() < RISK_ABS_TOLERANCE, "an input already normal explains nothing"
    assert abs(c[0, explain.GROUP_NAMES.index("rr")]) > 1e-4


def test_trends_compare_with_the_value_at_the_grid_boundary_and_need_a_new_observation() -> None:
    # BP measured once, long ago: no BP trend (carried forward is not a new measurement).
    readings = [Reading("P1", "D1", 0, T0 + 1, hr=70.0, sbp=120.0, dbp=80.0)]
    readings += [Reading("P1", "D1", i, T0 + i * 10 * MIN, hr=70.0 + i) for i in range(1, 31)]  # 5 h, HR +1 per 10 min
    s = scorer(explain="all")
    last = explained(s.process(records(readings, partitions=1)))[-1]
    since_1h, since_4h = last.explain.since_ms
    now = readings[-1].ts_ms
    assert HOUR < now - since_1h <= 1.5 * HOUR and 4 * HOUR < now - since_4h <= 6 * HOUR
    hr_then = 70.0 + (since_1h - T0) // (10 * MIN)  # the reading at or before the boundary
    assert last.explain.change("hr", "1h") == pytest.approx(100.0 - hr_then)
    assert last.explain.change("sbp", "1h") is None and last.explain.change("sbp", "4h") is None
    assert last.explain.values["sbp"] is None, "older than the carry-forward age: not shown as current"


# -- which readings -------------------------------------------------------------------------------
def test_selected_explains_high_risk_news2_triggers_and_the_first_reading_of_each_quarter_hour() -> None:
    readings = [Reading("P1", "D1", i, T0 + i * MIN, hr=80.0, rr=16.0) for i in range(40)]
    readings.append(Reading("P1", "D1", 40, T0 + 40 * MIN + 1, hr=80.0, rr=35.0, spo2=85.0))  # RR 3 + SpO2 3
    s = scorer(explain="selected", explain_risk_at=1.0)
    got = explained(s.process(records(readings, partitions=1)))
    with_explanation = [r.seq for r in got if r.explain is not None]
    assert with_explanation == [0, 15, 30, 40]
    assert s.scorer_metrics.explained._value.get() == 4
    everything = scorer(explain="selected", explain_risk_at=0.0)
    assert all(r.explain is not None for r in explained(everything.process(records(readings, partitions=1))))
    off = scorer(explain="off")
    assert all(r.explain is None for r in explained(off.process(records(readings, partitions=1))))


# -- restore, batching, the codec -----------------------------------------------------------------
def explanations(out: list[OutRecord]) -> dict[tuple[str, int], Explanation]:
    return {(r.patient_id, r.seq): r.explain for r in explained(out)}  # type: ignore[misc]


def assert_same_explanations(got: dict, expected: dict) -> None:  # type: ignore[type-arg]
    assert got.keys() == expected.keys()
    for key, e in expected.items():
        g = got[key]
        assert (g is None) == (e is None), key
        if e is None:
            continue
        assert g.values == e.values and g.since_ms == e.since_ms and g.trend.keys() == e.trend.keys(), key
        for name, pair in e.trend.items():
            tol = EXPLANATION_ABS_TOLERANCE if name == "risk" else 0
            assert all((a is None and b is None) or abs(a - b) <= tol for a, b in zip(g.trend[name], pair)), (key, name)
        assert dict(g.top) == pytest.approx(dict(e.top), abs=EXPLANATION_ABS_TOLERANCE), key


def test_explanations_do_not_depend_on_batching_or_on_a_restore_from_the_changelog() -> None:
    readings = make_readings(patients=4, steps=40, seed=5)
    items = records(readings, partitions=2)
    uninterrupted = explanations(run_in_batches(scorer(explain="all"), items, [7]))
    assert_same_explanations(explanations(run_in_batches(scorer(explain="all"), items, [1, 50])), uninterrupted)

    half = len(items) // 2
    first = scorer(explain="all")
    out = run_in_batches(first, items[:half], [10])
    second = scorer(explain="all")
    for p in (0, 1):
        second.restore(p, [(r.key, r.value) for r in out if r.topic == SCORER_STATE and r.partition == p])
    resumed = explanations(out) | explanations(run_in_batches(second, items[half:], [10]))
    assert_same_explanations(resumed, uninterrupted)
    assert any(e.trend.get("hr", (None, None))[1] is not None for e in uninterrupted.values()), "4 h trends were exercised"


def test_a_state_row_from_before_explanations_still_restores() -> None:
    s = scorer()
    out = s.process(records(make_readings(patients=2, steps=5), partitions=1))
    rows = [(r.key, r.value) for r in out if r.topic == SCORER_STATE]
    size = s.table.state_size
    old = [(k, MAGIC_V1 + v[4 : len(v) - 4 - 4 * 42]) for k, v in rows]
    restored = scorer()
    restored.restore(0, old)
    for key, value in rows:
        row = restored.table.rows[key.decode()]
        assert np.array_equal(restored.table.hidden[row], decode_row(value, size).hidden)
        assert np.isnan(restored.table.trend_refs[row]).all() and np.isnan(restored.table.last_risk[row])


def test_the_explanation_round_trips_and_a_malformed_one_reads_as_absent() -> None:
    e = Explanation(top=(("rr", 0.3601), ("bp", -0.0123)), values={"hr": 82.0, "rr": 28.0, "spo2": None, "temp": 36.8, "sbp": 85.0, "dbp": 51.0},
                    since_ms=(T0, T0 - 3 * HOUR), trend={"rr": (0.0, 14.0), "risk": (None, 0.6126)})
    record = Risk("P1", T0, 0.61, 3, True, "m", 7, {"rr": 3}, e)
    value = encode_risk(Risk("P1", T0, 0.61, 3, True, "m", 7, {name: None for name in ("rr", "spo2", "on_oxygen", "sbp", "hr", "acvpu", "temp")}, e))
    assert decode_risk(value).explain == e and encode_risk(decode_risk(value)) == value
    assert json.loads(format_explanation(e))["trend"]["risk"] == [None, 0.6126]
    assert record.explain is e and hash(record) == hash(Risk("P1", T0, 0.61, 3, True, "m", 7))
    base = {"patient_id": "P1", "ts_ms": 5, "risk": 0.25, "news2": 2, "news2_single3": False, "model": "m"}
    for bad in ({"top": [["heart", 0.1]], "values": {}, "trend": {"since_ms": [1, 2]}}, {"top": [], "values": {}, "trend": {}},
                {"top": [["rr", "big"]], "values": {}, "trend": {"since_ms": [1, 2]}}, "why"):
        assert decode_risk(json.dumps({**base, "explain": bad})).explain is None


# -- alerts carry it; the demo prints it in one line -------------------------------------------------
def test_a_raised_alert_carries_the_readings_explanation_and_the_demo_prints_it_in_one_line() -> None:
    from alerts.engine import on_reading
    from alerts.messages import AlertEvent, parse_risk
    from alerts.rules import load_rules
    from wardwatch.demo import alert_summary

    readings = scripted(5 * 60 + 30, rr=lambda h: 14.0 if h < 1 else 30.0, spo2=lambda h: 96.0 if h < 1 else 90.0)
    step, version = shipped()
    out = scorer(step, version).process(records(readings, partitions=1))
    rules = load_rules()
    state, events = None, []
    for r in out:
        if r.topic == RISK:
            transition = on_reading(state, parse_risk(r.value), rules)
            state = transition.state
            events.extend(transition.events)
    raised = [e for e in events if e.status == "raised"]
    assert {e.rule for e in raised} >= {"model_risk", "news2_single_parameter"}
    model = next(e for e in raised if e.rule == "model_risk")
    assert {name for name, _ in model.explain["top"][:2]} == {"rr", "spo2"}, "the two abnormal inputs lead"
    assert model.explain["news2_scores"]["rr"] == 3
    assert model.explain["risk"] >= 0.6 and model.explain["values"]["rr"] == 30.0
    event = model.to_dict()
    assert json.loads(json.dumps(event))["explain"] == model.explain
    line = alert_summary(event)
    assert "\n" not in line and "why: model: " in line and "RR 30/min +" in line and "SpO2 90% +" in line and "RR 3" in line
    plain = AlertEvent("a", "P1", 1, "resolved", "urgent", "model_risk", "cleared", 0).to_dict()
    assert "explain" not in plain and "why" not in alert_summary(plain)
