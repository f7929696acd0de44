"""`wardwatch evaluate`: the model against NEWS2 on held-out simulator cohorts."""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
from pathlib import Path

from runtime import logs
from wardwatch.commands import deferred

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `wardwatch evaluate` to the CLI (PyTorch is imported only when it runs)."""
    deferred.register(
        subparsers,
        "evaluate",
        help="evaluate a checkpoint against NEWS2 on held-out cohorts (report + plots)",
        description="Generates cohorts from seeds never used in training (plus one with a shifted scenario mix), "
        "scores every reading at the full streaming cadence and compares the model with NEWS2: per-reading "
        "AUROC/AUPRC, event sensitivity, median lead time and alerts per patient-day at matched event "
        "sensitivity. Writes report.json, report.md and PNG plots to --out. The defaults reproduce the "
        "shipped report. Needs the training dependencies (PyTorch).",
        add_arguments=add_arguments,
        run=run,
    )


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The flags (imports PyTorch, for the alert rule's defaults)."""
    from inference.evaluate import AlertRule

    p.add_argument("--checkpoint", default="default", help="checkpoint directory, 'default' (the shipped one) or 'untrained'")
    p.add_argument("--out", default=None, help="report directory (default: CHECKPOINT/reports; ./evaluate-untrained for 'untrained')")
    p.add_argument("--seeds", default="1001,1002", help="comma-separated seeds of the held-out cohorts")
    p.add_argument("--shifted-seed", type=int, default=1003, help="seed of the shifted-mix cohort (-1 = none)")
    p.add_argument("--patients", type=int, default=200, help="patients per cohort")
    p.add_argument("--hours", type=float, default=48.0, help="hours of event time per stay")
    p.add_argument("--debounce", type=int, default=AlertRule.debounce, help="consecutive readings at/above threshold to raise an alert")
    p.add_argument("--refractory-minutes", type=float, default=AlertRule.refractory_minutes, help="no new alert this soon after a raise")
    p.add_argument("--window-hours", type=float, default=None, help="an alert active this long before an event detects it (default: the model's horizon)")
    p.add_argument("--log-level", default="INFO", help="logging level")


def run(args: argparse.Namespace) -> int:
    """Evaluate; exit code 0 on success, 2 on a bad setting or checkpoint."""
    from inference import checkpoint
    from inference.evaluate import AlertRule, evaluate_model, shifted_options
    from inference.model import untrained
    from inference.service import UNTRAINED_VERSION

    logs.setup(args.log_level, "evaluate")
    try:
        if args.checkpoint == "untrained":
            model, version = untrained(0), UNTRAINED_VERSION
            out = Path(args.out or "evaluate-untrained")
        else:
            path = checkpoint.default_checkpoint_path() if args.checkpoint == "default" else Path(args.checkpoint)
            model, version = checkpoint.load(path)
            out = Path(args.out) if args.out else path / "reports"
        seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    except (FileNotFoundError, ValueError) as exc:
        log.error("cannot evaluate: %s", exc)
        return 2
    cohorts: list[tuple[str, int, dict[str, object]]] = [(f"seed{s}", s, {}) for s in seeds]
    if args.shifted_seed >= 0:
        cohorts.append((f"shifted-seed{args.shifted_seed}", args.shifted_seed, shifted_options()))
    window = args.window_hours if args.window_hours is not None else model.config.horizon_hours
    rule = AlertRule(debounce=args.debounce, refractory_minutes=args.refractory_minutes, window_hours=window)
    command = "wardwatch evaluate" + "".join(" " + shlex.quote(a) for a in sys.argv[2:])
    report = evaluate_model(model, version, cohorts, patients=args.patients, hours=args.hours, rule=rule, out_dir=out, command=command)
    for name, c in report["cohorts"].items():
        m, n = c["model"], c["news2"]
        print(
            f"{name}: AUROC model {m['auroc']:.3f} vs NEWS2 {n['auroc']:.3f}; AUPRC {m['auprc']:.3f} vs {n['auprc']:.3f}; "
            f"sensitivity {m['events']['sensitivity']:.2f} vs {n['events']['sensitivity']:.2f}; "
            f"alerts/patient-day {m['events']['alerts_per_patient_day']:.2f} vs {n['events']['alerts_per_patient_day']:.2f}"
        )
    print(f"report: {out / 'report.md'}")
    return 0
