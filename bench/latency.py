"""Scenario 5: event-to-score latency at fixed offered loads.

Definition: from the input record's Kafka CreateTime (set by the bench's producer when it
sends the reading, wall clock) to the moment a read_committed consumer receives the `risk`
record for it (wall clock, same host). The scorer copies the input's timestamp onto the risk
record, so each risk record carries its own start time. This includes the producer's linger
(5 ms), the scorer's poll, scoring, the transaction commit and the consumer's fetch.

Each load gets a fresh set of topics and a fresh scorer process; a warm-up of a few hundred
readings is scored before the paced phase starts, so start-up and the first assignment are
not counted.

Where the time goes: the scorer's own metrics, scraped before and after the paced phase, give
its batches in that phase: how many records each held, how long the core took on one and how
long its transaction took (from the first output handed to the producer to the commit's
return). A record waits for the batch in progress to end, then its own batch's core and commit,
so at a steady load the event-to-score latency is about one and a half such cycles.

`python -m bench.latency` runs only this scenario, on each client, and writes
bench/results/latency.json and latency.md.
"""

from __future__ import annotations

import re
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka import Producer

from bench import scorer
from bench.common import (Input, Observer, _free_port, broker, cohort_input, create_topics, fresh_prefix, logger, metrics_text, percentiles,
                          producer, run_header, run_parser, run_record, spawn, stop, write_results)
from runtime.kafka.client import CLIENTS
from runtime.topics import RISK, VITALS, VITALS_DLQ

WARMUP = 300
TICK_S = 0.005
# Most new patients first appear in the first seconds of the paced phase; reported separately.
STEADY_AFTER_S = 2.0


@dataclass(frozen=True)
class LatencyResult:
    offered_per_s: int
    achieved_offered_per_s: float
    achieved_scored_per_s: float
    sent: int
    scored: int
    event_to_score_ms: dict[str, float]
    steady_event_to_score_ms: dict[str, float]  # the same, without the paced phase's first STEADY_AFTER_S
    loop: dict[str, float] | None = None  # the scorer's batches in the paced phase (`loop_summary`); None if not scraped

    def as_dict(self) -> dict[str, object]:
        return {"offered_per_s": self.offered_per_s, "achieved_offered_per_s": round(self.achieved_offered_per_s, 1),
                "achieved_scored_per_s": round(self.achieved_scored_per_s, 1), "sent": self.sent, "scored": self.scored,
                "event_to_score_ms": self.event_to_score_ms, "steady_event_to_score_ms": self.steady_event_to_score_ms,
                "steady_after_s": STEADY_AFTER_S, "loop": self.loop}


# (sum, count) of each histogram of the loop's batches, in the units the summary reports
_HISTOGRAMS = {"records": ("wardwatch_batch_size_records", 1.0), "core_ms": ("wardwatch_batch_duration_seconds", 1000.0),
               "commit_ms": ("wardwatch_commit_duration_seconds", 1000.0)}


def loop_counts(text: str) -> dict[str, tuple[float, float]]:
    """(sum, count) of the batch-size, core-time and commit-time histograms in a /metrics text."""
    out = {}
    for name, (metric, scale) in _HISTOGRAMS.items():
        total = re.search(rf"^{metric}_sum\{{[^}}]*\}} (\S+)$", text, re.M)
        count = re.search(rf"^{metric}_count\{{[^}}]*\}} (\S+)$", text, re.M)
        if total and count:
            out[name] = (float(total.group(1)) * scale, float(count.group(1)))
    return out


