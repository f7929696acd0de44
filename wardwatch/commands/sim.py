"""`wardwatch sim`: simulated wearables, live into Kafka or offline into a cohort directory."""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass

from runtime import logs
from runtime import metrics as metrics_module
from runtime.config import KafkaConfig, add_arguments, load, require, setting
from runtime.kafka.admin import ensure_topics
from runtime.kafka.clients import wait_for_broker
from runtime.service import stop_on_signals
from runtime.topics import SIM_EVENTS, VITALS_RAW, specs
from sim.cohort import CohortConfig, generate
from sim.live import live_start_ms, run_live, write_jsonl
from sim.output import write_cohort

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SimConfig(KafkaConfig):
    patients: int = setting(40, "number of simulated patients")
    hours: float = setting(12.0, "length of the simulated stay, hours of event time")
    seed: int = setting(0, "random seed: the same seed gives the same cohort, byte for byte")
    speed: float = setting(60.0, "live mode: event time runs this many times faster than the wall clock (0 = as fast as possible)")
    bad_rate: float = setting(0.0, "live mode: fraction of extra malformed payloads mixed in (exercises the dead-letter path)")
    output: str | None = setting(None, "offline mode: write the cohort to this directory instead of Kafka")
    jsonl: str | None = setting(None, "write the raw payloads live mode would send to this JSONL file instead of Kafka")
    metrics_port: int = setting(9101, "port for Prometheus /metrics (-1 = off)")

    def __post_init__(self) -> None:
        super().__post_init__()
        require(1 <= self.patients <= 1_000_000, f"--patients={self.patients}: expected 1-1000000")
        require(0 < self.hours <= 24 * 90, f"--hours={self.hours}: expected more than 0 and at most 2160")
        require(self.speed >= 0, f"--speed={self.speed}: expected 0 (as fast as possible) or more")
        require(0 <= self.bad_rate < 1, f"--bad-rate={self.bad_rate}: expected 0 <= rate < 1")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "sim",
        help="simulate wearables: live into vitals.raw, or a cohort to disk (--output DIR)",
        description="Simulated patients and wearables with ground-truth deterioration events. "
        "Live (default): readings into the vitals.raw topic at --speed times real time. "
        "Offline: --output DIR writes readings.jsonl, events.jsonl and summary.json.",
    )
    add_arguments(p, SimConfig)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    config = load(SimConfig, args)
    logs.setup(config.log_level, "sim")
    if config.output:
        cohort = generate(CohortConfig(patients=config.patients, hours=config.hours, seed=config.seed))
        out = write_cohort(cohort, config.output)
        print(f"cohort written: {out} ({len(cohort.readings)} readings, {len(cohort.events)} events)")
        return 0
    start = live_start_ms(config.hours, config.speed)
    cohort = generate(CohortConfig(patients=config.patients, hours=config.hours, seed=config.seed, start_ms=start))
    if config.jsonl:
        n = write_jsonl(cohort, config.jsonl, config.bad_rate)
        print(f"{n} raw payloads written to {config.jsonl}")
        return 0
    registry = metrics_module.new_registry()
    stream = metrics_module.StreamMetrics(registry, "sim")
    metrics_module.serve(registry, config.metrics_port)
    wait_for_broker(config.bootstrap_servers)
    ensure_topics(config.bootstrap_servers, specs(VITALS_RAW, SIM_EVENTS), config.partitions, config.replication_factor, config.topic_prefix)
    sent = stream.records_out.labels("sim", VITALS_RAW)
    log.info("sim live patients=%d hours=%.1f speed=%g", config.patients, config.hours, config.speed)
    run_live(
        cohort, config.bootstrap_servers, speed=config.speed, stop=stop_on_signals(), bad_rate=config.bad_rate,
        on_sent=sent.inc, topic_prefix=config.topic_prefix,
    )
    return 0
