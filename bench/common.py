"""What every benchmark scenario shares: the broker, the input, the observer, worker processes.

Measurement side (preloading input, observing outputs) uses confluent-kafka (librdkafka, C),
so the bench's own Kafka work costs little CPU next to the process under test. The processes
under test use what they use in production: the client `--kafka-client` names for wardwatch, confluent-kafka for
Quix Streams.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition

from ingest.contract import Reading, encode_reading
from runtime.kafka.admin import ensure_topics
from runtime.records import InRecord
from runtime.topics import RISK, SCORER_STATE, VITALS, VITALS_DLQ, specs

REPO = Path(__file__).resolve().parents[1]
PARTITIONS = 6
PYTHON = sys.executable
SCORER_TOPICS = (VITALS, RISK, SCORER_STATE, VITALS_DLQ)


# -- machine ------------------------------------------------------------------------------------
RESULTS = Path(__file__).resolve().parent / "results"


def logger(prog: str) -> Callable[[str], None]:
    """A benchmark's progress lines on stderr, stamped with the time and who writes them."""

    def log(message: str) -> None:
        print(f"[{prog} {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)

    return log


def run_parser(prog: str, description: str | None, quick_help: str, checkpoint_help: str) -> argparse.ArgumentParser:
    """A benchmark run's command line: --quick, --checkpoint, --results (add more, then parse)."""
    from bench.scorer import CHECKPOINT

    parser = argparse.ArgumentParser(prog=f"python -m {prog}", description=description,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help=quick_help)
    parser.add_argument("--checkpoint", default=CHECKPOINT, help=checkpoint_help)
    parser.add_argument("--results", type=Path, default=RESULTS)
    return parser


def in_records(records: Sequence[tuple[bytes, bytes | None]], timestamp_ms: int = 0) -> list[InRecord]:
    """Keyed `vitals` values as the records a core sees, partitioned as the producer would."""
    from kafka.partitioner.default import murmur2

    offsets = [0] * PARTITIONS
    out = []
    for key, value in records:
        partition = (murmur2(key) & 0x7FFFFFFF) % PARTITIONS
        out.append(InRecord(VITALS, partition, offsets[partition], key, value, timestamp_ms))
        offsets[partition] += 1
    return out


def run_record(prog: str, mode: str, argv: list[str] | None) -> dict[str, Any]:
    """What every result file starts with: the mode, the exact command, when, and the machine."""
    return {
        "mode": mode,
        "command": f"python -m {prog}" + "".join(f" {a}" for a in (sys.argv[1:] if argv is None else argv)),
        "started_at": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M:%S"),
        "machine": machine(),
    }


def speed_probe() -> float:
    """Seconds for a fixed pure-Python loop on one core, best of 3: how fast this shared machine
    runs at the start of a run (a run's figures compare across runs only at like speeds)."""
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        total = 0
        for i in range(2_000_000):
            total += i * i
        best = min(best, time.perf_counter() - started)
    return round(best, 3)


def machine_line(m: dict) -> str:
    """A result's machine in words: CPU, cores, memory, load average and speed probe at start."""
    probe = f", speed probe {m['speed_probe_s']} s" if "speed_probe_s" in m else ""
    load = " / ".join(map(str, m["load_average_at_start"]))
    return f"{m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB; load average at start {load}{probe}"


def metrics_text(port: int, timeout_s: float = 2.0) -> str | None:
    """A service's Prometheus exposition from its /metrics on this machine; None if it does not answer."""
    import urllib.request

    try:
        return urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=timeout_s).read().decode()
    except OSError:
        return None


def run_header(r: dict, title: str, machine_note: str = "") -> list[str]:
    """A Kafka benchmark's results page opens alike: title, the command with when, mode and broker,
    the machine and the client libraries' versions."""
    m = r["machine"]
    return [
        f"# {title}",
        "",
        f"`{r['command']}` at {r['started_at']} UTC, {r['mode']} mode; {r['broker']}.",
        f"Machine: {machine_line(m)}{machine_note}; Python {m['python']}, kafka-python {m['kafka_python']}, "
        f"confluent-kafka {m['confluent_kafka']} (librdkafka {m['librdkafka']}).",
    ]


