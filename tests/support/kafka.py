"""Test helpers that talk to the real broker: spawn services, produce, read committed output."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runtime.kafka import security
from runtime.kafka.client import BEGINNING, TopicPartition, connect

REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Cluster:
    """The session's broker: its address and, when it is the local launcher's, the broker
    (whose principals' credentials the tests use)."""

    bootstrap: str
    broker: Any = None  # wardwatch.broker.LocalBroker

    @property
    def secured(self) -> bool:
        return self.broker is not None and self.broker.secure


_cluster: Cluster | None = None
_granted: set[str] = set()


def use_cluster(cluster: Cluster | None) -> Cluster | None:
    """Make `cluster` the one `spawn` gives per-service credentials for (None: none)."""
    global _cluster
    _cluster = cluster
    _granted.clear()
    return cluster


@contextlib.contextmanager
def on_broker(broker: Any) -> Iterator[Cluster]:
    """Make a test's own started LocalBroker the one this process's clients (as `admin`) and
    spawned services (each as its principal) use, until the block ends."""
    previous_cluster = _cluster
    values = {k: v for k, v in broker.client_env("admin").items() if k.startswith("WARDWATCH_")}
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    security.install(None)
    try:
        yield use_cluster(Cluster(broker.bootstrap, broker))  # type: ignore[misc]
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        use_cluster(previous_cluster)


def service_env(args: list[str]) -> dict[str, str]:
    """The environment that runs `wardwatch <args>` as its own principal on the secured broker,
    after granting that principal's ACLs for the `--topic-prefix` in `args` (what an operator
    does once per deployment prefix)."""
    from wardwatch.broker import SERVICES

    if _cluster is None or not _cluster.secured or not args or args[0] not in SERVICES:
        return {}
    prefix = args[args.index("--topic-prefix") + 1] if "--topic-prefix" in args else ""
    if prefix not in _granted:
        _cluster.broker.grant(prefix)
        _granted.add(prefix)
    env = _cluster.broker.client_env(args[0])
    env.pop("KAFKA_BOOTSTRAP_SERVERS", None)
    return env


@dataclass
class Service:
    """A wardwatch service running as its own process (as in production)."""

    name: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL: no clean shutdown, no final commit."""
        if self.alive():
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self, timeout: float = 30.0) -> int:
        if self.alive():
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def spawn(name: str, args: list[str], workdir: Path, env: dict[str, str] | None = None) -> Service:
    """Start `python -m wardwatch <args>` with its output in workdir/<name>.log."""
    log_path = workdir / f"{name}.log"
    full_env = {**os.environ, "PYTHONPATH": str(REPO), **service_env(args), **(env or {})}
    handle = open(log_path, "ab")
    process = subprocess.Popen(
        [sys.executable, "-m", "wardwatch", *args], stdout=handle, stderr=subprocess.STDOUT, env=full_env, cwd=REPO
    )
    return Service(name, process, log_path)


def produce(bootstrap: str, topic: str, items: Iterable[tuple[bytes | None, bytes | None]]) -> int:
    """Produce `items` (key, value) with the client $WARDWATCH_KAFKA_CLIENT names; wait for every ack."""
    producer = connect(bootstrap).producer(client_id="wardwatch-test-producer")
    n = 0
    try:
        for key, value in items:
            producer.send(topic, value, key=key)
            n += 1
        producer.flush(timeout_s=120)
    finally:
        producer.close(timeout_s=10)
    return n


def produce_acked(bootstrap: str, topic: str, items: Iterable[tuple[bytes | None, bytes | None]]) -> list[tuple[int, int]]:
    """Produce `items` one by one and return where each landed: (partition, offset)."""
    producer = connect(bootstrap).producer(client_id="wardwatch-test-producer")
    try:
        return [producer.send_acked(topic, value, key=key).wait(30) for key, value in items]
    finally:
        producer.close(timeout_s=10)


@dataclass(frozen=True)
class Consumed:
    key: bytes | None
    value: bytes | None
    headers: dict[str, bytes]
    partition: int
    offset: int

    def json(self) -> Any:
        return json.loads(self.value) if self.value is not None else None


def read_committed(bootstrap: str, topic: str, *, expect: int | None = None, timeout_s: float = 60.0, quiet_s: float = 3.0) -> list[Consumed]:
    """Every committed record of `topic`: until `expect` arrived, or nothing new for `quiet_s`."""
    consumer = connect(bootstrap).consumer(client_id="wardwatch-test-reader", group_id=None)
    try:
        partitions = consumer.partitions_for(topic)
        deadline = time.monotonic() + 10
        while not partitions and time.monotonic() < deadline:
            time.sleep(0.2)
            partitions = consumer.partitions_for(topic)
        consumer.assign({TopicPartition(topic, p): BEGINNING for p in partitions})
        out: list[Consumed] = []
        deadline = time.monotonic() + timeout_s
        last_new = time.monotonic()
        while time.monotonic() < deadline:
            for r in consumer.poll(0.3, 10_000):
                out.append(Consumed(r.key, r.value, {k: v for k, v in r.headers}, r.partition, r.offset))
                last_new = time.monotonic()
            if expect is not None and len(out) >= expect:
                break
            if expect is None and time.monotonic() - last_new > quiet_s:
                break
        return out
    finally:
        consumer.close()


def wait_until(condition, timeout_s: float = 60.0, interval_s: float = 0.5, message: str = "condition") -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {message}")


class PacedProducer:
    """Produces `items` in chunks with pauses, in a background thread (a stream, not a dump).

    `join()` re-raises whatever went wrong in the thread, so a failed send fails the test.
    """

    def __init__(self, bootstrap: str, topic: str, items: list[tuple[bytes | None, bytes | None]], chunks: int, pause_s: float) -> None:
        import threading

        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(bootstrap, topic, items, chunks, pause_s), daemon=True)
        self._thread.start()

    def _run(self, bootstrap: str, topic: str, items: list[tuple[bytes | None, bytes | None]], chunks: int, pause_s: float) -> None:
        try:
            size = max(1, len(items) // chunks + 1)
            for i in range(0, len(items), size):
                produce(bootstrap, topic, items[i : i + size])
                time.sleep(pause_s)
        except BaseException as exc:  # reported by join()
            self.error = exc

    def is_alive(self) -> bool:
        """Whether it is still producing."""
        return self._thread.is_alive()

    def join(self, timeout_s: float = 300.0) -> None:
        self._thread.join(timeout_s)
        if self.error is not None:
            raise AssertionError(f"producing the test stream failed: {self.error!r}") from self.error


def produce_paced(
    bootstrap: str, topic: str, items: list[tuple[bytes | None, bytes | None]], chunks: int = 20, pause_s: float = 0.4
) -> PacedProducer:
    return PacedProducer(bootstrap, topic, items, chunks, pause_s)


def create_topics(bootstrap: str, prefix: str, partitions: int = 6) -> None:
    """Create every wardwatch topic under `prefix` up front (the broker never auto-creates),
    so a test can produce before its services have finished starting."""
    from runtime.kafka.admin import ensure_topics
    from runtime.topics import ALL

    ensure_topics(bootstrap, ALL, partitions, 1, prefix)


class TransactionProbe:
    """Tells whether a transaction is open on the broker: some partition of the pipeline's topics
    under `prefix` whose high watermark (read_uncommitted) is past its last stable offset
    (read_committed). Only a transactional producer's unfinished records hold it back."""

    def __init__(self, bootstrap: str, prefix: str) -> None:
        from kafka import KafkaConsumer
        from kafka import TopicPartition as KafkaTopicPartition

        from runtime.kafka.client.kafka_python import translate_properties
        from runtime.topics import ALL

        topics = [prefix + spec.name for spec in ALL]

        common = dict(bootstrap_servers=bootstrap.split(","), enable_auto_commit=False,
                      **translate_properties(security.current_properties()))
        self._uncommitted = KafkaConsumer(client_id="wardwatch-test-probe", isolation_level="read_uncommitted", **common)
        self._committed = KafkaConsumer(client_id="wardwatch-test-probe", isolation_level="read_committed", **common)
        self._tps = [KafkaTopicPartition(t, p) for t in topics for p in sorted(self._committed.partitions_for_topic(t) or ())]

    def open(self) -> bool:
        high = self._uncommitted.end_offsets(self._tps)
        stable = self._committed.end_offsets(self._tps)
        return any(high[tp] > stable[tp] for tp in self._tps)

    def close(self) -> None:
        self._uncommitted.close()
        self._committed.close()
