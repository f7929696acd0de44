"""The stateful scorer on a real broker: crashes, rebalances and broker restarts lose nothing,
duplicate nothing, and change no score (exactly-once, docs/guarantees.md)."""

from __future__ import annotations

import json
import random
import socket
import time
from pathlib import Path

import pytest

from ingest import Reading, encode_reading
from inference.processor import ScorerProcessor
from inference.service import load_model
from runtime.metrics import StreamMetrics, new_registry
from runtime.records import InRecord
from runtime.topics import RISK, VITALS
from sim.cohort import CohortConfig, generate
from sim.devices import DeviceConfig
from tests.support.equivalence import RISK_ABS_TOLERANCE
from tests.support.kafka import Service, create_topics, on_broker, produce, produce_paced, read_committed, spawn, wait_until

pytestmark = [pytest.mark.kafka, pytest.mark.both_clients]

# The input goes straight to the stage under test, past ingest's de-duplication: no duplicate
# or reordered deliveries, so every record has exactly one expected output.
CLEAN_DELIVERY = DeviceConfig(duplicate_rate=0.0, reorder_rate=0.0, buffered_per_day=0.0)


def cohort_readings(patients: int, hours: float, seed: int) -> list[Reading]:
    cohort = generate(CohortConfig(patients=patients, hours=hours, seed=seed, deteriorating_fraction=0.3, devices=CLEAN_DELIVERY))
    return [Reading(**r) for r in cohort.readings]  # type: ignore[arg-type]


def offline_scores(readings: list[Reading]) -> dict[tuple[str, int], float]:
    """The reference: the scorer's core over the same readings in one process, no Kafka."""
    model, version = load_model("untrained")
    scorer = ScorerProcessor(model, version, StreamMetrics(new_registry(), "score"))
    records = [InRecord(VITALS, 0, i, None, encode_reading(r), 0) for i, r in enumerate(readings)]
    out = scorer.process(records)
    return {(b["patient_id"], b["seq"]): b["risk"] for b in (json.loads(r.value) for r in out if r.topic == RISK)}


def committed_scores(bootstrap: str, topic: str, expect: int) -> list[tuple[str, int, float]]:
    records = read_committed(bootstrap, topic, expect=expect, timeout_s=180)
    # Keep reading a little longer: a duplicate would show up as an extra record.
    records += read_committed(bootstrap, topic, timeout_s=4, quiet_s=2)[len(records):]
    return [(b["patient_id"], b["seq"], b["risk"]) for b in (r.json() for r in records)]


def assert_same_stream(got: list[tuple[str, int, float]], expected: dict[tuple[str, int], float]) -> None:
    keys = [(p, s) for p, s, _ in got]
    assert len(keys) == len(set(keys)), f"{len(keys) - len(set(keys))} duplicate risk records"
    assert set(keys) == set(expected), f"missing {len(set(expected) - set(keys))} risk records"
    for patient, seq, risk in got:
        assert risk == pytest.approx(expected[(patient, seq)], abs=RISK_ABS_TOLERANCE), (patient, seq)


def scorer(name: str, bootstrap: str, prefix: str, workdir: Path, *extra: str) -> Service:
    return spawn(name, [
        "score", "--bootstrap-servers", bootstrap, "--topic-prefix", prefix, "--metrics-port", "-1",
        "--checkpoint", "untrained", "--instance-id", name, "--max-poll-records", "150", *extra,
    ], workdir)


def risk_count(bootstrap: str, prefix: str) -> int:
    return len(read_committed(bootstrap, prefix + RISK, timeout_s=5, quiet_s=0.5))


def phases(readings: list[Reading], n: int) -> list[list[tuple[bytes, bytes]]]:
    items = [(r.patient_id.encode(), encode_reading(r)) for r in readings]
    size = len(items) // n + 1
    return [items[i : i + size] for i in range(0, len(items), size)]