def write_results(directory: Path, name: str, result: dict, markdown: str) -> Path:
    """`<name>.json` (the result) and `<name>.md` (its page) in `directory`; returns the JSON's path."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    (directory / f"{name}.md").write_text(markdown)
    return path


def machine() -> dict[str, object]:
    """Enough about the machine to compare numbers across runs."""
    import kafka
    import onnxruntime
    import psutil
    import torch

    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import confluent_kafka
    import quixstreams

    return {
        "platform": platform.platform(),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "speed_probe_s": speed_probe(),
        "python": platform.python_version(),
        "onnxruntime": onnxruntime.__version__,
        "torch": torch.__version__,
        "kafka_python": kafka.__version__,
        "confluent_kafka": confluent_kafka.__version__,  # version() is a string in 2.x, a tuple before
        "librdkafka": confluent_kafka.libversion()[0],
        "quixstreams": quixstreams.__version__,
    }


# -- broker -------------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def broker() -> Iterator[tuple[str, str]]:
    """(bootstrap, description): KAFKA_BOOTSTRAP_SERVERS if set, else a fresh local broker, purged after."""
    external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if external:
        yield external, f"external {external}"
        return
    from wardwatch.broker import LocalBroker, kafka_version

    home = Path(tempfile.mkdtemp(prefix="wardwatch-bench-kafka-"))
    local = LocalBroker(port=_free_port(), home=home)
    bootstrap = local.start()
    # Secured like production (TLS + SCRAM): this process and the services it spawns run as `admin`.
    os.environ.update({k: v for k, v in local.client_env("admin").items() if k.startswith("WARDWATCH_")})
    try:
        yield bootstrap, f"local Apache Kafka {kafka_version()} (KRaft, single node, TLS + SCRAM, heap {local.heap_mb} MiB)"
    finally:
        local.stop(purge=True)


def fresh_prefix(name: str) -> str:
    """Every scenario gets its own topics and groups, so none sees another's data or state."""
    return f"bench-{name}-{uuid.uuid4().hex[:6]}."


def create_topics(bootstrap: str, prefix: str, names: Sequence[str] = SCORER_TOPICS) -> None:
    ensure_topics(bootstrap, specs(*names), PARTITIONS, 1, prefix)


# -- input --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Input:
    """Encoded `vitals` records (key, value), in delivery order."""

    records: list[tuple[bytes, bytes]]
    patients: int

    @property
    def mean_value_bytes(self) -> float:
        return sum(len(v) for _, v in self.records) / max(1, len(self.records))


def cohort_input(readings: int, patients: int, seed: int = 7) -> Input:
    """`readings` simulated readings of `patients` patients, encoded with the reading contract."""
    from sim.cohort import CohortConfig, generate

    hours = 1.2 * readings / patients / 60.0 + 0.1  # one reading a minute, minus device loss
    cohort = generate(CohortConfig(patients=patients, hours=hours, seed=seed))
    rows = cohort.readings
    if len(rows) < readings:
        raise RuntimeError(f"cohort gave {len(rows)} readings, wanted {readings}")
    records = []
    for row in rows[:readings]:
        value = encode_reading(Reading(**row))  # type: ignore[arg-type]
        records.append((str(row["patient_id"]).encode(), value))
    return Input(records, patients)


def producer(bootstrap: str, **extra: object) -> Producer:
    # murmur2_random is the Java (and kafka-python) default partitioner: same patient, same partition.
    from runtime.kafka import security

    # Secured as the process is (the local bench broker is TLS + SCRAM, like production).
    config = {"bootstrap.servers": bootstrap, "partitioner": "murmur2_random", "linger.ms": 5,
              "enable.idempotence": True, "queue.buffering.max.messages": 1_000_000, **security.current_properties()}
    config.update(extra)
    return Producer(config)


def preload(bootstrap: str, topic: str, records: Sequence[tuple[bytes, bytes | None]], headers: list | None = None) -> float:
    """Produce all records and wait for delivery; returns seconds taken."""
    started = time.perf_counter()
    p = producer(bootstrap)
    for key, value in records:
        while True:
            try:
                p.produce(topic, key=key, value=value, headers=headers)
                break
            except BufferError:
                p.poll(0.05)
        p.poll(0)
    remaining = p.flush(60)
    if remaining:
        raise RuntimeError(f"preload of {topic}: {remaining} records undelivered after 60 s")
    return time.perf_counter() - started