def loop_summary(before: dict[str, tuple[float, float]], after: dict[str, tuple[float, float]]) -> dict[str, float] | None:
    """Mean records, core ms and commit ms a batch between two scrapes, and the batches counted.
    None without batches in between, or if a scrape failed (no batch-size histogram)."""
    if "records" not in before or "records" not in after:
        return None
    batches = after["records"][1] - before["records"][1]
    if batches <= 0:
        return None
    out = {"batches": batches}
    for name in _HISTOGRAMS:  # a histogram without a series yet counts as empty
        (sum0, n0), (sum1, n1) = before.get(name, (0.0, 0.0)), after.get(name, (0.0, 0.0))
        out[f"mean_{name}"] = round((sum1 - sum0) / (n1 - n0), 2) if n1 > n0 else float("nan")
    return out


def _scrape(port: int) -> dict[str, tuple[float, float]]:
    text = metrics_text(port, timeout_s=5)
    return loop_counts(text) if text is not None else {}


def run(bootstrap: str, data: Input, command: list[str], rate: int, seconds: float, logdir: Path) -> LatencyResult:
    """One scorer process; `rate` readings/s for `seconds` after a warm-up."""
    needed = WARMUP + int(rate * seconds)
    if len(data.records) < needed:
        raise ValueError(f"latency at {rate}/s for {seconds}s needs {needed} readings, input has {len(data.records)}")
    prefix = fresh_prefix(f"latency{rate}")
    create_topics(bootstrap, prefix)
    observer = Observer(bootstrap, [prefix + RISK, prefix + VITALS_DLQ])
    args = [a.format(prefix=prefix, instance=f"latency{rate}") for a in command]
    port = _free_port()
    if "--metrics-port" in args:
        args[args.index("--metrics-port") + 1] = str(port)
    else:
        args += ["--metrics-port", str(port)]
    process = spawn(args, logdir / f"latency-{rate}.log")
    # One producer for the warm-up and the paced phase: a fresh one would spend its first few
    # hundred milliseconds connecting and getting a producer id, and the readings it stamped
    # meanwhile would measure the load generator's start-up, not the scorer.
    paced_producer = producer(bootstrap)
    try:
        for key, value in data.records[:WARMUP]:
            paced_producer.produce(prefix + VITALS, key=key, value=value)
        paced_producer.flush(30)
        observer.wait_for(WARMUP, 120, stall_s=120)
        if observer.seen.count < WARMUP:
            raise RuntimeError(f"latency {rate}/s: warm-up not scored (process rc={process.poll()}); see {logdir}")
        before = _scrape(port)
        start_ms = int(time.time() * 1000)
        sent, elapsed = _paced(paced_producer, prefix + VITALS, data.records[WARMUP:needed], rate, seconds)
        observer.wait_for(WARMUP + sent, 60, stall_s=15)
        loop = loop_summary(before, _scrape(port))
    finally:
        stop([process])
        observer.close()
    seen = observer.seen
    paced = [(r, c) for r, c in zip(seen.receive_s, seen.create_ms) if c >= start_ms]
    latencies = [r * 1000.0 - c for r, c in paced]
    steady = [r * 1000.0 - c for r, c in paced if c >= start_ms + STEADY_AFTER_S * 1000]
    scored_window = (max(r for r, _ in paced) - start_ms / 1000.0) if paced else 0.0
    return LatencyResult(rate, sent / elapsed, len(paced) / scored_window if scored_window > 0 else 0.0,
                         sent, len(paced), percentiles(latencies), percentiles(steady), loop)


def _paced(p: Producer, topic: str, records, rate: int, seconds: float) -> tuple[int, float]:  # noqa: ANN001
    """Send at `rate`/s in 5 ms ticks (each record stamped when sent); returns (sent, seconds)."""
    started = time.perf_counter()
    sent = 0
    total = min(len(records), int(rate * seconds))
    while sent < total:
        due = min(total, int((time.perf_counter() - started) * rate) + 1)
        while sent < due:
            key, value = records[sent]
            try:
                p.produce(topic, key=key, value=value)
            except BufferError:
                p.poll(0.01)
                continue
            sent += 1
        p.poll(0)
        time.sleep(TICK_S)
    elapsed = time.perf_counter() - started
    p.flush(30)
    return sent, elapsed


