"""`wardwatch score`: the stateful scorer (vitals -> risk), exactly-once."""

from __future__ import annotations

import argparse

from inference.service import ScoreConfig, build_scorer, load_model
from inference.processor import STAGE
from runtime.kafka.client import COOPERATIVE_STICKY
from runtime.service import run_stream
from wardwatch import __version__
from wardwatch.commands import settings_command


def register(sub: argparse._SubParsersAction) -> None:
    settings_command(
        sub,
        "score",
        ScoreConfig,
        run,
        log_name=STAGE,
        help="score every reading with the recurrent model and NEWS2 (vitals -> risk)",
        description="Keeps each patient's recurrent state across messages (restored from scorer.state on "
        "partition assignment) and scores readings in batches across patients. Exactly-once via Kafka "
        "transactions. File mode: --input VITALS.jsonl --output RISK.jsonl.",
    )


def run(config: ScoreConfig) -> int:
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
