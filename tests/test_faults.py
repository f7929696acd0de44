"""Bad days, on a real broker, for each stateful stage (ingest, score, alerts).

Each fault is a real one (signals, sockets, a killed broker; bench/faults.py) injected
while records flow. After it, every input record must be accounted for exactly once downstream
(ingest: in `vitals` or, with its reason, in `vitals.dlq`), nothing may be doubled, scores and
alert events must equal an uninterrupted offline run (risk within abs 1e-5), and the service
must be up again within the bound each test states.
"""

from __future__ import annotations

import random
import re
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ingest import encode_reading
from ingest.contract import decode_reading
from runtime.topics import ALERTS, RISK, VITALS, VITALS_DLQ, VITALS_RAW
from tests.support.faults import ProxiedBroker, TcpProxy, paused, proxied_broker, wait_exit
from tests.support.kafka import Service, TransactionProbe, create_topics, on_broker, produce, produce_paced, read_committed, spawn, wait_until
from tests.test_alerts_kafka import offline_alerts, risk_stream
from tests.test_scorer_kafka import assert_same_stream, cohort_readings, offline_scores
from wardwatch.broker import _free_port

pytestmark = pytest.mark.kafka

# Short enough that a pause of PAUSE_S outlives both the transaction and the group session
# (10 s, runtime/kafka/loop.py); the stage must recover by itself.
TRANSACTION_TIMEOUT_MS = 5000
PAUSE_S = 12.0
# A stage must be producing again this long after the fault ends (restore + rejoin + backlog).
RECOVERY_BOUND_S = 90.0


@dataclass
class FaultBroker:
    broker: ProxiedBroker
    proxy: TcpProxy

    @property
    def bootstrap(self) -> str:
        """The direct listener: the test's own clients."""
        return self.broker.bootstrap

    @property
    def proxied(self) -> str:
        """Through the proxy: the service under test."""
        return self.broker.proxied_bootstrap


@pytest.fixture(scope="module")
def fault_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaultBroker]:
    broker, (proxy,) = proxied_broker(tmp_path_factory.mktemp("fault-broker"))
    try:
        with on_broker(broker):  # this module's clients and services use this broker's principals
            yield FaultBroker(broker, proxy)
    finally:
        proxy.close()
        broker.stop(purge=True)


@pytest.fixture(autouse=True)
def _healthy_network(fault_broker: FaultBroker) -> Iterator[None]:
    fault_broker.proxy.forward()
    yield
    fault_broker.proxy.forward()


# -- one case per stage ----------------------------------------------------------------------
@dataclass
class Case:
    """A stage, the input it gets, and how to check its committed output exactly."""

    stage: str
    input_topic: str
    items: list[tuple[bytes | None, bytes]]
    expected_outputs: int
    progress: Callable[[str, str], int]
    verify: Callable[[str, str], None]
    extra_args: tuple[str, ...] = ()

    def spawn(self, name: str, bootstrap: str, prefix: str, workdir: Path, *, instance: str | None = None,
              metrics_port: int = -1) -> Service:
        args = [self.stage, "--bootstrap-servers", bootstrap, "--topic-prefix", prefix, "--metrics-port", str(metrics_port),
                "--instance-id", instance or name, "--max-poll-records", "100", *self.extra_args]
        return spawn(name, args, workdir, env={"WARDWATCH_TRANSACTION_TIMEOUT_MS": str(TRANSACTION_TIMEOUT_MS)})


def count(bootstrap: str, topic: str) -> int:
    return len(read_committed(bootstrap, topic, timeout_s=5, quiet_s=0.5))


def all_committed(bootstrap: str, topic: str, expect: int) -> list:
    records = read_committed(bootstrap, topic, expect=expect, timeout_s=RECOVERY_BOUND_S * 2)
    # Keep reading a little longer: a duplicate would show up as an extra record.
    return records + read_committed(bootstrap, topic, timeout_s=4, quiet_s=2)[len(records):]


