"""The demo: a local broker, every service as its own process, and a live terminal summary.

It is the production layout on one machine: each stage is a separate `wardwatch <stage>`
process talking to Kafka, exactly as in docker-compose.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from alerts.messages import explanation_line
from runtime.config import ConfigError
from runtime.topics import ALERTS
from wardwatch.broker import LocalBroker, cache_dir
from wardwatch.users import UserError, new_user

METRICS_PORTS = {"sim": 9101, "ingest": 9102, "score": 9103, "alerts": 9104}
WARDVIEW_PORT = 8080
DEMO_USER = "demo"


def demo_login() -> tuple[str, str, bool]:
    """The demo's clinician sign-in: (user entry line, password, whether it was generated).
    WARDWATCH_DEMO_PASSWORD chooses the password; else a fresh one is made for this run."""
    chosen = os.environ.get("WARDWATCH_DEMO_PASSWORD", "")
    password = chosen or secrets.token_urlsafe(9)
    try:
        return new_user(DEMO_USER, "clinician", password).line(), password, not chosen
    except UserError as exc:
        raise ConfigError(f"WARDWATCH_DEMO_PASSWORD: {exc}") from None


@dataclass
class DemoOptions:
    duration_s: float = 0.0
    patients: int = 40
    speed: float = 60.0
    hours: float = 12.0
    seed: int = 0
    bad_rate: float = 0.005
    partitions: int = 6
    broker_port: int = 9092
    insecure_plaintext: bool = False
    log_dir: Path = field(default_factory=lambda: cache_dir() / "demo")


@dataclass
class Child:
    name: str
    process: subprocess.Popen[bytes]
    log: Path


def _spawn(name: str, args: list[str], env: dict[str, str], log_dir: Path) -> Child:
    log = log_dir / f"{name}.log"
    handle = open(log, "wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "wardwatch", *args], stdout=handle, stderr=subprocess.STDOUT, env=env,
        start_new_session=True,  # Ctrl-C reaches the demo, which then stops each child in order
    )
    return Child(name, process, log)


def _scrape(port: int) -> dict[str, float]:
    """Sum of each sample name on one /metrics endpoint (labels folded together), plus
    `name[topic]` sums for samples that carry a topic label."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=1) as response:
            text = response.read().decode()
    except OSError:
        return {}
    totals: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            totals[sample.name] = totals.get(sample.name, 0.0) + sample.value
            topic = sample.labels.get("topic")
            if topic is not None:
                key = f"{sample.name}[{topic}]"
                totals[key] = totals.get(key, 0.0) + sample.value
    return totals


def _tail_alerts(bootstrap: str, stop: threading.Event, printer: Callable[[str], None], security: dict[str, str] | None) -> None:
    from runtime.kafka.client import END, TopicPartition, connect

    c = connect(bootstrap, properties=security).consumer(client_id="wardwatch-demo-alerts", group_id=None)
    try:
        partitions = c.partitions_for(ALERTS)
        while not partitions and not stop.wait(1.0):  # the alerts service creates the topic
            partitions = c.partitions_for(ALERTS)
        c.assign({TopicPartition(ALERTS, p): END for p in partitions})
        while not stop.is_set():
            for r in c.poll(0.5, 500):
                try:
                    a = json.loads(r.value)  # type: ignore[arg-type]
                except (TypeError, ValueError):
                    continue
                printer(alert_summary(a))
    finally:
        c.close()


def alert_summary(event: dict[str, object]) -> str:
    """One terminal line per alert event: what happened and, for a raise or escalation, why."""
    line = (f"  alert {event.get('status', '?'):<12} {event.get('severity', '?'):<10} {event.get('patient_id', '?'):<8} "
            f"{event.get('rule', '?')}: {event.get('reason', '')}")
    why = explanation_line(event.get("explain") if isinstance(event.get("explain"), dict) else None)  # type: ignore[arg-type]
    return f"{line} | why: {why}" if why else line


def _ports_in_use(ports: list[int]) -> list[int]:
    busy = []
    for port in ports:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                busy.append(port)
    return busy


