"""`wardwatch sim`: simulated wearables, live into Kafka, offline into a cohort directory, or a plot.

    wardwatch sim --patients 500 --hours 48 --seed 1 --output cohort/      # offline cohort
    wardwatch sim --patients 60 --hours 24 --seed 7 --plot docs/sim_examples.png
    wardwatch sim --speed 60                                               # live into vitals.raw
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass

from runtime.config import KafkaConfig, require, setting
from runtime.service import stop_on_signals
from sim.cohort import DEFAULT_START_MS, CohortConfig, generate
from sim.live import live_start_ms, run_live, write_jsonl
from sim.output import write_cohort
from wardwatch.commands import raw_producer, settings_command

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SimConfig(KafkaConfig):
    patients: int = setting(40, "number of simulated patients")
    hours: float = setting(12.0, "length of the simulated stay, hours of event time")
    seed: int = setting(0, "random seed: the same seed gives the same cohort, byte for byte")
    speed: float = setting(60.0, "live mode: event time runs this many times faster than the wall clock (0 = as fast as possible)")
    bad_rate: float = setting(0.0, "live mode: fraction of extra malformed payloads mixed in (exercises the dead-letter path)")
    deteriorating_fraction: float = setting(0.25, "fraction of patients who deteriorate (enriched; real wards ~0.02 per patient-day)")
    interval_s: float = setting(60.0, "device reporting interval for HR, RR and SpO2, seconds")
    output: str | None = setting(None, "offline mode: write the cohort to this directory instead of Kafka")
    columnar: bool = setting(True, "offline mode: also write the columnar copy readings.npz")
    plot: str | None = setting(None, "draw a few example patients to this PNG file (needs matplotlib) instead of Kafka")
    plot_patients: int = setting(6, "how many example patients --plot draws")
    jsonl: str | None = setting(None, "write the raw payloads live mode would send to this JSONL file instead of Kafka")
    metrics_port: int = setting(9101, "port for Prometheus /metrics (-1 = off)")

    def __post_init__(self) -> None:
        super().__post_init__()
        require(1 <= self.patients <= 1_000_000, f"--patients={self.patients}: expected 1-1000000")
        require(0 < self.hours <= 24 * 90, f"--hours={self.hours}: expected more than 0 and at most 2160")
        require(self.speed >= 0, f"--speed={self.speed}: expected 0 (as fast as possible) or more")
        require(0 <= self.bad_rate < 1, f"--bad-rate={self.bad_rate}: expected 0 <= rate < 1")
        require(0 <= self.deteriorating_fraction <= 1, f"--deteriorating-fraction={self.deteriorating_fraction}: expected 0-1")
        require(1 <= self.interval_s <= 3600, f"--interval-s={self.interval_s}: expected 1-3600 seconds")
        require(self.hours * 3600 >= self.interval_s, f"--hours={self.hours}: expected at least one --interval-s={self.interval_s}")
        require(1 <= self.plot_patients <= 20, f"--plot-patients={self.plot_patients}: expected 1-20")

    def cohort(self, start_ms: int = DEFAULT_START_MS) -> CohortConfig:
        """The cohort these settings describe."""
        return CohortConfig(patients=self.patients, hours=self.hours, seed=self.seed, start_ms=start_ms,
                            interval_s=self.interval_s, deteriorating_fraction=self.deteriorating_fraction)


def register(sub: argparse._SubParsersAction) -> None:
    settings_command(
        sub,
        "sim",
        SimConfig,
        run,
        log_name="sim",
        help="simulate wearables: live into vitals.raw, a cohort to disk (--output DIR), or a plot (--plot PNG)",
        description="Simulated patients and wearables with ground-truth deterioration events. "
        "Live (default): readings into the vitals.raw topic at --speed times real time. "
        "Offline: --output DIR writes readings.jsonl, events.jsonl, summary.json and readings.npz. "
        "--plot FILE.png draws a few example patients (with --output, both).",
    )


def run(config: SimConfig) -> int:
    if config.output or config.plot:
        cohort = generate(config.cohort())
        if config.output:
            out = write_cohort(cohort, config.output, columnar=config.columnar)
            print(f"cohort written: {out} ({len(cohort.columns)} readings, {len(cohort.events)} events)")
        if config.plot:
            from sim.plot import plot_examples  # matplotlib only when asked for

            print(f"plot written: {plot_examples(cohort, config.plot, config.plot_patients)}")
        return 0
    start = live_start_ms(config.hours, config.speed)
    cohort = generate(config.cohort(start))
    if config.jsonl:
        n = write_jsonl(cohort, config.jsonl, config.bad_rate)
        print(f"{n} raw payloads written to {config.jsonl}")
        return 0
    kafka, on_sent = raw_producer(config, "sim")
    log.info("sim live patients=%d hours=%.1f speed=%g", config.patients, config.hours, config.speed)
    run_live(cohort, kafka, speed=config.speed, stop=stop_on_signals(), bad_rate=config.bad_rate, on_sent=on_sent,
             topic_prefix=config.topic_prefix)
    return 0
