"""`python -m bench.core [--stage score|ingest|alerts] [--held N] [--batch N] [--reps N]`: one stage's core alone.

The stage's `process` on the quick input (60,000 readings of 2,000 patients, simulated; the
shipped model, default settings) in polls of `--batch` records, no Kafka and no profiler; a
fresh core per repetition. ingest takes the readings as raw records (time checks off, as for a
replay); alerts takes the risk records the scorer's core makes of them. `--held N` (score and
ingest) first passes one reading of each of N other patients through the core, untimed, a
minute before the input starts, so the measured batches run with that many patients in its
state (a ward of N). Not for alerts: patients silent while stream time moves on raise data-gap
alerts there, which would be measured instead. Prints each repetition's
records per second and the best: a quick before/after check of a change to a hot path
(`bench.hot_path` says where the scorer's time goes, `python -m bench` measures the services).
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from collections.abc import Callable

import orjson

from bench.common import cohort_input, in_records
from bench.stages import risk_records
from ingest.contract import Reading, encode_reading
from runtime.metrics import StreamMetrics, new_registry
from runtime.processor import Processor
from runtime.service import tune_gc
from runtime.topics import RISK, VITALS, VITALS_RAW

STAGES = ("score", "ingest", "alerts")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.core", description=__doc__)
    parser.add_argument("--stage", choices=STAGES, default="score")
    parser.add_argument("--held", type=int, default=0, help="patients already in the core's state (default 0)")
    parser.add_argument("--batch", type=int, default=2000, help="records per poll (default 2000)")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--checkpoint", default="default")
    args = parser.parse_args(argv)
    if args.held and args.stage == "alerts":
        parser.error("--held is for --stage score or ingest (held patients would raise data-gap alerts)")
    data = cohort_input(60_000, 2_000)
    build = builder(args.stage, args.checkpoint)
    # alerts: the risk records the scorer's core makes of the same readings
    records = in_records(risk_records(data, args.checkpoint) if args.stage == "alerts" else data.records)
    start_ms = min(int(orjson.loads(r.value or b"{}")["ts_ms"]) for r in records)
    held = in_records(held_readings(args.held, start_ms - 60_000))
    topic = {"score": VITALS, "ingest": VITALS_RAW, "alerts": RISK}[args.stage]
    held = [dataclasses.replace(r, topic=topic) for r in held]
    records = [dataclasses.replace(r, topic=topic) for r in records]
    tune_gc()
    rates = []
    for _ in range(args.reps):
        core = build()
        for i in range(0, len(held), 10_000):
            core.process(held[i : i + 10_000])
        started = time.perf_counter()
        for i in range(0, len(records), args.batch):
            core.process(records[i : i + args.batch])
        rates.append(len(records) / (time.perf_counter() - started))
    what = "risk records" if args.stage == "alerts" else "readings"
    print(f"{args.stage} {what}/s ({args.held:,} patients held, polls of {args.batch:,}): "
          f"{', '.join(f'{r:,.0f}' for r in rates)}; best {max(rates):,.0f}")
    return 0


def builder(stage: str, checkpoint: str) -> Callable[[], Processor]:
    """A function making a fresh core of `stage` with its service's defaults."""
    metrics = lambda: StreamMetrics(new_registry(), stage)  # noqa: E731
    if stage == "ingest":
        from ingest.processor import IngestProcessor
        from ingest.validate import limits

        return lambda: IngestProcessor(metrics(), limits(0, 0))
    if stage == "alerts":
        from alerts.rules import load_rules
        from alerts.service import build_alerts

        rules = load_rules()
        return lambda: build_alerts(rules, metrics())
    from inference.service import ScoreConfig, build_scorer, load_model

    model, version = load_model(checkpoint)
    return lambda: build_scorer(ScoreConfig(metrics_port=-1), metrics(), model, version)


def held_readings(n: int, ts_ms: int) -> list[tuple[bytes, bytes | None]]:
    """One reading at `ts_ms` of each of `n` patients other than the input's."""
    out: list[tuple[bytes, bytes | None]] = []
    for i in range(n):
        patient = f"held-{i:07d}"
        reading = Reading(patient, f"dev-{patient}", 0, ts_ms, 80.0, 16.0, 97.0, 37.0, 120.0, 80.0, False, "A")
        out.append((patient.encode(), encode_reading(reading)))
    return out


if __name__ == "__main__":
    raise SystemExit(main())
