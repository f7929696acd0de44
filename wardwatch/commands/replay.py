"""`wardwatch replay`: a cohort directory (imported or simulated) into vitals.raw, paced by event time.

    wardwatch replay cohorts/p12 --speed 60      # 48 h stays in 48 min; watch them on the ward view
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass
from pathlib import Path

from runtime.config import KafkaConfig, require, setting
from runtime.service import stop_on_signals
from wardwatch.replay import run_replay
from wardwatch.commands import raw_producer, settings_command

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReplayConfig(KafkaConfig):
    cohort: str = setting("", "cohort directory to replay (from `wardwatch import` or `wardwatch sim --output`)")
    speed: float = setting(60.0, "event time runs this many times faster than the wall clock (0 = as fast as possible)")
    metrics_port: int = setting(9102, "port for Prometheus /metrics (-1 = off)")

    def __post_init__(self) -> None:
        super().__post_init__()
        require(bool(self.cohort), "--cohort: a cohort directory is required")
        require((Path(self.cohort) / "readings.jsonl").is_file(), f"--cohort={self.cohort}: readings.jsonl missing (not a cohort directory)")
        require(self.speed >= 0, f"--speed={self.speed}: expected 0 (as fast as possible) or more")


def register(sub: argparse._SubParsersAction) -> None:
    """Add `wardwatch replay` to the CLI."""
    settings_command(
        sub,
        "replay",
        ReplayConfig,
        run,
        log_name="replay",
        help="replay a cohort directory (real or simulated) into vitals.raw, paced by event time",
        description="Every line of the cohort's readings.jsonl goes to vitals.raw keyed by patient, event times shifted "
        "so the replay ends at the wall clock; bad lines are sent as they are and dead-lettered by ingest. Events go to "
        "sim.events when their time comes. Ingest's --max-age-ms must cover the replayed span (0 switches it off).",
    )


def run(config: ReplayConfig) -> int:
    kafka, on_sent = raw_producer(config, "replay")
    sent = run_replay(config.cohort, kafka, speed=config.speed, stop=stop_on_signals(), topic_prefix=config.topic_prefix, on_sent=on_sent)
    print(f"replayed {sent} records from {config.cohort}")
    return 0
