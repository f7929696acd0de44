"""The soak: the whole pipeline at a fixed offered rate, a real fault every M seconds.

`make soak MINUTES=30 SEED=1` (= `python -m bench.soak --minutes 30 --seed 1`)

One local broker (TLS + SCRAM) with one TCP proxy per stage (bench/faults.py): ingest, score
and alerts each reach the broker through their own proxy, so a network fault hits one stage.
A seeded cohort (sim/) is offered to `vitals.raw` at `--rate` readings/s, with a malformed
record now and then for the dead-letter topic. Every `--fault-every` seconds a fault drawn by
the seeded generator is injected:

- pause: SIGSTOP of a stage past its transaction timeout (5 s) and its session timeout (10 s);
- zombie: a second process with the stage's instance id; the old one must be fenced and exit;
- network_cut / network_reset / network_slow: the stage's proxy blackholes every byte past the
  transaction timeout, resets every connection, or delays every chunk by 50 ms;
- broker_restart: SIGKILL of the broker mid-transaction, down 4 s, started again;
- kill: SIGKILL of a stage, restarted with its instance id.

The same seed gives the same input and the same fault schedule (what the processes make of it
is timing). After each fault the soak measures, for each stage, the seconds from the end of the
fault until the stage commits a transaction again (its `wardwatch_transactions_total`).
`--kinds` and `--stages` narrow the draw: `--kinds pause --stages score --fault-every 20`
pauses the scorer again and again (the run that found kafka-python's refused offsets).

At the end the committed outputs are checked, stage by stage, against the cores run offline
over the same input (no Kafka): ingest (each raw record in `vitals` or, with its reason, in
`vitals.dlq`, once), score (each valid reading scored once, risk within the equivalence
contract, tests/support/equivalence.py) and alerts (the alert core over the committed `risk`
stream, partition by partition). Writes bench/results/soak.json and soak.md.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.common import PARTITIONS, PYTHON, REPO, machine, machine_line, metrics_text, write_results
from bench.faults import ProxiedBroker, TcpProxy, proxied_broker, wait_exit
from runtime.kafka.admin import ensure_topics
from runtime.kafka.client import BEGINNING, TopicPartition, connect
from runtime.records import InRecord, to_json
from runtime.topics import ALERTS, RISK, VITALS, VITALS_DLQ, VITALS_RAW, specs

RESULTS = Path(__file__).resolve().parent / "results"
STAGES = ("ingest", "score", "alerts")
KINDS = ("pause", "zombie", "network_cut", "network_reset", "network_slow", "broker_restart", "kill")
TRANSACTION_TIMEOUT_MS = 5000
PAUSE_S = 12.0  # past the transaction timeout and the 10 s session timeout
CUT_S = 8.0  # past the transaction timeout
SLOW_S = 8.0
RESET_S = 2.0
BROKER_DOWN_S = 4.0
RECOVERY_BOUND_S = 180.0
RISK_ABS_TOLERANCE = 1e-5  # the equivalence contract (tests/support/equivalence.py)


def log(message: str) -> None:
    print(f"[soak {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# -- services -----------------------------------------------------------------------------------
@dataclass
class Service:
    name: str
    process: subprocess.Popen
    metrics_port: int

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        if self.alive():
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(30)

    def stop(self) -> None:
        if self.alive():
            self.process.send_signal(signal.SIGCONT)
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()


@dataclass
class Stage:
    name: str
    bootstrap: str  # through its own proxy
    proxy: TcpProxy
    prefix: str
    logdir: Path
    service: Service | None = None
    started: int = 0

    def spawn(self) -> Service:
        from wardwatch.broker import _free_port

        self.started += 1
        port = _free_port()
        args = [self.name, "--bootstrap-servers", self.bootstrap, "--topic-prefix", self.prefix, "--metrics-port", str(port),
                "--instance-id", f"soak-{self.name}", "--max-poll-records", "500"]
        if self.name == "ingest":
            args += ["--max-age-ms", "0", "--max-future-ms", "0"]
        if self.name == "score":
            args += ["--checkpoint", "untrained"]
        env = {**os.environ, "PYTHONPATH": str(REPO), "WARDWATCH_TRANSACTION_TIMEOUT_MS": str(TRANSACTION_TIMEOUT_MS)}
        handle = open(self.logdir / f"{self.name}-{self.started}.log", "ab")
        process = subprocess.Popen([PYTHON, "-m", "wardwatch", *args], stdout=handle, stderr=subprocess.STDOUT, env=env, cwd=REPO)
        return Service(f"{self.name}-{self.started}", process, port)

    def committed(self) -> float | None:
        """Transactions the current process committed (None: not answering yet)."""
        if self.service is None or not self.service.alive():
            return None
        text = metrics_text(self.service.metrics_port)
        if text is None:
            return None
        match = re.search(r'^wardwatch_transactions_total\{[^}]*result="committed"[^}]*\} (\S+)$', text, re.M)
        return float(match.group(1)) if match else None


# -- input --------------------------------------------------------------------------------------
def soak_input(seed: int, count: int) -> list[tuple[bytes, bytes]]:
    """`count` raw records of a seeded cohort, one in 250 malformed (for the dead-letter topic)."""
    from sim.cohort import CohortConfig, generate
    from sim.devices import DeviceConfig

    patients = 60
    hours = count / (patients * 60 * 0.8) + 0.5
    cohort = generate(CohortConfig(patients=patients, hours=hours, seed=seed, deteriorating_fraction=0.3,
                                   devices=DeviceConfig(duplicate_rate=0.0, reorder_rate=0.0, buffered_per_day=0.0)))
    readings = sorted(cohort.readings, key=lambda r: (r["ts_ms"], r["patient_id"]))
    if len(readings) < count:
        raise RuntimeError(f"cohort gave {len(readings)} readings, wanted {count}")
    items: list[tuple[bytes, bytes]] = []
    for i, r in enumerate(readings):
        if len(items) >= count:
            break
        key = str(r["patient_id"]).encode()
        if i % 250 == 125:
            items.append((key, b"{not json " + str(i).encode()))
        items.append((key, to_json(r)))
    return items[:count]


class Feeder(threading.Thread):
    """Offers the items to `vitals.raw` at `rate` per second (direct listener), until done."""

    def __init__(self, bootstrap: str, topic: str, items: list[tuple[bytes, bytes]], rate: float) -> None:
        super().__init__(name="soak-feeder", daemon=True)
        self.bootstrap, self.topic, self.items, self.rate = bootstrap, topic, items, rate
        self.sent = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            producer = connect(self.bootstrap, "confluent").producer(client_id="soak-feeder", delivery_timeout_ms=600_000)
            started = time.monotonic()
            for key, value in self.items:
                due = started + self.sent / self.rate
                if due > time.monotonic():
                    time.sleep(due - time.monotonic())
                producer.send(self.topic, value, key=key)
                self.sent += 1
            producer.flush(timeout_s=600)
            producer.close(timeout_s=10)
        except BaseException as exc:  # reported by the main thread
            self.error = exc


# -- reading the outputs ------------------------------------------------------------------------
@dataclass(frozen=True)
class Out:
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: dict[str, bytes] = field(default_factory=dict)


def read_all(bootstrap: str, topic: str, timeout_s: float = 120.0) -> list[Out]:
    """Every committed record of `topic`, partition by partition in offset order."""
    kafka = connect(bootstrap, "confluent")
    consumer = kafka.consumer(client_id="soak-reader", group_id=None, max_poll_records=50_000, large_fetches=True)
    out: list[Out] = []
    try:
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        for batch in consumer.read_to_end(tps, timeout_s=timeout_s, max_records=50_000):
            out += [Out(r.partition, r.offset, r.key, r.value, dict(r.headers)) for r in batch]
    finally:
        consumer.close()
    return sorted(out, key=lambda r: (r.partition, r.offset))


def committed_count(bootstrap: str, topics: list[str]) -> int:
    kafka = connect(bootstrap, "confluent")
    consumer = kafka.consumer(client_id="soak-counter", group_id=None)
    try:
        tps = [TopicPartition(t, p) for t in topics for p in range(PARTITIONS)]
        consumer.assign({tp: BEGINNING for tp in tps})
        return sum(consumer.end_offsets(tps).values())  # last stable offsets: an upper bound, markers included
    finally:
        consumer.close()


# -- the offline run ----------------------------------------------------------------------------
def verify(bootstrap: str, prefix: str) -> dict[str, Any]:
    """Accounting and equality of every stage's committed output with its core run offline."""
    from alerts.rules import load_rules
    from alerts.processor import AlertProcessor
    from inference.processor import ScorerProcessor
    from inference.service import load_model
    from ingest.contract import decode_reading
    from ingest.processor import IngestProcessor
    from ingest.validate import limits
    from runtime.metrics import StreamMetrics, new_registry

    raw = read_all(bootstrap, prefix + VITALS_RAW)
    vitals = read_all(bootstrap, prefix + VITALS)
    dlq = read_all(bootstrap, prefix + VITALS_DLQ)
    risk = read_all(bootstrap, prefix + RISK)
    alerts = read_all(bootstrap, prefix + ALERTS)
    result: dict[str, Any] = {"sent": len(raw)}

    # ingest: each raw record once, in vitals or (with its reason) in the DLQ, as offline.
    ingest = IngestProcessor(StreamMetrics(new_registry(), "ingest"), limits(0, 0))
    offline = ingest.process([InRecord(VITALS_RAW, r.partition, r.offset, r.key, r.value, 0) for r in raw])
    ingest_dlq = [r for r in dlq if r.headers.get("stage") == b"ingest"]

    def origin(headers: dict[str, bytes]) -> tuple[int, int]:
        return int(headers["source-partition"]), int(headers["source-offset"])

    want_valid = {origin(dict(o.headers)): decode_reading(o.value) for o in offline if o.topic == VITALS and o.value is not None}
    want_rejected = {origin(dict(o.headers)): dict(o.headers).get("reason") for o in offline if o.topic == VITALS_DLQ}
    got_origins = Counter(origin(r.headers) for r in [*vitals, *ingest_dlq])
    got_valid = {origin(r.headers): decode_reading(r.value) for r in vitals if r.value is not None}
    got_rejected = {origin(r.headers): r.headers.get("reason") for r in ingest_dlq}
    all_raw = {(r.partition, r.offset) for r in raw}
    result.update(valid=len(vitals), rejected=len(ingest_dlq))
    lost = {"ingest": len(all_raw - set(got_origins))}
    # Where to look when something is lost: the raw records (partition, offset) ingest never
    # accounted for, and the readings never scored.
    result["missing_raw"] = sorted(all_raw - set(got_origins))[:20]
    duplicated = {"ingest": sum(n - 1 for n in got_origins.values() if n > 1)}
    equal = {"ingest": got_valid == want_valid and got_rejected == want_rejected}

    # score: each valid reading scored once, within the contract of the offline scorer over
    # the offline ingest's readings (per patient in the same order).
    model, version = load_model("untrained")
    scorer = ScorerProcessor(model, version, StreamMetrics(new_registry(), "score"))
    valid_in_order = [o for o in offline if o.topic == VITALS and o.value is not None]
    scored_offline = scorer.process([InRecord(VITALS, 0, i, o.key, o.value, 0) for i, o in enumerate(valid_in_order)])
    want_risk = {(b["patient_id"], b["seq"]): b["risk"] for b in (json.loads(o.value) for o in scored_offline if o.topic == RISK)}
    got_risk_keys = Counter((b["patient_id"], b["seq"]) for b in (json.loads(r.value) for r in risk if r.value is not None))
    got_risk = {(b["patient_id"], b["seq"]): b["risk"] for b in (json.loads(r.value) for r in risk if r.value is not None)}
    far = [k for k in want_risk if k in got_risk and abs(got_risk[k] - want_risk[k]) > RISK_ABS_TOLERANCE]
    result["scored"] = len(risk)
    lost["score"] = len(set(want_risk) - set(got_risk))
    result["missing_scores"] = sorted(set(want_risk) - set(got_risk))[:20]
    duplicated["score"] = sum(n - 1 for n in got_risk_keys.values() if n > 1)
    equal["score"] = not far and set(got_risk) == set(want_risk)
    result["score_max_abs_diff"] = max((abs(got_risk[k] - want_risk[k]) for k in want_risk if k in got_risk), default=0.0)

    # alerts: the alert core over the committed risk stream, partition by partition.
    processor = AlertProcessor(load_rules(None), StreamMetrics(new_registry(), "alerts"))
    want_alerts = Counter(_alert_key(json.loads(o.value)) for o in processor.process(
        [InRecord(RISK, r.partition, r.offset, r.key, r.value, 0) for r in risk]) if o.topic == ALERTS)
    got_alerts = Counter(_alert_key(json.loads(r.value)) for r in alerts if r.value is not None)
    result["alerts"] = len(alerts)
    lost["alerts"] = sum((want_alerts - got_alerts).values())
    duplicated["alerts"] = sum(n - 1 for n in got_alerts.values() if n > 1)
    equal["alerts"] = got_alerts == want_alerts
    result.update(lost=lost, duplicated=duplicated, equal=equal,
                  ok=not any(lost.values()) and not any(duplicated.values()) and all(equal.values()))
    return result