@pytest.mark.parametrize("commits", ["--overlap-commits", "--no-overlap-commits"])
def test_sigkill_mid_stream_gives_the_same_committed_stream_as_offline(
    commits: str, kafka_bootstrap: str, topic_prefix: str, workdir: Path
) -> None:
    """Either way of committing (the next batch processed while a commit is in flight, or
    each batch waiting for its own) survives a SIGKILL with the committed stream unchanged."""
    readings = cohort_readings(patients=24, hours=3, seed=21)
    expected = offline_scores(readings)
    create_topics(kafka_bootstrap, topic_prefix)
    first, second, third = phases(readings, 3)
    a = scorer("scorer-a", kafka_bootstrap, topic_prefix, workdir, commits)
    b = scorer("scorer-b", kafka_bootstrap, topic_prefix, workdir, commits)
    restarted: Service | None = None
    try:
        produce(kafka_bootstrap, topic_prefix + VITALS, first)
        wait_until(lambda: risk_count(kafka_bootstrap, topic_prefix) >= len(first), timeout_s=180, message="first third scored")
        # The crash lands while the second third is streaming in, at a random moment.
        producer = produce_paced(kafka_bootstrap, topic_prefix + VITALS, second, chunks=10, pause_s=0.3)
        victim = random.Random(5).choice([a, b])
        time.sleep(random.Random(6).uniform(0.2, 2.5))
        victim.kill()
        metrics_port = _free_port()
        restarted = scorer(victim.name, kafka_bootstrap, topic_prefix, workdir, "--metrics-port", str(metrics_port), commits)
        producer.join()
        produce(kafka_bootstrap, topic_prefix + VITALS, third)
        got = committed_scores(kafka_bootstrap, topic_prefix + RISK, len(readings))
        assert restarted.alive(), restarted.log()
        # The restarted instance rebuilds its patients' state from the changelog when the group
        # hands its partitions back. On a loaded machine that can come after the survivor has
        # scored everything (a cooperative rebalance takes two rounds), so wait for it.
        wait_until(lambda: metric(metrics_port, "wardwatch_restore_records_total") > 0, timeout_s=120,
                   message="the restarted scorer restoring its partitions' state from the changelog")
        assert restarted.alive(), restarted.log()
    finally:
        for s in (a, b, restarted):
            if s is not None:
                s.stop()
    assert_same_stream(got, expected)


def test_scaling_out_and_in_mid_stream_gives_the_same_committed_stream(kafka_bootstrap: str, topic_prefix: str, workdir: Path) -> None:
    readings = cohort_readings(patients=24, hours=3, seed=22)
    expected = offline_scores(readings)
    create_topics(kafka_bootstrap, topic_prefix)
    services = [scorer("scale-1", kafka_bootstrap, topic_prefix, workdir)]
    done = 0
    try:
        # Each change of membership happens while a quarter of the stream is arriving.
        for i, part in enumerate(phases(readings, 4)):
            producer = produce_paced(kafka_bootstrap, topic_prefix + VITALS, part, chunks=8, pause_s=0.3)
            if i == 1:
                services.append(scorer("scale-2", kafka_bootstrap, topic_prefix, workdir))
            elif i == 2:
                services.append(scorer("scale-3", kafka_bootstrap, topic_prefix, workdir))
            elif i == 3:
                assert services[0].stop() == 0, services[0].log()  # scale in: a clean leave hands its partitions over
            producer.join()
            done += len(part)
            wait_until(lambda done=done: risk_count(kafka_bootstrap, topic_prefix) >= done, timeout_s=180, message=f"phase {i} scored")
        got = committed_scores(kafka_bootstrap, topic_prefix + RISK, len(readings))
    finally:
        for s in services:
            s.stop()
    assert_same_stream(got, expected)


def metric(port: int, name: str) -> float:
    """The sum of a metric's samples on a service's /metrics."""
    import urllib.request

    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.split("{")[0].split(" ")[0] == name)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_scorer_survives_a_broker_restart_without_loss(tmp_path_factory: pytest.TempPathFactory, workdir: Path) -> None:
    from wardwatch.broker import LocalBroker

    broker = LocalBroker(port=_free_port(), home=tmp_path_factory.mktemp("restart-broker"))
    bootstrap = broker.start()
    with on_broker(broker):
        _survive_restart(broker, bootstrap, workdir)


def _survive_restart(broker, bootstrap: str, workdir: Path) -> None:  # noqa: ANN001
    readings = cohort_readings(patients=12, hours=2, seed=23)
    expected = offline_scores(readings)
    half = len(readings) // 2
    create_topics(bootstrap, "")
    service = scorer("survivor", bootstrap, "", workdir)
    try:
        produce(bootstrap, VITALS, ((r.patient_id.encode(), encode_reading(r)) for r in readings[:half]))
        wait_until(lambda: risk_count(bootstrap, "") >= half, timeout_s=120, message="first half scored")
        broker.stop(purge=False)
        time.sleep(3)
        assert service.alive(), "the scorer must ride out a broker outage"
        broker.start()
        produce(bootstrap, VITALS, ((r.patient_id.encode(), encode_reading(r)) for r in readings[half:]))
        got = committed_scores(bootstrap, RISK, len(readings))
        assert service.alive(), service.log()
    finally:
        service.stop()
        broker.stop(purge=True)
    assert_same_stream(got, expected)