def run_demo(options: DemoOptions) -> int:
    busy = _ports_in_use([*METRICS_PORTS.values(), WARDVIEW_PORT])
    if busy:
        print(f"wardwatch demo: port(s) {', '.join(map(str, busy))} already in use (another demo running?); stop it first",
              file=sys.stderr)
        return 1
    options.log_dir.mkdir(parents=True, exist_ok=True)
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    broker: LocalBroker | None = None
    if not bootstrap:
        broker = LocalBroker(port=options.broker_port, home=cache_dir() / "demo-broker",
                             insecure_plaintext=options.insecure_plaintext)
        broker.stop(purge=True)  # a fresh cluster each time: no state (and no old credentials) from a previous demo
        kind = "PLAINTEXT (insecure)" if options.insecure_plaintext else "TLS + SCRAM, one user per service"
        print(f"starting a local Apache Kafka broker on 127.0.0.1:{options.broker_port}, {kind} ...", flush=True)
        bootstrap = broker.start()
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": bootstrap, "WARDWATCH_PARTITIONS": str(options.partitions)}
    env.setdefault("PYTHONPATH", str(Path(__file__).resolve().parents[1]))

    def env_of(principal: str) -> dict[str, str]:
        """Each service runs as its own Kafka principal (its settings name files; no secret in the env)."""
        return {**env, **broker.client_env(principal)} if broker is not None else env

    children: list[Child] = []
    stop = threading.Event()
    previous = signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        for name in ("ingest", "score", "alerts"):
            children.append(_spawn(name, [name, "--metrics-port", str(METRICS_PORTS[name]), "--instance-id", "demo"], env_of(name),
                                   options.log_dir))
        # The user entry (a hash) travels in the ward view's environment, never on its command line.
        user_line, password, generated = demo_login()
        children.append(_spawn("wardview", ["wardview", "--port", str(WARDVIEW_PORT)], {**env_of("wardview"), "WARDWATCH_USERS": user_line},
                               options.log_dir))
        children.append(_spawn("sim", [
            "sim", "--patients", str(options.patients), "--hours", str(options.hours), "--speed", str(options.speed),
            "--seed", str(options.seed), "--bad-rate", str(options.bad_rate), "--metrics-port", str(METRICS_PORTS["sim"]),
        ], env_of("sim"), options.log_dir))
        print(f"pipeline running: {options.patients} patients, {options.hours:g} h of event time at {options.speed:g}x")
        print(f"ward view: http://127.0.0.1:{WARDVIEW_PORT}/  sign in as {DEMO_USER} (clinician), password "
              + (f"{password}  (made for this run, shown only here; set WARDWATCH_DEMO_PASSWORD to choose one)" if generated
                 else "from WARDWATCH_DEMO_PASSWORD"), flush=True)
        print("metrics: " + "  ".join(f"{n} http://127.0.0.1:{p}/metrics" for n, p in METRICS_PORTS.items()))
        print(f"logs:    {options.log_dir}/<service>.log     (Ctrl-C stops everything)")
        # The summary reads alerts as the ward view does (its principal may read them).
        tail_security = broker.client_security("wardview").properties() if broker is not None else None
        tail = threading.Thread(target=_tail_alerts, args=(bootstrap, stop, lambda s: print(s, flush=True), tail_security),
                                daemon=True)
        tail.start()
        return _summarise(children, options, stop)
    finally:
        stop.set()
        signal.signal(signal.SIGINT, previous)
        for child in reversed(children):
            if child.process.poll() is None:
                child.process.send_signal(signal.SIGTERM)
        for child in children:
            try:
                child.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                child.process.kill()
        if broker is not None:
            broker.stop(purge=True)
        print("demo stopped")


def _summarise(children: list[Child], options: DemoOptions, stop: threading.Event) -> int:
    started = time.monotonic()
    last = {name: 0.0 for name in METRICS_PORTS}
    last_t = started
    while not stop.wait(5.0):
        now = time.monotonic()
        dead = [c for c in children if c.process.poll() is not None and c.name != "sim"]
        if dead:
            for c in dead:
                print(f"{c.name} exited with code {c.process.returncode}; see {c.log}", file=sys.stderr)
            return 1
        stats = {name: _scrape(port) for name, port in METRICS_PORTS.items()}
        sent = stats["sim"].get("wardwatch_records_out_total", last["sim"])
        valid = stats["ingest"].get("wardwatch_records_out_total[vitals]", 0.0)
        scored = stats["score"].get("wardwatch_records_in_total", 0.0)
        rejects = stats["ingest"].get("wardwatch_rejects_total", 0.0) + stats["score"].get("wardwatch_rejects_total", 0.0)
        lag = stats["score"].get("wardwatch_consumer_lag_records", 0.0)
        alerts = stats["alerts"].get("wardwatch_alerts_total", 0.0)
        open_alerts = stats["alerts"].get("wardwatch_active_alerts", 0.0)
        rate = (sent - last["sim"]) / max(1e-9, now - last_t)
        last["sim"], last_t = sent, now
        print(f"[{now - started:5.0f}s] sent {sent:7.0f} ({rate:5.0f}/s)  valid {valid:7.0f}  scored {scored:7.0f}  "
              f"rejected {rejects:4.0f}  scorer lag {lag:4.0f}  alert events {alerts:4.0f}  open {open_alerts:3.0f}", flush=True)
        if options.duration_s and now - started >= options.duration_s:
            return 0
    return 0
