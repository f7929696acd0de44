"""`wardwatch evaluate-alerts`: alert quality of the rules on a held-out simulated cohort."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from alerts.quality import to_markdown
from runtime import logs
from runtime.config import ConfigError
from sim.cohort import CohortConfig, generate
from wardwatch.evaluation import AlertSettings, alert_quality

log = logging.getLogger(__name__)


def add_rule_arguments(p: argparse.ArgumentParser, horizon_flag: str) -> None:
    """The rule sets compared and the catching horizon (`wardwatch evaluate` shares them)."""
    defaults = AlertSettings()
    p.add_argument("--rules", default=defaults.rules, help="alert rules file [default: the shipped one]")
    p.add_argument("--news2-rules", default=defaults.news2_rules, help="NEWS2-only baseline rules [default: alerts/news2_rules.yaml]")
    p.add_argument(horizon_flag, type=float, default=defaults.horizon_hours, dest="alert_horizon_hours",
                   help=f"an alert this long before an event counts [default {defaults.horizon_hours:g}]")


def alert_settings(args: argparse.Namespace) -> AlertSettings:
    if args.alert_horizon_hours <= 0:
        raise ConfigError(f"alert horizon {args.alert_horizon_hours}: expected a positive number of hours")
    return AlertSettings(rules=args.rules, news2_rules=args.news2_rules, horizon_hours=args.alert_horizon_hours)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate-alerts",
        help="alert quality on a held-out cohort: alerts per patient-day, sensitivity, PPV, lead time",
        description="Simulates a held-out cohort (a seed not used for training), scores it offline with the "
        "scorer's core (model risk and NEWS2), runs the alert rules over the risk records and compares the "
        "rules as configured with their NEWS2-only and model-only subsets. Writes JSON and Markdown.",
    )
    add_rule_arguments(p, "--horizon-hours")
    p.add_argument("--checkpoint", default="default", help="model checkpoint ('default' = shipped, 'untrained')")
    p.add_argument("--patients", type=int, default=100, help="patients in the cohort [default 100]")
    p.add_argument("--hours", type=float, default=24.0, help="hours of event time per patient [default 24]")
    p.add_argument("--seed", type=int, default=1001, help="cohort seed; keep it apart from training seeds [default 1001]")
    p.add_argument("--json", default="alerts-quality.json", help="JSON report path [default alerts-quality.json]")
    p.add_argument("--markdown", default="alerts-quality.md", help="Markdown report path [default alerts-quality.md]")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from inference.service import load_model  # the model runtime only when it runs

    logs.setup("INFO", "evaluate-alerts")
    if args.patients < 1 or args.hours <= 0:
        raise ConfigError(f"--patients={args.patients} --hours={args.hours}: expected positive values")
    settings = alert_settings(args)
    cohort = generate(CohortConfig(patients=args.patients, hours=args.hours, seed=args.seed))
    model, version = load_model(args.checkpoint)
    results = alert_quality(cohort, model, version, settings)
    context: dict[str, object] = {
        "command": f"wardwatch evaluate-alerts --patients {args.patients} --hours {args.hours:g} --seed {args.seed} "
        f"--horizon-hours {settings.horizon_hours:g}",
        "cohort": f"{args.patients} patients, {args.hours:g} h, seed {args.seed}, {len(cohort.events)} deterioration events",
        "model": version,
        "rules": settings.describe(),
        "horizon_hours": settings.horizon_hours,
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