def score_case(seed: int) -> Case:
    readings = cohort_readings(patients=16, hours=2, seed=seed)
    expected = offline_scores(readings)

    def verify(bootstrap: str, prefix: str) -> None:
        got = [(b["patient_id"], b["seq"], b["risk"]) for b in (r.json() for r in all_committed(bootstrap, prefix + RISK, len(expected)))]
        assert_same_stream(got, expected)

    return Case("score", VITALS, [(r.patient_id.encode(), encode_reading(r)) for r in readings], len(expected),
                lambda b, p: count(b, p + RISK), verify, ("--checkpoint", "untrained"))


def alerts_case(seed: int) -> Case:
    stream = risk_stream(patients=16, hours=8, seed=seed)
    expected = offline_alerts(stream, partitions=6)
    assert len(expected) >= 5, "the cohort must raise alerts for this test to mean anything"

    def key(a: dict) -> tuple:
        return (a["patient_id"], a["ts_ms"], a["alert_id"], a["status"], a["severity"], a["rule"])

    def verify(bootstrap: str, prefix: str) -> None:
        got = [r.json() for r in all_committed(bootstrap, prefix + ALERTS, len(expected))]
        assert len(got) == len({key(a) for a in got}), "an alert event was doubled"
        assert sorted(map(key, got)) == sorted(map(key, expected))

    return Case("alerts", RISK, list(stream), len(expected), lambda b, p: count(b, p + ALERTS), verify)


def ingest_case(seed: int) -> Case:
    readings = cohort_readings(patients=16, hours=2, seed=seed)
    items: list[tuple[bytes | None, bytes]] = []
    for i, r in enumerate(readings):
        items.append((r.patient_id.encode(), encode_reading(r)))
        if i % 40 == 0:  # malformed payloads must land in the dead-letter topic, once each
            items.append((r.patient_id.encode(), b"{not json " + str(i).encode()))
    bad = sum(1 for _, v in items if v.startswith(b"{not json"))

    def verify(bootstrap: str, prefix: str) -> None:
        vitals = all_committed(bootstrap, prefix + VITALS, len(items) - bad)
        dlq = all_committed(bootstrap, prefix + VITALS_DLQ, bad)
        origin = Counter((int(r.headers["source-partition"]), int(r.headers["source-offset"])) for r in [*vitals, *dlq])
        assert not [k for k, n in origin.items() if n > 1], "an input record was emitted twice"
        assert len(origin) == len(items), f"{len(items) - len(origin)} input records are missing from vitals and the DLQ"
        assert all(r.headers.get("reason") for r in dlq), "a dead letter without its reason"
        assert sorted(r.value for r in dlq) == sorted(v for _, v in items if v.startswith(b"{not json"))
        # Ingest re-encodes what it validated (12.0 -> 12): compare the readings, not the bytes.
        assert Counter(decode_reading(r.value) for r in vitals if r.value is not None) == Counter(
            decode_reading(v) for _, v in items if not v.startswith(b"{not json")
        )

    return Case("ingest", VITALS_RAW, items, len(items), lambda b, p: count(b, p + VITALS) + count(b, p + VITALS_DLQ), verify,
                ("--max-age-ms", "0", "--max-future-ms", "0"))


CASES: dict[str, Callable[[int], Case]] = {"ingest": ingest_case, "score": score_case, "alerts": alerts_case}


