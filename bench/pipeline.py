"""`python -m bench.pipeline [--quick]`: the whole pipeline, one reading per patient per minute.

Issue 17 asks that ingest, score and alerts (one process each, confluent-kafka, the broker, 2
cores) sustain one million patients at one reading a minute (16,700 readings/s) for 10 minutes
with lag bounded and exactly-once intact. This runs that: readings of `--patients` patients,
each once a minute, stamped with the wall clock, offered to `vitals.raw` at patients/60 per
second for `--seconds`, through `wardwatch ingest`, `wardwatch score` and `wardwatch alerts`.

Every second each service's own Prometheus metrics are read: records consumed
(`wardwatch_records_in_total`) and lag (`wardwatch_consumer_lag_records`). A stage more than
LAG_LIMIT_S seconds of input behind has fallen behind: offering stops there, and the run says
when. Afterwards the stages drain what was offered, and the committed `risk` topic is read
back: every reading scored exactly once (none missing, none twice) or the run says how many.

Full mode: 1,000,000 patients for 600 s; quick (`make bench`): 20,000 patients for 60 s.
Writes bench/results/pipeline.json and pipeline.md with the machine and the command.
"""

from __future__ import annotations

import re
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import orjson

from bench.common import (PARTITIONS, _free_port, broker, create_topics, fresh_prefix, logger, machine_line, metrics_text, producer, run_parser, run_record,
                          spawn, stop, stream_flags, write_results)
from ingest.contract import Reading, encode_reading
from runtime.topics import (ALERTS, ALERTS_CONTROL, ALERTS_STATE, INGEST_STATE, RISK, SCORER_STATE, VITALS, VITALS_DLQ,
                            VITALS_RAW)

SIZES = {"quick": dict(patients=20_000, seconds=60), "full": dict(patients=1_000_000, seconds=600)}
LAG_LIMIT_S = 30.0
DRAIN_CAP_S = 300.0
TOPICS = (VITALS_RAW, VITALS, VITALS_DLQ, RISK, SCORER_STATE, INGEST_STATE, ALERTS, ALERTS_CONTROL, ALERTS_STATE)
STAGES = {"ingest": VITALS_RAW, "score": VITALS, "alerts": RISK}  # stage -> the topic it consumes
CLIENT = "confluent"

log = logger("bench.pipeline")


def reading(patient: int, minute: int, ts_ms: int) -> tuple[bytes, bytes]:
    """Patient `patient`'s reading of minute `minute`: plausible vitals that vary a little."""
    h = (patient * 2_654_435_761 + minute * 40_503) & 0xFFFF
    patient_id = f"P{patient:07d}"
    r = Reading(patient_id, f"D{patient:07d}", minute, ts_ms, hr=float(60 + h % 50), rr=float(12 + h % 9),
                spo2=float(93 + h % 7), temp=36.0 + (h % 20) / 10, sbp=float(100 + h % 40), dbp=float(60 + h % 25),
                on_oxygen=False, acvpu="A")
    return patient_id.encode(), encode_reading(r)


