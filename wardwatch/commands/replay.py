"""`wardwatch replay`: a cohort directory (imported or simulated) into vitals.raw, paced by event time.

    wardwatch replay cohorts/p12 --speed 60      # 48 h stays in 48 min; watch them on the ward view
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass
from pathlib import Path

from runtime import logs
from runtime import metrics as metrics_module
from runtime.config import KafkaConfig, add_arguments, load, require, setting
from runtime.kafka.admin import ensure_topics
from runtime.kafka.client import from_config, wait_for_broker
from runtime.service import stop_on_signals
from runtime.topics import SIM_EVENTS, VITALS_RAW, specs
from wardwatch.replay import run_replay

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
    p = sub.add_parser(
        "replay",
        help="replay a cohort directory (real or simulated) into vitals.raw, paced by event time",
        description="Every line of the cohort's readings.jsonl goes to vitals.raw keyed by patient, event times shifted "
        "so the replay ends at the wall clock; bad lines are sent as they are and dead-lettered by ingest. Events go to "
        "sim.events when their time comes. Ingest's --max-age-ms must cover the replayed span (0 switches it off).",
    )
    add_arguments(p, ReplayConfig)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    config = load(ReplayConfig, args)
    logs.setup(config.log_level, "replay")
    registry = metrics_module.new_registry()
    stream = metrics_module.StreamMetrics(registry, "replay")
    metrics_module.serve(registry, config.metrics_port)
    kafka = from_config(config)
    wait_for_broker(kafka)
    ensure_topics(kafka, specs(VITALS_RAW, SIM_EVENTS), config.partitions, config.replication_factor, config.topic_prefix)
    sent = run_replay(config.cohort, kafka, speed=config.speed, stop=stop_on_signals(),
                      topic_prefix=config.topic_prefix, on_sent=stream.records_out.labels("replay", VITALS_RAW).inc)
    print(f"replayed {sent} records from {config.cohort}")
    return 0