def metric(port: int, name: str, **labels: str) -> float:
    """One sample from the service's /metrics (0 when the series is absent)."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    total = 0.0
    for line in text.splitlines():
        match = re.match(r"^(\w+)(?:\{(.*)\})? (\S+)$", line)
        if not match or match.group(1) != name:
            continue
        have = dict(re.findall(r'(\w+)="([^"]*)"', match.group(2) or ""))
        if all(have.get(k) == v for k, v in labels.items()):
            total += float(match.group(3))
    return total


def recovered_within(case: Case, bootstrap: str, prefix: str, before: int, bound_s: float = RECOVERY_BOUND_S) -> float:
    """Seconds until the stage commits output beyond `before` again; fails past `bound_s`."""
    started = time.monotonic()
    wait_until(lambda: min(before + 1, case.expected_outputs) <= case.progress(bootstrap, prefix), timeout_s=bound_s, interval_s=0.5,
               message=f"{case.stage} committing again within {bound_s:.0f}s of the fault")
    return time.monotonic() - started


# -- pause -----------------------------------------------------------------------------------
def pause_inside_a_transaction(service: Service, probe: TransactionProbe, seconds: float, within_s: float = 60.0) -> None:
    """SIGSTOP the service at a moment it has a transaction open on the broker (its records
    written, not yet committed) and keep it stopped for `seconds`. A stop that finds no open
    transaction is ended at once (well inside any timeout) and tried again a moment later."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        with paused(service):
            stopped = time.monotonic()
            time.sleep(0.3)  # a commit the service already sent completes meanwhile
            if probe.open():
                time.sleep(max(0.0, seconds - (time.monotonic() - stopped)))
                return
        time.sleep(random.uniform(0.05, 0.5))
    raise AssertionError(f"the service was never caught inside an open transaction within {within_s:.0f}s")


@pytest.mark.both_clients
@pytest.mark.parametrize("stage", ["ingest", "score", "alerts"])
def test_a_stage_paused_past_its_transaction_and_session_timeouts_recovers_by_itself(
    stage: str, fault_broker: FaultBroker, topic_prefix: str, workdir: Path
) -> None:
    """A lone instance SIGSTOPped for longer than its transaction timeout and its session
    timeout: the broker aborts its open transaction and drops it from the group. After
    SIGCONT it must replace its producer, rewind, rejoin and finish the stream exactly."""
    case = CASES[stage](41)
    bootstrap = fault_broker.bootstrap
    create_topics(bootstrap, topic_prefix)
    port = _free_port()
    # Latency on the service's connections keeps it inside open transactions much of the time.
    fault_broker.proxy.forward(delay_s=0.02)
    service = case.spawn(f"{stage}-paused", fault_broker.proxied, topic_prefix, workdir, metrics_port=port)
    probe = TransactionProbe(bootstrap, topic_prefix)
    try:
        # Input for about a minute, so the pause falls while records still flow.
        producer = produce_paced(bootstrap, topic_prefix + case.input_topic, case.items, chunks=110, pause_s=0.5)
        wait_until(lambda: case.progress(bootstrap, topic_prefix) > 0, timeout_s=120, message=f"{stage} started")
        pause_inside_a_transaction(service, probe, PAUSE_S)
        before = case.progress(bootstrap, topic_prefix)
        recovered_within(case, bootstrap, topic_prefix, before)
        assert metric(port, "wardwatch_transactions_total", stage=stage, result="aborted") >= 1, (
            "the broker aborted the open transaction of the paused service, yet the service never counted an abort")
        producer.join()
        case.verify(bootstrap, topic_prefix)
        assert service.alive(), service.log()[-3000:]
    finally:
        probe.close()
        service.stop()


@pytest.mark.both_clients
def test_a_paused_scorer_hands_its_partitions_over_and_rejoins(fault_broker: FaultBroker, topic_prefix: str, workdir: Path) -> None:
    """Two scorers; one SIGSTOPped past its session timeout. The live one takes its partitions
    meanwhile (its output keeps growing during the pause); the paused one rejoins after SIGCONT."""
    case = score_case(42)
    bootstrap = fault_broker.bootstrap
    create_topics(bootstrap, topic_prefix)
    a = case.spawn("pause-a", bootstrap, topic_prefix, workdir)
    b = case.spawn("pause-b", bootstrap, topic_prefix, workdir)
    try:
        producer = produce_paced(bootstrap, topic_prefix + case.input_topic, case.items, chunks=40, pause_s=0.5)
        wait_until(lambda: case.progress(bootstrap, topic_prefix) > 0, timeout_s=120, message="scoring started")
        with paused(a):
            # Past the session timeout the group moves a's partitions to b: while a is still
            # stopped, b alone must finish the whole stream.
            time.sleep(PAUSE_S)
            wait_until(lambda: case.progress(bootstrap, topic_prefix) >= case.expected_outputs, timeout_s=RECOVERY_BOUND_S,
                       message="the live scorer finishing the stream while the other is paused")
        producer.join()
        case.verify(bootstrap, topic_prefix)
        time.sleep(5)  # a, continued, rejoins (and must not die of its stale transaction)
        assert a.alive(), a.log()[-3000:]
        assert b.alive(), b.log()[-3000:]
    finally:
        a.stop()
        b.stop()