# -- observer -----------------------------------------------------------------------------------
@dataclass
class Observed:
    """What a read_committed consumer saw: receive times, and CreateTime of each record."""

    receive_s: list[float] = field(default_factory=list)  # wall clock, one per record
    create_ms: list[int] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.receive_s)

    def throughput(self) -> float:
        """Records/s from the first to the last committed output (the first batch only starts the clock)."""
        if self.count < 2:
            return 0.0
        first, last = self.receive_s[0], self.receive_s[-1]
        after_first = sum(1 for t in self.receive_s if t > first)
        return after_first / (last - first) if last > first else 0.0


class Observer:
    """A read_committed consumer of output topics in a background thread."""

    def __init__(self, bootstrap: str, topics: Sequence[str]) -> None:
        from runtime.kafka import security

        self.consumer = Consumer({
            "bootstrap.servers": bootstrap, "group.id": f"bench-observer-{uuid.uuid4().hex[:8]}",
            "isolation.level": "read_committed", "enable.auto.commit": False, "auto.offset.reset": "earliest",
            "fetch.wait.max.ms": 10, **security.current_properties(),
        })
        self.consumer.assign([TopicPartition(t, p, 0) for t in topics for p in range(PARTITIONS)])
        self.seen = Observed()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        seen = self.seen
        consume = self.consumer.consume
        while not self._stop.is_set():
            # consume(n, timeout) waits until n records arrived or the timeout passed: asking for
            # many with a timeout would hold the first record back for up to the timeout (and it
            # is stamped on return). Take what is there, else wait for the first record only.
            batch = consume(num_messages=10_000, timeout=0)
            if not batch:
                batch = consume(num_messages=1, timeout=0.05)
                if not batch:
                    continue
                batch += consume(num_messages=9_999, timeout=0)
            now = time.time()
            for message in batch:
                if message.error():
                    continue
                seen.receive_s.append(now)
                seen.create_ms.append(message.timestamp()[1])

    def wait_for(self, count: int, timeout_s: float, stall_s: float = 30.0) -> Observed:
        """Until `count` records arrived, `timeout_s` passed, or nothing new came for `stall_s`."""
        deadline = time.monotonic() + timeout_s
        last_count, last_change = -1, time.monotonic()
        while self.seen.count < count and time.monotonic() < deadline:
            if self.seen.count != last_count:
                last_count, last_change = self.seen.count, time.monotonic()
            elif self.seen.count > 0 and time.monotonic() - last_change > stall_s:
                break
            time.sleep(0.05)
        return self.seen

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.consumer.close()


# -- processes under test -----------------------------------------------------------------------
def env() -> dict[str, str]:
    e = dict(os.environ)
    e["PYTHONPATH"] = str(REPO) + (os.pathsep + e["PYTHONPATH"] if e.get("PYTHONPATH") else "")
    e["PYTHONWARNINGS"] = "ignore"
    return e


def stream_flags(bootstrap: str, prefix: str, instance: str) -> list[str]:
    return ["--bootstrap-servers", bootstrap, "--topic-prefix", prefix, "--partitions", str(PARTITIONS),
            "--instance-id", instance, "--metrics-port", "-1", "--log-level", "WARNING"]


def spawn(args: list[str], log_path: Path) -> subprocess.Popen:
    """A process under test; its output goes to a log file (kept for post-mortems)."""
    out = open(log_path, "ab")
    return subprocess.Popen([PYTHON, *args], cwd=REPO, env=env(), stdout=out, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True)


def stop(processes: Sequence[subprocess.Popen], timeout_s: float = 20.0) -> None:
    """SIGTERM (clean shutdown), then SIGKILL what is left."""
    for p in processes:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    for p in processes:
        try:
            p.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def percentiles(values: Sequence[float], qs: Sequence[float] = (50, 99)) -> dict[str, float]:
    import numpy as np

    if not len(values):
        return {f"p{q:g}": float("nan") for q in qs} | {"max": float("nan")}
    arr = np.asarray(values, dtype=float)
    return {f"p{q:g}": round(float(np.percentile(arr, q)), 1) for q in qs} | {"max": round(float(arr.max()), 1)}


def dump(obj: object) -> str:
    return json.dumps(obj, indent=2, sort_keys=False, default=str)
