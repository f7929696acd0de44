"""`wardwatch score`: the stateful scorer (vitals -> risk), exactly-once."""

from __future__ import annotations

import argparse

from inference.service import ScoreConfig, build_scorer, load_model
from inference.processor import STAGE
from runtime import logs
from runtime.config import add_arguments, load
from runtime.kafka.client import COOPERATIVE_STICKY
from runtime.service import run_stream
from wardwatch import __version__


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "score",
        help="score every reading with the recurrent model and NEWS2 (vitals -> risk)",
        description="Keeps each patient's recurrent state across messages (restored from scorer.state on "
        "partition assignment) and scores readings in batches across patients. Exactly-once via Kafka "
        "transactions. File mode: --input VITALS.jsonl --output RISK.jsonl.",
    )
    add_arguments(p, ScoreConfig)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    config = load(ScoreConfig, args)
    logs.setup(config.log_level, STAGE)
    model, version = load_model(config.checkpoint, config.model_threads)
    return run_stream(
        config,
        lambda metrics: build_scorer(config, metrics, model, version),
        stage=STAGE,
        # Cooperative sticky (KIP-429): a rebalance revokes only the partitions that move, so
        # the others keep scoring and only moved state is restored.
        assignor=COOPERATIVE_STICKY,
        build_info={"version": __version__, "model": version},
    )