# -- zombie ----------------------------------------------------------------------------------
@pytest.mark.both_clients
@pytest.mark.parametrize("stage", ["ingest", "score", "alerts"])
def test_a_second_process_with_the_same_instance_id_fences_the_first(
    stage: str, fault_broker: FaultBroker, topic_prefix: str, workdir: Path
) -> None:
    """Two processes with one instance id: the older is fenced and exits (code 1) without
    committing anything more, the newer carries on, the output stays exact."""
    case = CASES[stage](43)
    bootstrap = fault_broker.bootstrap
    create_topics(bootstrap, topic_prefix)
    old = case.spawn(f"{stage}-old", bootstrap, topic_prefix, workdir, instance="twin")
    new: Service | None = None
    third = len(case.items) // 3
    try:
        produce(bootstrap, topic_prefix + case.input_topic, case.items[:third])
        wait_until(lambda: case.progress(bootstrap, topic_prefix) > 0, timeout_s=120, message=f"{stage} started")
        new = case.spawn(f"{stage}-new", bootstrap, topic_prefix, workdir, instance="twin")
        # The rest streams in while both run: the old one's next transaction meets the fence.
        producer = produce_paced(bootstrap, topic_prefix + case.input_topic, case.items[third:], chunks=30, pause_s=0.5)
        code = wait_exit(old, timeout_s=90)
        assert code == 1, f"the fenced instance must exit with 1, got {code}: {old.log()[-3000:]}"
        producer.join()
        case.verify(bootstrap, topic_prefix)
        assert new.alive(), new.log()[-3000:]
    finally:
        old.stop()
        if new is not None:
            new.stop()


# -- network ---------------------------------------------------------------------------------
@pytest.mark.parametrize("stage", ["ingest", "score", "alerts"])
def test_network_cuts_and_slowness_between_a_stage_and_the_broker(
    stage: str, fault_broker: FaultBroker, topic_prefix: str, workdir: Path
) -> None:
    """Through the proxy: a blackhole longer than the transaction timeout, every connection
    reset, then a slow link; the stage rides all of it out and the output stays exact."""
    case = CASES[stage](44)
    bootstrap, proxy = fault_broker.bootstrap, fault_broker.proxy
    create_topics(bootstrap, topic_prefix)
    service = case.spawn(f"{stage}-net", fault_broker.proxied, topic_prefix, workdir)
    try:
        producer = produce_paced(bootstrap, topic_prefix + case.input_topic, case.items, chunks=30, pause_s=0.5)
        wait_until(lambda: case.progress(bootstrap, topic_prefix) > 0, timeout_s=120, message=f"{stage} started")
        proxy.blackhole()
        time.sleep(TRANSACTION_TIMEOUT_MS / 1000 + 3)
        proxy.forward()
        recovered_within(case, bootstrap, topic_prefix, case.progress(bootstrap, topic_prefix))
        proxy.drop()
        time.sleep(2)
        proxy.forward(delay_s=0.05)
        time.sleep(3)
        proxy.forward()
        producer.join()
        case.verify(bootstrap, topic_prefix)
        assert service.alive(), service.log()[-3000:]
    finally:
        service.stop()


