"""`wardwatch evaluate-alerts`: alert quality of the rules on a held-out simulated cohort."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from alerts.messages import RiskReading, parse_risk
from alerts.quality import MS_PER_HOUR, OutcomeEvent, compare, to_markdown
from alerts.rules import DEFAULT_RULES_PATH, NEWS2_RULES_PATH, load_rules
from runtime import logs
from runtime.config import ConfigError
from runtime.metrics import StreamMetrics, new_registry
from runtime.records import InRecord, to_json
from runtime.topics import RISK, VITALS
from sim.cohort import CohortConfig, generate

log = logging.getLogger(__name__)

BATCH = 2000


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate-alerts",
        help="alert quality on a held-out cohort: alerts per patient-day, sensitivity, PPV, lead time",
        description="Simulates a held-out cohort (a seed not used for training), scores it offline with the "
        "scorer's core (model risk and NEWS2), runs the alert rules over the risk records and compares the "
        "rules as configured with their NEWS2-only and model-only subsets. Writes JSON and Markdown.",
    )
    p.add_argument("--rules", default=str(DEFAULT_RULES_PATH), help="alert rules file [default: the shipped one]")
    p.add_argument("--news2-rules", default=str(NEWS2_RULES_PATH), help="NEWS2-only baseline rules [default: alerts/news2_rules.yaml]")
    p.add_argument("--checkpoint", default="default", help="model checkpoint ('default' = shipped, 'untrained')")
    p.add_argument("--patients", type=int, default=100, help="patients in the cohort [default 100]")
    p.add_argument("--hours", type=float, default=24.0, help="hours of event time per patient [default 24]")
    p.add_argument("--seed", type=int, default=1001, help="cohort seed; keep it apart from training seeds [default 1001]")
    p.add_argument("--horizon-hours", type=float, default=12.0, help="an alert this long before an event counts [default 12]")
    p.add_argument("--json", default="alerts-quality.json", help="JSON report path [default alerts-quality.json]")
    p.add_argument("--markdown", default="alerts-quality.md", help="Markdown report path [default alerts-quality.md]")
    p.set_defaults(func=run)


def score_offline(readings: list[dict[str, object]], checkpoint: str) -> tuple[list[RiskReading], str]:
    """Risk records for a cohort's readings from the scorer's core, run in-process (no Kafka)."""
    from inference.scorer import ScorerProcessor  # the heavy import only for this command
    from inference.service import load_model

    model, version = load_model(checkpoint)
    scorer = ScorerProcessor(model, version, StreamMetrics(new_registry(), "score"))
    risk: list[RiskReading] = []
    for start in range(0, len(readings), BATCH):
        batch = [
            InRecord(VITALS, 0, start + i, None, to_json(r), 0) for i, r in enumerate(readings[start : start + BATCH])
        ]
        risk.extend(parse_risk(o.value) for o in scorer.process(batch) if o.topic == RISK)
    return risk, version


def run(args: argparse.Namespace) -> int:
    logs.setup("INFO", "evaluate-alerts")
    if args.patients < 1 or args.hours <= 0 or args.horizon_hours <= 0:
        raise ConfigError(f"--patients={args.patients} --hours={args.hours} --horizon-hours={args.horizon_hours}: expected positive values")
    rules = load_rules(args.rules)
    cohort = generate(CohortConfig(patients=args.patients, hours=args.hours, seed=args.seed))
    risk, model = score_offline(cohort.readings, args.checkpoint)
    events = [OutcomeEvent(e.patient_id, e.event_ts_ms) for e in cohort.events]
    # NEWS2-only is the established practice (its own rules file); model-only is the default's model rules.
    rule_sets = {"default": rules, "news2_only": load_rules(args.news2_rules), "model_only": rules.only("risk")}
    results = compare(risk, events, rule_sets, horizon_ms=int(args.horizon_hours * MS_PER_HOUR))
    context: dict[str, object] = {
        "command": f"wardwatch evaluate-alerts --patients {args.patients} --hours {args.hours:g} --seed {args.seed} "
        f"--horizon-hours {args.horizon_hours:g}",
        "cohort": f"{args.patients} patients, {args.hours:g} h, seed {args.seed}, {len(events)} deterioration events",
        "model": model,
        "rules": f"default {rules.source}; news2_only {args.news2_rules}; model_only = the default's model rules",
        "horizon_hours": args.horizon_hours,
    }
    Path(args.json).write_text(json.dumps({"context": context, "results": [q.to_dict() for q in results]}, indent=2) + "\n")
    Path(args.markdown).write_text(to_markdown(results, context))
    for q in results:
        log.info(
            "alert quality rules=%s alerts_per_patient_day=%.2f sensitivity=%s ppv=%s median_lead_time_h=%s",
            q.rules, q.alerts_per_patient_day, q.sensitivity, q.ppv, q.median_lead_time_h,
        )
    print(to_markdown(results, context))
    return 0