class Feeder(threading.Thread):
    """Offers reading k (patient k mod N, minute k div N) when its time comes, until told to stop."""

    def __init__(self, bootstrap: str, topic: str, patients: int, seconds: float) -> None:
        super().__init__(name="pipeline-feeder", daemon=True)
        self.bootstrap, self.topic, self.patients, self.seconds = bootstrap, topic, patients, seconds
        self.rate = patients / 60.0
        self.sent = 0
        self.started = 0.0
        self.ended = 0.0
        self.halt = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            p = producer(self.bootstrap)
            self.started = time.monotonic()
            total = int(self.rate * self.seconds)
            while self.sent < total and not self.halt.is_set():
                due = min(total, int((time.monotonic() - self.started) * self.rate))
                now_ms = int(time.time() * 1000)
                while self.sent < due:
                    key, value = reading(self.sent % self.patients, self.sent // self.patients, now_ms)
                    try:
                        p.produce(self.topic, key=key, value=value)
                    except BufferError:
                        p.poll(0.01)
                        continue
                    self.sent += 1
                p.poll(0)
                time.sleep(0.005)
            self.ended = time.monotonic()
            if p.flush(120):
                raise RuntimeError("feeder: readings left undelivered after 120 s")
        except BaseException as exc:  # reported by the main thread
            self.error = exc
            self.ended = self.ended or time.monotonic()


def scrape(port: int, topic: str) -> tuple[float, float] | None:
    """(records consumed from `topic`, lag summed over partitions) from a service's /metrics."""
    text = metrics_text(port)
    return parse_metrics(text, topic) if text is not None else None


def parse_metrics(text: str, topic: str) -> tuple[float, float]:
    """(records consumed from the topic named `topic` after its prefix, lag over every partition)."""
    consumed = sum(float(v) for v in re.findall(
        rf'^wardwatch_records_in_total\{{[^}}]*topic="(?:[^"]*\.)?{re.escape(topic)}"[^}}]*\}} (\S+)$', text, re.M))
    lag = sum(float(v) for v in re.findall(r'^wardwatch_consumer_lag_records\{[^}]*\} (\S+)$', text, re.M))
    return consumed, lag


@dataclass
class StageTrace:
    """Per second: (seconds since the first offer, records consumed, lag)."""

    samples: list[tuple[float, float, float]] = field(default_factory=list)

    def summary(self, rate: float, offered_s: float) -> dict[str, float]:
        during = [s for s in self.samples if s[0] <= offered_s]
        max_lag = max((s[2] for s in self.samples), default=0.0)
        consumed_during = during[-1][1] if during else 0.0
        return {"consumed_while_offered": int(consumed_during),
                "rate_while_offered_per_s": round(consumed_during / offered_s, 1) if offered_s > 0 else 0.0,
                "max_lag_records": int(max_lag), "max_lag_s_of_input": round(max_lag / rate, 1) if rate else 0.0,
                "consumed_at_end": int(self.samples[-1][1]) if self.samples else 0}


def count_scored(bootstrap: str, prefix: str, patients: int) -> dict[str, int]:
    """Committed `risk` records, and the distinct (patient, seq) readings among them."""
    from runtime.kafka.client import TopicPartition, connect

    consumer = connect(bootstrap, CLIENT).consumer(client_id="pipeline-reader", group_id=None, max_poll_records=50_000,
                                                   large_fetches=True)
    ids: list[np.ndarray] = []
    records = 0
    try:
        tps = [TopicPartition(prefix + RISK, p) for p in range(PARTITIONS)]
        for batch in consumer.read_to_end(tps, timeout_s=DRAIN_CAP_S, max_records=50_000):
            chunk = np.empty(len(batch), dtype=np.int64)
            for i, r in enumerate(batch):
                value = orjson.loads(r.value)
                chunk[i] = int(value["patient_id"][1:]) + patients * int(value["seq"])
            ids.append(chunk)
            records += len(batch)
    finally:
        consumer.close()
    distinct = len(np.unique(np.concatenate(ids))) if ids else 0
    return {"risk_records": records, "distinct_readings_scored": distinct}


def run(bootstrap: str, patients: int, seconds: float, checkpoint: str, logdir: Path) -> dict[str, object]:
    prefix = fresh_prefix("pipeline")
    create_topics(bootstrap, prefix, TOPICS)
    ports = {stage: _free_port() for stage in STAGES}
    extra = {"ingest": ["--dedup-max-devices", str(max(50_000, 2 * patients // PARTITIONS))],
             "score": ["--checkpoint", checkpoint], "alerts": []}
    procs = {stage: spawn(["-m", "wardwatch", stage, *stream_flags(bootstrap, prefix, f"pipeline-{stage}"),
                           "--metrics-port", str(port), "--kafka-client", CLIENT, *extra[stage]], logdir / f"{stage}.log")
             for stage, port in ports.items()}
    traces = {stage: StageTrace() for stage in STAGES}
    feeder = Feeder(bootstrap, prefix + VITALS_RAW, patients, seconds)
    fell_behind: dict[str, float] | None = None
    try:
        _wait_ready(procs, ports, logdir)
        feeder.start()
        while feeder.started == 0.0 and feeder.is_alive():
            time.sleep(0.01)
        drained_since = None
        while True:
            time.sleep(1.0)
            t = time.monotonic() - feeder.started
            for stage, port in ports.items():
                if procs[stage].poll() is not None:
                    raise RuntimeError(f"{stage} exited with {procs[stage].returncode}; see {logdir / (stage + '.log')}")
                got = scrape(port, STAGES[stage])
                if got is not None:
                    traces[stage].samples.append((t, *got))
            lags = {s: tr.samples[-1][2] for s, tr in traces.items() if tr.samples}
            if feeder.is_alive():
                behind = {s: lag / feeder.rate for s, lag in lags.items() if lag / feeder.rate > LAG_LIMIT_S}
                if behind and fell_behind is None:
                    fell_behind = {"at_s": round(t, 1), **{s: round(v, 1) for s, v in behind.items()}}
                    log(f"fell behind at {t:.0f} s: {behind}; offering stops")
                    feeder.halt.set()
                continue
            if feeder.error is not None:
                raise RuntimeError(f"feeder failed: {feeder.error!r}")
            done = all(lag == 0 for lag in lags.values()) and traces["ingest"].samples[-1][1] >= feeder.sent
            drained_since = (drained_since or time.monotonic()) if done else None
            if drained_since and time.monotonic() - drained_since >= 3.0:
                break
            if time.monotonic() - feeder.ended > DRAIN_CAP_S:
                log(f"not drained {DRAIN_CAP_S:.0f} s after the offer ended")
                break
    finally:
        feeder.halt.set()
        stop(list(procs.values()))
    offered_s = feeder.ended - feeder.started
    scored = count_scored(bootstrap, prefix, patients)
    return {
        "patients": patients, "seconds_planned": seconds, "offered_rate_per_s": round(feeder.rate, 1),
        "sent": feeder.sent, "offered_s": round(offered_s, 1),
        "achieved_offered_per_s": round(feeder.sent / offered_s, 1) if offered_s > 0 else 0.0,
        "fell_behind": fell_behind, "lag_limit_s": LAG_LIMIT_S,
        "stages": {s: tr.summary(feeder.rate, offered_s) for s, tr in traces.items()},
        **scored, "missing": feeder.sent - scored["distinct_readings_scored"],
        "duplicated": scored["risk_records"] - scored["distinct_readings_scored"],
        "sustained": fell_behind is None and feeder.sent >= int(feeder.rate * seconds) - 1,
        "client": CLIENT,
    }


def _wait_ready(procs, ports: dict[str, int], logdir: Path, timeout_s: float = 120.0) -> None:
    """Until every service answers on /metrics and owns its partitions (assigned gauge)."""
    deadline = time.monotonic() + timeout_s
    pending = set(ports)
    while pending and time.monotonic() < deadline:
        for stage in list(pending):
            if procs[stage].poll() is not None:
                raise RuntimeError(f"{stage} exited with {procs[stage].returncode}; see {logdir / (stage + '.log')}")
            text = metrics_text(ports[stage])
            if text is not None and re.search(r'^wardwatch_assigned_partitions\{[^}]*\} ([1-9]\S*)$', text, re.M):
                pending.discard(stage)
        time.sleep(0.25)
    if pending:
        raise TimeoutError(f"not assigned after {timeout_s:.0f} s: {sorted(pending)}")


def main(argv: list[str] | None = None) -> int:
    parser = run_parser("bench.pipeline", __doc__, "20,000 patients for 60 s (make bench)", "model for the scorer")
    parser.add_argument("--patients", type=int, help="patients, one reading a minute each (default by mode)")
    parser.add_argument("--seconds", type=float, help="how long readings are offered (default by mode)")
    args = parser.parse_args(argv)
    mode = "quick" if args.quick else "full"
    patients = args.patients or SIZES[mode]["patients"]
    seconds = args.seconds or SIZES[mode]["seconds"]
    result: dict = run_record("bench.pipeline", mode, argv)
    logdir = Path(tempfile.mkdtemp(prefix="wardwatch-bench-pipeline-"))
    with broker() as (bootstrap, description):
        result["broker"] = description
        result["pipeline"] = run(bootstrap, patients, seconds, args.checkpoint, logdir)
    write_results(args.results, "pipeline", result, markdown(result))
    shutil.rmtree(logdir, ignore_errors=True)
    log(f"wrote {args.results / 'pipeline.json'} and pipeline.md")
    return 0


def markdown(r: dict) -> str:
    m, p = r["machine"], r["pipeline"]
    behind = p["fell_behind"]
    verdict = ("**sustained**" if p["sustained"] else
               f"**not sustained**: fell behind at {behind['at_s']} s" if behind else "**not sustained**")
    lines = [
        "# The whole pipeline at one reading per patient per minute",
        "",
        f"`{r['command']}` at {r['started_at']} UTC, {r['mode']} mode; {r['broker']}.",
        f"Machine: {machine_line(m)}; "
        f"Python {m['python']}, confluent-kafka {m['confluent_kafka']} (librdkafka {m['librdkafka']}).",
        f"ingest, score and alerts, one process each on {p['client']}, and the broker on this machine; readings of "
        f"{p['patients']:,} patients, each once a minute, offered to vitals.raw at {p['offered_rate_per_s']:,.0f}/s for "
        f"{p['seconds_planned']:g} s (a stage more than {p['lag_limit_s']:g} s of input behind stops the offer).",
        "",
        f"Result: {verdict}. Offered {p['sent']:,} readings in {p['offered_s']} s ({p['achieved_offered_per_s']:,.0f}/s); "
        f"scored {p['distinct_readings_scored']:,} distinct readings in {p['risk_records']:,} risk records: "
        f"{p['missing']:,} missing, {p['duplicated']:,} duplicated.",
        "",
        "| stage | consumed while offered | rate while offered /s | max lag records | max lag (s of input) | consumed at end |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for stage, s in p["stages"].items():
        lines.append(f"| {stage} | {s['consumed_while_offered']:,} | {s['rate_while_offered_per_s']:,.0f} | "
                     f"{s['max_lag_records']:,} | {s['max_lag_s_of_input']} | {s['consumed_at_end']:,} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