@pytest.mark.both_clients
def test_a_transaction_whose_records_were_not_delivered_does_not_commit(
    kafka_client: str, fault_broker: FaultBroker, topic_prefix: str
) -> None:
    """The client layer's promise the loop's exactly-once rests on: a commit that returns means
    every record of the transaction is in the log. Records sent while the connection is a
    blackhole outlive their delivery timeout; the commit after the network is back must then
    fail (the loop aborts and rewinds), never succeed without them. (kafka-python on its own
    commits such a transaction: a retriable error past the delivery timeout fails the batch
    without failing the transaction.)"""
    from runtime.kafka.client import KafkaClientError, connect

    topic = topic_prefix + VITALS
    create_topics(fault_broker.bootstrap, topic_prefix)
    producer = connect(fault_broker.proxied).producer(
        client_id="wardwatch-test-undelivered", transactional_id=f"{topic_prefix}undelivered",
        transaction_timeout_ms=60_000, delivery_timeout_ms=3000, request_timeout_ms=1000)
    try:
        producer.init_transactions()
        producer.begin_transaction()
        producer.send(topic, b"warm-up", b"k")  # the partition joins the transaction, its leader is known
        time.sleep(1.0)
        fault_broker.proxy.blackhole()
        for i in range(10):
            producer.send(topic, f"record {i}".encode(), b"k")
        time.sleep(6.0)  # past the delivery timeout: these batches fail
        fault_broker.proxy.forward()
        try:
            producer.commit_transaction()
            committed = True
        except KafkaClientError:
            committed = False
    finally:
        fault_broker.proxy.forward()
        producer.close(timeout_s=5)
    got = read_committed(fault_broker.bootstrap, topic, timeout_s=10, quiet_s=2)
    if committed:
        assert len(got) == 11, f"the transaction committed, yet {11 - len(got)} of its 11 records are not in the log"
    else:
        assert got == [], "an aborted transaction's records are visible"
    assert not committed, f"{kafka_client}: a transaction whose records failed delivery committed"


@pytest.mark.both_clients
def test_offsets_the_group_refused_are_not_committed_by_the_next_transaction(
    kafka_client: str, fault_broker: FaultBroker, topic_prefix: str
) -> None:
    """A transaction whose offsets the group refuses (their consumer is no longer a member: a
    pause past the session timeout) aborts, and the next transaction commits its own offsets
    only. (kafka-python on its own keeps the refused offsets pending and sends them again with
    the next transaction's: a partition that transaction never read would jump past records
    whose outputs were aborted. The soak lost a paused scorer's backlog of one partition so.)"""
    from runtime.kafka.client import KafkaClientError, TopicPartition, connect

    topic = topic_prefix + VITALS
    create_topics(fault_broker.bootstrap, topic_prefix)
    kafka = connect(fault_broker.bootstrap)
    group = f"{topic_prefix}refused"

    def member(name: str):
        consumer = kafka.consumer(client_id=f"wardwatch-test-{name}", group_id=group)
        assigned: list = []
        consumer.subscribe([topic], on_assigned=assigned.extend, on_revoked=lambda tps: None)
        wait_until(lambda: consumer.poll(0.5, 10) == [] and bool(assigned), timeout_s=60, message=f"{name} joining the group")
        return consumer

    first = member("first")
    stale = first.group_metadata()
    first.close()  # it leaves the group: its member id is unknown from now on
    p0, p1 = TopicPartition(topic, 0), TopicPartition(topic, 1)
    producer = kafka.producer(client_id="wardwatch-test-refused", transactional_id=f"{topic_prefix}refused",
                              transaction_timeout_ms=60_000)
    second = None
    try:
        producer.init_transactions()
        producer.begin_transaction()
        producer.send(topic, b"aborted", b"k", partition=0)
        with pytest.raises(KafkaClientError):
            producer.send_offsets_to_transaction({p0: 10, p1: 10}, stale)
            producer.commit_transaction()
        producer.abort_transaction()
        second = member("second")
        producer.begin_transaction()
        producer.send(topic, b"committed", b"k", partition=0)
        producer.send_offsets_to_transaction({p0: 3}, second.group_metadata())
        producer.commit_transaction()
        assert second.committed([p0, p1]) == {p0: 3, p1: None}, "the refused offsets of the aborted transaction were committed"
    finally:
        producer.close(timeout_s=5)
        if second is not None:
            second.close()


