"""Evaluation across stages: the model report's alerts are the alert engine's, and the same as the alert report's."""

from __future__ import annotations

import json

import pytest

from alerts.quality import OutcomeEvent, compare
from inference.service import load_model
from sim.cohort import CohortConfig, generate
from ingest import unique_readings
from wardwatch.cli import main
from wardwatch.evaluation import AlertSettings, alert_quality, score_offline

PATIENTS, HOURS, SEED = "16", "8", "1001"


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, dict]:
    out = tmp_path_factory.mktemp("evaluation")
    assert main(["evaluate", "--seeds", SEED, "--shifted-seed", "-1", "--patients", PATIENTS, "--hours", HOURS,
                 "--out", str(out / "model"), "--log-level", "WARNING"]) == 0
    assert main(["evaluate-alerts", "--patients", PATIENTS, "--hours", HOURS, "--seed", SEED,
                 "--json", str(out / "alerts.json"), "--markdown", str(out / "alerts.md")]) == 0
    model = json.loads((out / "model" / "report.json").read_text())
    assert "## Alerts" in (out / "model" / "report.md").read_text()
    return model, json.loads((out / "alerts.json").read_text())


def test_the_model_report_and_the_alert_report_give_the_same_alert_numbers(reports: tuple[dict, dict]) -> None:
    model, alerts = reports
    in_model_report = model["cohorts"][f"seed{SEED}"]["alerts"]
    in_alert_report = {q["rules"]: q for q in alerts["results"]}
    assert set(in_model_report) == {"default", "news2_only", "model_only"}
    assert in_model_report == in_alert_report
    assert in_model_report["news2_only"]["events"] > 0  # the cohort has deteriorations to catch


def test_the_alerts_are_the_alert_engines_over_the_scorers_risk_records() -> None:
    cohort = generate(CohortConfig(patients=int(PATIENTS), hours=float(HOURS), seed=int(SEED)))
    step, version = load_model("default")
    settings = AlertSettings()
    got = {q.rules: q for q in alert_quality(cohort, step, version, settings)}
    passed_on = list(unique_readings(cohort.readings))
    assert len(passed_on) < len(cohort.readings)  # the cohort has resends
    risk = score_offline(passed_on, step, version)
    assert len(risk) == len({(r.patient_id, r.ts_ms) for r in risk})  # each reading scored once: duplicates went with ingest
    events = [OutcomeEvent(e.patient_id, e.event_ts_ms) for e in cohort.events]
    expected = {q.rules: q for q in compare(risk, events, settings.rule_sets())}
    assert got == expected
    # model_only raises on the model's risk alone: never more clinical alerts than the rules as configured
    assert got["model_only"].alerts <= got["default"].alerts


def test_evaluate_writes_no_alert_rule_of_its_own(reports: tuple[dict, dict]) -> None:
    model, _ = reports
    assert "alert_rule" not in model
    assert "events" not in model["cohorts"][f"seed{SEED}"]["model"]  # the model's part holds model metrics only