log = logger("bench.latency")


@dataclass(frozen=True)
class Size:
    rates: tuple[int, ...]
    seconds: float
    readings: int
    patients: int


# `python -m bench` runs these loads too, on its own input of the same size (tests/test_bench_latency.py).
SIZES = {"quick": Size(rates=(1_000, 5_000), seconds=10, readings=60_000, patients=2_000),
         "full": Size(rates=(1_000, 5_000, 10_000), seconds=15, readings=200_000, patients=10_000)}
NOTE = ("Event-to-score: from the reading's Kafka CreateTime (the bench's producer) to a read_committed consumer "
        "receiving its risk record, same host; 'steady' leaves out the paced phase's first 2 s. Batches: the scorer's "
        "own metrics over the paced phase; core = the scorer's work on a batch, commit = from handing its outputs to "
        "the producer to the transaction's commit returning (offsets and commit are round trips to the broker).")
HEADER = ["| client | offered/s | achieved offered/s | achieved scored/s | p50 ms | p99 ms | max ms | scored | "
          "steady p50 / p99 / max ms | batches | records a batch | core ms a batch | commit ms a batch |",
          "|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|"]


def table_rows(runs: list[dict]) -> list[str]:
    """The latency table's rows (`HEADER` above them), one per client and load."""
    lines = []
    for run in runs:
        e, st, lp = run["event_to_score_ms"], run["steady_event_to_score_ms"], run.get("loop") or {}
        batch = " | ".join(str(lp.get(k, "")) for k in ("mean_records", "mean_core_ms", "mean_commit_ms"))
        lines.append(f"| {run.get('client', 'kafka-python')} | {run['offered_per_s']:,} | {run['achieved_offered_per_s']:,} "
                     f"| {run['achieved_scored_per_s']:,} | {e['p50']} | {e['p99']} | {e['max']} | {run['scored']:,} "
                     f"| {st['p50']} / {st['p99']} / {st['max']} | {int(lp['batches']) if lp else ''} | {batch} |")
    return lines


def markdown(r: dict) -> str:
    lines = [
        *run_header(r, "Event-to-score latency at fixed offered loads", " (`bench.common.speed_probe`, lower is faster)"),
        "",
        NOTE,
        "",
        *HEADER,
        *table_rows(r["latency"]),
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = run_parser("bench.latency", __doc__, "10 s at 1k and 5k/s on 60,000 readings", "model the scorer runs")
    parser.add_argument("--clients", default=",".join(CLIENTS), help="Kafka clients, comma-separated (default: both)")
    parser.add_argument("--rates", default=None, help="offered loads in readings/s, comma-separated (default: the mode's)")
    args = parser.parse_args(argv)
    mode = "quick" if args.quick else "full"
    size = SIZES[mode]
    clients = [c.strip() for c in args.clients.split(",") if c.strip()]
    unknown = sorted(set(clients) - set(CLIENTS))
    if unknown:
        parser.error(f"--clients: unknown {', '.join(unknown)} (expected {', '.join(CLIENTS)})")
    rates = [int(r) for r in args.rates.split(",")] if args.rates else list(size.rates)
    result = run_record("bench.latency", mode, argv)
    data = cohort_input(size.readings, size.patients)
    logdir = Path(tempfile.mkdtemp(prefix="wardwatch-latency-logs-"))
    with broker() as (bootstrap, description):
        result["broker"] = description
        result["latency"] = []
        for client in clients:
            for rate in rates:
                command = [*scorer.command(bootstrap, args.checkpoint), "--kafka-client", client]
                lat = run(bootstrap, data, command, rate, size.seconds, logdir)
                result["latency"].append({"client": client, **lat.as_dict()})
                log(f"{client} at {rate}/s: {lat.event_to_score_ms}, batches {lat.loop}")
    write_results(args.results, "latency", result, markdown(result))
    print(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