# -- broker ----------------------------------------------------------------------------------
@pytest.mark.parametrize("stage", ["ingest", "score", "alerts"])
def test_the_broker_killed_mid_transaction(stage: str, fault_broker: FaultBroker, topic_prefix: str, workdir: Path) -> None:
    """SIGKILL of the broker while a transaction is open, down for longer than the stage's
    transaction timeout (which is also its producer's delivery timeout), restarted: the open
    transaction fails and is aborted, and the stage carries on with nothing lost or doubled."""
    case = CASES[stage](45)
    bootstrap, broker = fault_broker.bootstrap, fault_broker.broker
    create_topics(bootstrap, topic_prefix)
    port = _free_port()
    # Latency on the service's connections stretches the first half's transactions over several
    # seconds, so the broker dies inside one.
    fault_broker.proxy.forward(delay_s=0.05)
    half = len(case.items) // 2
    probe = TransactionProbe(bootstrap, topic_prefix)
    service = case.spawn(f"{stage}-broker", fault_broker.proxied, topic_prefix, workdir, metrics_port=port)
    try:
        produce(bootstrap, topic_prefix + case.input_topic, case.items[:half])
        # Mid-stream, the stage working through the first half: killed the moment the broker
        # holds an open transaction of it.
        wait_until(probe.open, timeout_s=120, interval_s=0.05, message=f"an open transaction of {stage}")
        probe.close()
        broker.kill()
        time.sleep(TRANSACTION_TIMEOUT_MS / 1000 + 3)
        assert service.alive(), "the stage must ride out a broker outage"
        broker.start()
        produce(bootstrap, topic_prefix + case.input_topic, case.items[half:])
        case.verify(bootstrap, topic_prefix)
        assert metric(port, "wardwatch_transactions_total", stage=stage, result="aborted") >= 1, "no transaction was open when the broker died"
        assert service.alive(), service.log()[-3000:]
    finally:
        probe.close()
        service.stop()


# -- random kills ----------------------------------------------------------------------------
@pytest.mark.parametrize("stage", ["ingest", "score", "alerts"])
def test_repeated_random_sigkills_while_records_flow(stage: str, fault_broker: FaultBroker, topic_prefix: str, workdir: Path) -> None:
    """Two instances; three times a seeded random one is SIGKILLed at a seeded random moment
    and restarted with its instance id. The committed output equals the offline run."""
    case = CASES[stage](46)
    rng = random.Random(46)
    bootstrap = fault_broker.bootstrap
    create_topics(bootstrap, topic_prefix)
    services = {name: case.spawn(name, bootstrap, topic_prefix, workdir) for name in (f"{stage}-k1", f"{stage}-k2")}
    try:
        producer = produce_paced(bootstrap, topic_prefix + case.input_topic, case.items, chunks=30, pause_s=0.5)
        wait_until(lambda: case.progress(bootstrap, topic_prefix) > 0, timeout_s=120, message=f"{stage} started")
        for _ in range(3):
            time.sleep(rng.uniform(0.5, 3.0))
            name = rng.choice(sorted(services))
            services[name].kill()
            services[name] = case.spawn(name, bootstrap, topic_prefix, workdir)
        producer.join()
        case.verify(bootstrap, topic_prefix)
        for s in services.values():
            assert s.alive(), s.log()[-3000:]
    finally:
        for s in services.values():
            s.stop()


def test_a_second_service_on_a_taken_metrics_port_stops_with_one_line(fault_broker: FaultBroker, workdir: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        service = spawn("port-clash", ["score", "--bootstrap-servers", fault_broker.bootstrap, "--metrics-port", str(port),
                                       "--checkpoint", "untrained"], workdir)
        code = wait_exit(service, timeout_s=120)
    assert code == 2
    lines = [line for line in service.log().splitlines() if line.strip()]
    assert lines[-1].startswith("wardwatch score: configuration error: --metrics-port=" + str(port)), lines[-5:]
    assert "Traceback" not in service.log()