def _alert_key(a: dict) -> tuple:
    return (a["patient_id"], a["ts_ms"], a["alert_id"], a["status"], a["severity"], a["rule"])


# -- the run ------------------------------------------------------------------------------------
def schedule(seed: int, seconds: float, every: float, kinds: Sequence[str] = KINDS,
             stages: Sequence[str] = STAGES) -> list[tuple[float, str, str | None]]:
    """(start second, kind, stage) of each fault, drawn from `kinds` and `stages`: the same for
    the same seed."""
    rng = random.Random(seed)
    out: list[tuple[float, str, str | None]] = []
    t = every
    while t < seconds:
        kind = rng.choice(kinds)
        out.append((t, kind, None if kind == "broker_restart" else rng.choice(stages)))
        t += every
    return out


def inject(kind: str, stage: Stage | None, broker: ProxiedBroker) -> str:
    """One fault, start to end (blocking); returns a note on what happened."""
    if kind == "broker_restart":
        broker.kill()
        time.sleep(BROKER_DOWN_S)
        broker.start()
        return f"broker down {BROKER_DOWN_S:g} s"
    assert stage is not None and stage.service is not None
    service = stage.service
    if kind == "pause":
        service.process.send_signal(signal.SIGSTOP)
        time.sleep(PAUSE_S)
        service.process.send_signal(signal.SIGCONT)
        return f"SIGSTOP {PAUSE_S:g} s"
    if kind == "kill":
        service.kill()
        stage.service = stage.spawn()
        return "SIGKILL, restarted"
    if kind == "zombie":
        stage.service = stage.spawn()
        code = wait_exit(service, timeout_s=90)
        if code is None:
            service.kill()
            return "FAILED: the old process was not fenced within 90 s (killed)"
        return f"old process fenced, exit code {code}"
    if kind == "network_cut":
        stage.proxy.blackhole()
        time.sleep(CUT_S)
        stage.proxy.forward()
        return f"blackhole {CUT_S:g} s"
    if kind == "network_reset":
        stage.proxy.drop()
        time.sleep(RESET_S)
        stage.proxy.forward()
        return f"every connection reset, refused {RESET_S:g} s"
    if kind == "network_slow":
        stage.proxy.forward(delay_s=0.05)
        time.sleep(SLOW_S)
        stage.proxy.forward()
        return f"50 ms per chunk for {SLOW_S:g} s"
    raise ValueError(kind)


