"""Alert quality metrics on tiny cohorts whose answers can be worked out by hand."""

from __future__ import annotations

import pytest

from alerts.messages import RiskReading
from alerts.quality import MS_PER_HOUR, OutcomeEvent, compare, evaluate, to_markdown
from alerts.rules import NEWS2_RULES_PATH, Rules, load_rules, parse_rules

T0 = 1_767_225_600_000
HOUR = MS_PER_HOUR

RULES: Rules = parse_rules({
    "defaults": {"debounce": {"readings": 1, "of_last": 1}, "cooldown_s": 0},
    "rules": {
        "model_risk": {"signal": "risk", "levels": {"urgent": {"raise_at": 0.5, "clear_below": 0.5}}},
        "news2_aggregate": {"signal": "news2", "levels": {"urgent": {"raise_at": 5, "clear_below": 5}}},
    },
    "data_gap": {"after_s": 7200, "forget_after_s": 86400},
})


def hourly(patient: str, risks: list[float], news2: list[int] | None = None) -> list[RiskReading]:
    news2 = news2 or [0] * len(risks)
    return [RiskReading(patient, T0 + h * HOUR, r, n, False, "test") for h, (r, n) in enumerate(zip(risks, news2, strict=True))]


# A: deteriorates, event at hour 10; model alert at hour 4 (6 h ahead), NEWS2 alert at hour 9 (1 h ahead).
# B: stable, one false model alert at hour 2 (resolved at 3). C: stable, silent. 3 patients x 10 h.
READINGS = (
    hourly("A", [0.1] * 4 + [0.6] * 7, [1] * 9 + [6] * 2)
    + hourly("B", [0.1, 0.1, 0.7] + [0.1] * 8)
    + hourly("C", [0.1] * 11)
)
EVENTS = [OutcomeEvent("A", T0 + 10 * HOUR)]


def test_counts_sensitivity_ppv_lead_time_and_burden() -> None:
    q = evaluate(READINGS, EVENTS, RULES, name="both", horizon_ms=12 * HOUR)
    assert (q.patients, q.patient_days, q.events) == (3, 1.25, 1)  # 3 x 10 h
    assert (q.alerts, q.caught, q.true_alerts) == (3, 1, 2)
    assert q.sensitivity == 1.0 and q.ppv == pytest.approx(0.667, abs=1e-3)
    assert q.median_lead_time_h == 6.0  # from the earliest alert
    assert q.alerts_per_patient_day == 2.4


def test_subsets_and_horizon() -> None:
    model, news2 = compare(READINGS, EVENTS, {"model": RULES.only("risk"), "news2": RULES.only("news2")}, horizon_ms=12 * HOUR)
    assert (model.alerts, model.caught, model.median_lead_time_h, model.ppv) == (2, 1, 6.0, 0.5)
    assert (news2.alerts, news2.caught, news2.median_lead_time_h, news2.ppv) == (1, 1, 1.0, 1.0)
    short = evaluate(READINGS, EVENTS, RULES.only("risk"), name="model", horizon_ms=2 * HOUR)
    assert (short.caught, short.sensitivity, short.true_alerts) == (0, 0.0, 0)


def test_readings_after_the_event_are_not_counted() -> None:
    after = hourly("A", [0.1] * 11 + [0.9] * 5)  # alerts only after the hour-10 event
    q = evaluate(after, EVENTS, RULES, name="late")
    assert (q.alerts, q.caught, q.patient_days) == (0, 0, pytest.approx(10 / 24, abs=1e-3))
    assert q.ppv is None and q.median_lead_time_h is None


def test_markdown_has_a_row_per_rule_set() -> None:
    results = compare(READINGS, EVENTS, {"default": RULES, "news2_only": load_rules(NEWS2_RULES_PATH)})
    text = to_markdown(results, {"cohort": "tiny"})
    assert "| default | 2.40 | 100% | 67% | 6 |" in text
    assert "| news2_only |" in text and "- cohort: tiny" in text
