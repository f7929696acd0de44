"""Evaluation across stages: what the alerts make of the model's risk, with the real alert engine.

The model's own metrics (AUROC, AUPRC, calibration) are `inference/stats.py`'s. Alerts per
patient-day, event sensitivity, PPV and lead time need two stages: the scorer's core scores a
cohort's readings in process (no Kafka; the readings ingest would pass on, in arrival order),
and the alert engine (`alerts/engine.py`, through `alerts/quality.py`) runs its rules over the
risk records. Three rule sets side by side: the rules as configured (`default`), NEWS2 alone
(`news2_only`) and the default's model rules alone (`model_only`); "the model's alerts per
patient-day" is `model_only`'s. `wardwatch evaluate` and `wardwatch evaluate-alerts` both
measure alerts with `alert_quality`, so on the same cohort they report the same numbers.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alerts.messages import RiskReading, parse_risk
from alerts.quality import HORIZON_MS, MS_PER_HOUR, OutcomeEvent, Quality, compare
from alerts.rules import DEFAULT_RULES_PATH, NEWS2_RULES_PATH, Rules, load_rules
from ingest import Reading, encode_reading, unique_readings
from inference.step import StepRuntime
from runtime.metrics import StreamMetrics, new_registry
from runtime.records import InRecord
from runtime.topics import RISK, VITALS

log = logging.getLogger(__name__)

BATCH = 2000  # readings per scorer batch, as a poll would bring them


@dataclass(frozen=True)
class AlertSettings:
    """The rule sets compared and the horizon within which an alert catches an event."""

    rules: str = str(DEFAULT_RULES_PATH)
    news2_rules: str = str(NEWS2_RULES_PATH)
    horizon_hours: float = HORIZON_MS / MS_PER_HOUR

    def rule_sets(self) -> dict[str, Rules]:
        rules = load_rules(self.rules)
        # NEWS2-only is the established practice (its own rules file); model-only is the default's model rules.
        return {"default": rules, "news2_only": load_rules(self.news2_rules), "model_only": rules.only("risk")}

    def describe(self) -> str:
        return f"default {_shown(self.rules)}; news2_only {_shown(self.news2_rules)}; model_only = the default's model rules"


def _shown(path: str) -> str:
    """A rules file as a report names it: relative to the repository when it is one of its files."""
    try:
        return str(Path(path).resolve().relative_to(_REPOSITORY))
    except ValueError:
        return path


_REPOSITORY = Path(__file__).resolve().parents[1]


def score_offline(readings: Sequence[Reading], model: StepRuntime, version: str) -> list[RiskReading]:
    """Risk records for readings (as ingest passes them on) from the scorer's core, in process (no Kafka)."""
    from inference.processor import ScorerProcessor  # the heavy import only when scoring

    scorer = ScorerProcessor(model, version, StreamMetrics(new_registry(), "score"))
    risk: list[RiskReading] = []
    for start in range(0, len(readings), BATCH):
        batch = [InRecord(VITALS, 0, start + i, None, encode_reading(r), 0) for i, r in enumerate(readings[start : start + BATCH])]
        risk.extend(parse_risk(o.value) for o in scorer.process(batch) if o.topic == RISK and o.value is not None)
    return risk


def alert_quality(cohort: Any, model: StepRuntime, version: str, settings: AlertSettings) -> list[Quality]:
    """Each rule set's alert quality on a simulated cohort (`sim.cohort.Cohort`): its readings
    scored by the scorer's core, the alert engine run over the risk records."""
    events = [OutcomeEvent(e.patient_id, e.event_ts_ms) for e in cohort.events]
    return _quality(cohort.readings, events, model, version, settings)


def _quality(raw_readings: Iterable[Any], events: Sequence[OutcomeEvent], model: StepRuntime, version: str,
             settings: AlertSettings) -> list[Quality]:
    risk = score_offline(list(unique_readings(raw_readings)), model, version)
    return compare(risk, events, settings.rule_sets(), horizon_ms=int(settings.horizon_hours * MS_PER_HOUR))


@dataclass(frozen=True)
class CohortDirAlerts:
    """Alerts on a cohort directory's patients (`wardwatch import` or `wardwatch sim --output`),
    for `inference.evaluate.evaluate_cohort_dirs`: its readings.jsonl through the scorer's core
    and the alert engine, its events.jsonl as the ground truth (none: alerts per patient-day only)."""

    model: StepRuntime
    version: str
    settings: AlertSettings

    def measure(self, path: str | Path, patient_ids: Sequence[str]) -> list[Quality]:
        root, wanted = Path(path), set(patient_ids)

        def rows(name: str) -> Iterator[dict[str, Any]]:
            file = root / name
            if file.is_file():
                with file.open() as f:
                    for line in f:
                        if line.strip():
                            row = json.loads(line)
                            if row.get("patient_id") in wanted:
                                yield row

        events = [OutcomeEvent(e["patient_id"], int(e["event_ts_ms"])) for e in rows("events.jsonl")]
        return _quality(rows("readings.jsonl"), events, self.model, self.version, self.settings)

    def markdown(self, per_cohort: Mapping[str, Sequence[Quality]]) -> str:
        return alerts_markdown(per_cohort, self.settings)


def alerts_markdown(per_cohort: Mapping[str, Sequence[Quality]], settings: AlertSettings) -> str:
    """The alert part of `wardwatch evaluate`'s report: one row per cohort and rule set."""
    lines = [
        "## Alerts: the alert engine over the scorer's risk records",
        "",
        f"Rules: {settings.describe()}. An event is caught when a clinical alert was raised within "
        f"{settings.horizon_hours:g} h before it; PPV is the share of alerts followed by an event within that time; "
        "each stay ends at its event. The model's alerts per patient-day is `model_only`'s.",
        "",
        "| cohort | rules | alerts / patient-day | event sensitivity | PPV | median lead time (h) | alerts | events caught | technical alerts |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, results in per_cohort.items():
        for q in results:
            lines.append(
                f"| {name} | {q.rules} | {q.alerts_per_patient_day:.2f} | {_pct(q.sensitivity)} | {_pct(q.ppv)} "
                f"| {'–' if q.median_lead_time_h is None else f'{q.median_lead_time_h:g}'} | {q.alerts} | {q.caught}/{q.events} "
                f"| {q.technical_alerts} |"
            )
    return "\n".join(lines) + "\n"


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{x * 100:.0f}%"


def evaluate_simulated(
    model: Any,
    step: StepRuntime,
    version: str,
    cohorts: Sequence[tuple[str, int, dict[str, object]]],
    *,
    patients: int,
    hours: float,
    settings: AlertSettings,
    out_dir: str | Path,
    command: str,
) -> dict[str, Any]:
    """`wardwatch evaluate` on simulator cohorts: for each (name, seed, options) the model's
    metrics (PyTorch `model`) and the alerts (its exported `step` in the scorer's core); writes the report."""
    from inference.evaluate import simulated_cohort, write_report

    results, alerts = [], {}
    for name, seed, options in cohorts:
        result, cohort = simulated_cohort(model, name, seed, options, patients=patients, hours=hours)
        alerts[name] = alert_quality(cohort, step, version, settings)
        result.summary["alerts"] = {q.rules: q.to_dict() for q in alerts[name]}
        log.info("cohort=%s model_alerts_per_patient_day=%.3f", name, result.summary["alerts"]["model_only"]["alerts_per_patient_day"])
        results.append(result)
    return write_report(results, out_dir, model_version=version, horizon_hours=model.config.horizon_hours, command=command,
                        sections=[alerts_markdown(alerts, settings)])