def recovery(stages: dict[str, Stage], baseline: dict[str, float]) -> dict[str, float | None]:
    """Seconds until each stage commits a transaction beyond `baseline` (None: not within the bound)."""
    started = time.monotonic()
    out: dict[str, float | None] = {}
    while len(out) < len(stages) and time.monotonic() - started < RECOVERY_BOUND_S:
        for name, stage in stages.items():
            if name in out:
                continue
            value = stage.committed()
            if value is not None and value > baseline.get(name, 0.0):
                out[name] = round(time.monotonic() - started, 2)
        time.sleep(0.2)
    return {name: out.get(name) for name in stages}


def run(minutes: float, seed: int, rate: float, every: float, workdir: Path,
        kinds: Sequence[str] = KINDS, stages: Sequence[str] = STAGES) -> dict[str, Any]:
    seconds = minutes * 60
    items = soak_input(seed, int(rate * seconds))
    plan = schedule(seed, seconds, every, kinds, stages)
    logdir = workdir / "logs"
    logdir.mkdir(parents=True, exist_ok=True)
    broker, proxies = proxied_broker(workdir / "broker", proxies=len(STAGES))
    # This process and the services it starts run as `admin` (like bench/common.broker).
    os.environ.update({k: v for k, v in broker.client_env("admin").items() if k.startswith("WARDWATCH_")})
    prefix = f"soak{seed}."
    stages = {name: Stage(name, broker.route_bootstrap(i), proxies[i], prefix, logdir) for i, name in enumerate(STAGES)}
    injected: list[dict[str, Any]] = []
    result: dict[str, Any] = {}
    try:
        ensure_topics(broker.bootstrap, specs(VITALS_RAW, VITALS, VITALS_DLQ, RISK, ALERTS), PARTITIONS, 1, prefix)
        for stage in stages.values():
            stage.service = stage.spawn()
        feeder = Feeder(broker.bootstrap, prefix + VITALS_RAW, items, rate)
        begun = time.monotonic()
        feeder.start()
        log(f"{len(items)} readings at {rate:g}/s, {len(plan)} faults planned, logs in {logdir}")
        for at, kind, name in plan:
            wait = begun + at - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            stage = stages[name] if name else None
            if begun + seconds - time.monotonic() < min(40.0, every):
                # Too close to the end of the input: a stage with nothing left to read cannot
                # show that it recovered.
                log(f"{kind} {name or 'broker'} skipped: the input ends too soon")
                continue
            fault_start = time.monotonic() - begun
            note = inject(kind, stage, broker)
            fault_end = time.monotonic() - begun
            # A restarted stage (kill, zombie) is a new process: any commit of it counts.
            baseline = {n: 0.0 if (n == name and kind in ("kill", "zombie")) else (s.committed() or 0.0)
                        for n, s in stages.items()}
            recovered = recovery(stages, baseline)
            injected.append({"at_s": round(fault_start, 1), "kind": kind, "stage": name or "broker",
                             "fault_s": round(fault_end - fault_start, 1), "note": note, "recovery_s": recovered})
            log(f"t={fault_start:.0f}s {kind} {name or 'broker'}: {note}; recovered {recovered}")
        feeder.join(timeout=max(60.0, seconds * 2))
        if feeder.error is not None:
            raise RuntimeError(f"the feeder failed: {feeder.error!r}")
        # Drain: every stage's committed output stops growing.
        last, quiet_since = -1, time.monotonic()
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            now = committed_count(broker.bootstrap, [prefix + t for t in (VITALS, VITALS_DLQ, RISK, ALERTS)])
            if now != last:
                last, quiet_since = now, time.monotonic()
            elif time.monotonic() - quiet_since > 15:
                break
            time.sleep(2)
        result["alive_at_end"] = {n: bool(s.service and s.service.alive()) for n, s in stages.items()}
        result["processes_started"] = {n: s.started for n, s in stages.items()}
        result["accounting"] = verify(broker.bootstrap, prefix)
        result["feeder_sent"] = feeder.sent
    finally:
        for stage in stages.values():
            if stage.service is not None:
                stage.service.stop()
        for proxy in proxies:
            proxy.close()
        broker.stop(purge=True)
    result["faults"] = injected
    result["worst_recovery_s"] = worst(injected)
    result["logs"] = str(logdir)
    return result


