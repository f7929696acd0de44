"""`wardwatch train`: train the risk model on simulator cohorts and write a checkpoint."""

from __future__ import annotations

import argparse
import dataclasses
import logging
from typing import Any

from runtime import logs
from wardwatch.commands import deferred

log = logging.getLogger(__name__)

HELP = {
    "out": "checkpoint directory to write (inference/checkpoints/default is the shipped one)",
    "patients": "patients in the training cohort",
    "hours": "hours of event time per simulated stay (training and validation cohorts)",
    "seed": "training cohort seed; also seeds weight initialisation and batch order",
    "val_patients": "patients in the validation cohort (early stopping)",
    "val_seed": "validation cohort seed (must differ from --seed)",
    "cell": "recurrent cell: gru or lstm",
    "hidden": "hidden units",
    "horizon_hours": "predict a deterioration event within this many hours",
    "trend_hours": "time constants (hours, comma-separated) of per-vital running means in the state; '' for none",
    "epochs": "maximum epochs",
    "patience": "stop after this many epochs without a better validation AUROC",
    "batch": "patients per mini-batch",
    "chunk": "readings per truncated-BPTT chunk (state carries across chunks, gradients do not)",
    "lr": "AdamW learning rate",
    "weight_decay": "AdamW weight decay",
    "max_minutes": "stop after the epoch that passes this many minutes of wall time",
    "device": "torch device: auto (a GPU if present, else CPU), cpu, cuda, ...",
    "threads": "PyTorch CPU threads (0 = PyTorch's default)",
    "cohorts": "comma-separated cohort directories (from `wardwatch import` or `wardwatch sim --output`) to train on as well; "
    "their patients are split into train/val/test by --split-salt",
    "split_salt": "salt of the patient-level split hash (fixed: the same salt gives the same split everywhere)",
    "val_fraction": "fraction of each cohort directory's patients in the validation split (early stopping, calibration)",
    "test_fraction": "fraction of each cohort directory's patients held out for testing (never read by training)",
    "elapsed": "give the model hours since the stay's first reading (kept in the state)",
    "real_batch": "patients per mini-batch from cohort directories (hourly stays are short)",
    "source_weights": "SOURCE=W,...: multiply that training source's loss by W (sources: sim, or a cohort's summary source such as physionet2019)",
    "ema": "0 = off; else judge epochs on (and keep) an exponential moving average of the weights with this decay per update, e.g. 0.998",
    "calibrate_on": "comma-separated sources whose validation readings fit the Platt scaling (default: the real sources with timed events, else sim)",
    "init_from": "start from this checkpoint directory ('default': the shipped one) instead of random weights; keeps its normalisation",
}


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `wardwatch train` to the CLI (PyTorch is imported only when it runs)."""
    deferred.register(
        subparsers,
        "train",
        help="train the recurrent risk model (truncated BPTT) on simulated and/or imported cohorts",
        description="Generates a training and a validation cohort with the simulator (--patients 0: none) and reads "
        "any --cohorts directories (split by patient into train/val/test; test is never read), trains the GRU-D-style "
        "risk model with truncated backpropagation through time, keeps the epoch with the best validation "
        "AUROC (mean over sources), Platt-calibrates on the real validation patients and writes weights, the step exported to ONNX, normalisation, config, metrics and a manifest "
        "to --out. The shipped checkpoint's exact command is in its MODEL_CARD.md. Needs the training dependencies (PyTorch).",
        add_arguments=add_arguments,
        run=run,
    )


def add_arguments(p: argparse.ArgumentParser) -> None:
    """One flag per TrainConfig field (imports PyTorch)."""
    from inference.train import TrainConfig

    for f in dataclasses.fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        kwargs: dict[str, Any] = {"default": f.default, "type": type(f.default), "help": HELP[f.name]}
        if f.name == "cell":
            kwargs["choices"] = ("gru", "lstm")
        if isinstance(f.default, bool):
            kwargs = {"default": f.default, "action": argparse.BooleanOptionalAction, "help": HELP[f.name]}
        p.add_argument(flag, dest=f.name, **kwargs)
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.add_argument("--log-level", default="INFO", help="logging level")


def run(args: argparse.Namespace) -> int:
    """Train; exit code 0 on success, 2 on a bad setting."""
    from inference.train import TrainConfig, train

    logs.setup(args.log_level, "train")
    try:
        config = TrainConfig(**{f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)})
    except ValueError as exc:
        log.error("bad setting: %s", exc)
        return 2
    version, metrics = train(config, progress=not args.no_progress)
    val, news2 = metrics["validation"], metrics["validation_news2"]
    parts = "; ".join(f"{source}: AUROC {m['auroc']:.3f} (NEWS2 {news2[source]['auroc']:.3f}), AUPRC {m['auprc']:.3f} "
                      f"(NEWS2 {news2[source]['auprc']:.3f})" for source, m in val.items())
    print(f"model {version} written to {config.out}: validation {parts}; best epoch {metrics['best_epoch']}, "
          f"{metrics['training_seconds']:.0f} s")
    return 0
