"""`wardwatch evaluate`: the model against NEWS2 on held-out simulator cohorts or on cohort directories."""

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
        description="Without --cohort: generates simulator cohorts from seeds never used in training (plus one with a "
        "shifted scenario mix). With --cohort DIR (from `wardwatch import` or `wardwatch sim --output`): scores that "
        "cohort, by default only its patients in the checkpoint's held-out test split. Scores every reading as the "
        "streaming scorer would and compares the model with NEWS2: per-reading AUROC/AUPRC with 95%% intervals from "
        "resampling patients, calibration (reliability, Brier); on simulator cohorts also the alerts: the scorer's core "
        "and the alert engine over the cohort, the shipped rules against NEWS2-only and model-only rules (alerts per "
        "patient-day, event sensitivity, PPV, median lead time; the same numbers as `wardwatch evaluate-alerts`); where the cohort has outcomes, in-hospital death from the last risk of each "
        "stay against max NEWS2, SAPS-I and SOFA. Writes report.json, report.md and PNG plots to --out. "
        "Needs the training dependencies (PyTorch).",
        add_arguments=add_arguments,
        run=run,
    )


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The flags (imports PyTorch: a missing training install is reported here)."""
    import torch  # noqa: F401

    from wardwatch.commands.evaluate_alerts import add_rule_arguments

    p.add_argument("--checkpoint", default="default", help="checkpoint directory, 'default' (the shipped one) or 'untrained'")
    p.add_argument("--out", default=None, help="report directory (default: CHECKPOINT/reports; ./evaluate-untrained for 'untrained')")
    p.add_argument("--cohort", action="append", default=[], help="a cohort directory to evaluate (repeatable); replaces the simulator cohorts")
    p.add_argument("--split", default="test", choices=("test", "val", "train", "all"),
                   help="--cohort: which of the checkpoint's patient splits to score ('all' for a data set it never trained on)")
    p.add_argument("--replicates", type=int, default=200, help="bootstrap replicates for the 95%% intervals")
    p.add_argument("--seeds", default="1001,1002", help="comma-separated seeds of the held-out cohorts")
    p.add_argument("--shifted-seed", type=int, default=1003, help="seed of the shifted-mix cohort (-1 = none)")
    p.add_argument("--patients", type=int, default=200, help="patients per cohort")
    p.add_argument("--hours", type=float, default=48.0, help="hours of event time per stay")
    add_rule_arguments(p, "--alert-horizon-hours")
    p.add_argument("--log-level", default="INFO", help="logging level")


def run(args: argparse.Namespace) -> int:
    """Evaluate; exit code 0 on success, 2 on a bad setting or checkpoint."""
    from inference import checkpoint
    from inference.evaluate import evaluate_cohort_dirs, shifted_options
    from inference.model import untrained
    from inference.service import UNTRAINED_VERSION, load_model
    from wardwatch.commands.evaluate_alerts import alert_settings
    from wardwatch.evaluation import CohortDirAlerts, evaluate_simulated

    logs.setup(args.log_level, "evaluate")
    try:
        if args.checkpoint == "untrained":
            model, version = untrained(0), UNTRAINED_VERSION
            out = Path(args.out or "evaluate-untrained")
            split_rule = None
        else:
            path = checkpoint.default_checkpoint_path() if args.checkpoint == "default" else Path(args.checkpoint)
            model, version = checkpoint.load(path)
            out = Path(args.out) if args.out else path / "reports"
            split_rule = checkpoint.load_metrics(path).get("split")
        seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
        for cohort in args.cohort:
            if not (Path(cohort) / "readings.npz").is_file():
                raise FileNotFoundError(f"{cohort}: not a cohort directory (readings.npz missing)")
        if args.cohort and args.split != "all" and split_rule is None:
            raise ValueError(f"--split {args.split}: the checkpoint records no patient split; use --split all")
    except (FileNotFoundError, ValueError) as exc:
        log.error("cannot evaluate: %s", exc)
        return 2
    command = "wardwatch evaluate" + "".join(" " + shlex.quote(a) for a in sys.argv[2:])
    step, step_version = load_model(args.checkpoint)  # the scorer's runtime, for the alerts
    if step_version != version:
        log.error("cannot evaluate: the checkpoint's exported step is %s, its weights %s", step_version, version)
        return 2
    settings = alert_settings(args)
    if args.cohort:
        report = evaluate_cohort_dirs(model, version, args.cohort, split=args.split, split_rule=split_rule,
                                      out_dir=out, command=command, replicates=args.replicates,
                                      alerts=CohortDirAlerts(step, version, settings))
        for name, c in report["cohorts"].items():
            if "model" in c:
                m, n, d = c["model"], c["news2"], c["model_minus_news2"]
                print(f"{name}: per-reading AUROC model {m['auroc']:.3f} [{m['auroc_ci'][0]:.3f}, {m['auroc_ci'][1]:.3f}] vs NEWS2 "
                      f"{n['auroc']:.3f} [{n['auroc_ci'][0]:.3f}, {n['auroc_ci'][1]:.3f}]; difference {d['auroc_difference']:+.3f} "
                      f"[{d['auroc_difference_ci'][0]:+.3f}, {d['auroc_difference_ci'][1]:+.3f}]")
            if "outcomes" in c:
                o = c["outcomes"]["scores"]
                print(f"{name}: in-hospital death AUROC last risk {o['model_last_risk']['auroc']:.3f} "
                      f"[{o['model_last_risk']['auroc_ci'][0]:.3f}, {o['model_last_risk']['auroc_ci'][1]:.3f}] vs max NEWS2 "
                      f"{o['news2_max']['auroc']:.3f}" + "".join(f"; {k} {o[k]['auroc']:.3f}" for k in ("saps_i", "sofa") if k in o))
            if "alerts" in c:
                a = c["alerts"]
                print(f"{name}: alerts/patient-day model-only rules {a['model_only']['alerts_per_patient_day']:.2f} vs NEWS2-only "
                      f"{a['news2_only']['alerts_per_patient_day']:.2f} (sensitivity {a['model_only']['sensitivity']} vs "
                      f"{a['news2_only']['sensitivity']})")
        print(f"report: {out / 'report.md'}")
        return 0
    cohorts: list[tuple[str, int, dict[str, object]]] = [(f"seed{s}", s, {}) for s in seeds]
    if args.shifted_seed >= 0:
        cohorts.append((f"shifted-seed{args.shifted_seed}", args.shifted_seed, shifted_options()))
    report = evaluate_simulated(model, step, version, cohorts, patients=args.patients, hours=args.hours, settings=settings,
                                out_dir=out, command=command)
    for name, c in report["cohorts"].items():
        m, n, a = c["model"], c["news2"], c["alerts"]
        print(
            f"{name}: AUROC model {m['auroc']:.3f} vs NEWS2 {n['auroc']:.3f}; AUPRC {m['auprc']:.3f} vs {n['auprc']:.3f}; "
            f"alerts/patient-day model-only rules {a['model_only']['alerts_per_patient_day']:.2f} vs NEWS2-only "
            f"{a['news2_only']['alerts_per_patient_day']:.2f} (sensitivity {a['model_only']['sensitivity']} vs {a['news2_only']['sensitivity']})"
        )
    print(f"report: {out / 'report.md'}")
    return 0