def worst(injected: list[dict[str, Any]]) -> dict[str, dict[str, float | None]]:
    """Per fault kind, the worst recovery of each stage (None: one did not recover in the bound)."""
    out: dict[str, dict[str, float | None]] = {}
    for fault in injected:
        per = out.setdefault(fault["kind"], {})
        for stage, seconds in fault["recovery_s"].items():
            if stage in per and per[stage] is None:
                continue
            per[stage] = None if seconds is None else max(seconds, per.get(stage) or 0.0)
    return out


def report(r: dict[str, Any]) -> str:
    a = r["accounting"]
    m = r["machine"]
    lines = [
        "# Soak: the whole pipeline under real faults", "",
        f"- command: `{r['command']}`",
        f"- when: {r['started_at']} UTC, took {r['took_s']} s; seed {r['seed']}, {r['minutes']:g} min at {r['rate']:g} readings/s, "
        f"a fault every {r['every']:g} s ({len(r['faults'])} injected); transaction timeout {TRANSACTION_TIMEOUT_MS} ms, "
        "session timeout 10 s",
        f"- machine: {machine_line(m)}",
        f"- result: **{'PASS' if r['ok'] else 'FAIL'}**",
        "",
        "## Accounting", "",
        "| sent | valid | rejected | scored | alerts | lost (ingest/score/alerts) | duplicated (ingest/score/alerts) |",
        "|---:|---:|---:|---:|---:|---|---|",
        f"| {a['sent']:,} | {a['valid']:,} | {a['rejected']:,} | {a['scored']:,} | {a['alerts']:,} | "
        f"{'/'.join(str(a['lost'][s]) for s in STAGES)} | {'/'.join(str(a['duplicated'][s]) for s in STAGES)} |",
        "",
        f"Equal to the offline run: ingest {a['equal']['ingest']}, score {a['equal']['score']} (largest risk difference "
        f"{a['score_max_abs_diff']:.2g}, contract 1e-5), alerts {a['equal']['alerts']} (the alert core over the committed "
        "`risk` stream). Processes started per stage (restarts and zombies included): "
        + ", ".join(f"{s} {n}" for s, n in r["processes_started"].items()) + ".",
        "",
        "## Worst recovery per fault kind (s from the end of the fault until the stage commits again)", "",
        "| fault | count | ingest | score | alerts |", "|---|---:|---:|---:|---:|",
    ]
    counts = Counter(f["kind"] for f in r["faults"])
    for kind, per in sorted(r["worst_recovery_s"].items()):
        lines.append(f"| {kind} | {counts[kind]} | " + " | ".join("not recovered" if per.get(s) is None else f"{per[s]:.1f}"
                                                              for s in STAGES) + " |")
    lines += ["", "## Faults injected", "", "| t s | fault | stage | lasted s | what happened | recovery s (ingest/score/alerts) |",
              "|---:|---|---|---:|---|---|"]
    for f in r["faults"]:
        rec = "/".join("-" if f["recovery_s"][s] is None else f"{f['recovery_s'][s]:.1f}" for s in STAGES)
        lines.append(f"| {f['at_s']} | {f['kind']} | {f['stage']} | {f['fault_s']} | {f['note']} | {rec} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--rate", type=float, default=40.0, help="offered readings per second")
    parser.add_argument("--fault-every", type=float, default=30.0, help="seconds between fault starts")
    parser.add_argument("--kinds", nargs="+", choices=KINDS, default=list(KINDS), metavar="KIND",
                        help=f"the fault kinds to draw from (default: all of {', '.join(KINDS)})")
    parser.add_argument("--stages", nargs="+", choices=STAGES, default=list(STAGES), metavar="STAGE",
                        help="the stages a fault may hit (default: all three; broker restarts hit all)")
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    started = time.monotonic()
    result: dict[str, Any] = {
        "command": "python -m bench.soak" + "".join(f" {a}" for a in (sys.argv[1:] if argv is None else argv)),
        "started_at": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M:%S"),
        "machine": machine(), "minutes": args.minutes, "seed": args.seed, "rate": args.rate, "every": args.fault_every,
        "kinds": args.kinds, "stages": args.stages,
    }
    with tempfile.TemporaryDirectory(prefix="wardwatch-soak-") as tmp:
        result.update(run(args.minutes, args.seed, args.rate, args.fault_every, Path(tmp), args.kinds, args.stages))
        result["took_s"] = round(time.monotonic() - started)
        recovered = all(v is not None for f in result["faults"] for v in f["recovery_s"].values())
        fenced = not any(f["note"].startswith("FAILED") for f in result["faults"])
        result["ok"] = bool(result["accounting"]["ok"] and recovered and fenced and all(result["alive_at_end"].values()))
        if not result["ok"]:  # keep the service logs of a failed run (outside the clone)
            kept = Path(tempfile.mkdtemp(prefix="wardwatch-soak-logs-"))
            subprocess.run(["cp", "-r", result["logs"], str(kept)], check=False)
            result["logs"] = str(kept)
    write_results(args.results, "soak", result, report(result))
    print(report(result))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
