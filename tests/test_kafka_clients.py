"""The two Kafka clients give the same pipeline: the same raw input through ingest, score and
alerts on kafka-python and on confluent-kafka lands as the same records on every output topic
(model risk within 1e-5, everything else equal), partition by partition, in the same order."""

from __future__ import annotations

import json
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from runtime.kafka.client import CLIENTS
from runtime.records import to_json
from runtime.topics import ALERTS, RISK, VITALS, VITALS_DLQ, VITALS_RAW
from sim.cohort import CohortConfig, generate
from sim.live import live_start_ms
from tests.support.equivalence import EXPLANATION_ABS_TOLERANCE, RISK_ABS_TOLERANCE
from tests.support.kafka import Consumed, Service, create_topics, produce, read_committed, spawn, wait_until

pytestmark = pytest.mark.kafka

BAD = [b"\xff\xfe not json", b'["not", "an", "object"]', b'{"patient_id": "P9", "device_id": "D9", "seq": 1}']


def raw_stream() -> list[tuple[bytes | None, bytes]]:
    """A cohort with its device faults (duplicates, reordering, store-and-forward) and a few
    malformed payloads."""
    hours = 4.0
    cohort = generate(CohortConfig(patients=8, hours=hours, seed=17, start_ms=live_start_ms(hours, 0), deteriorating_fraction=0.5))
    raw: list[tuple[bytes | None, bytes]] = [(str(r["patient_id"]).encode(), to_json(r)) for r in cohort.readings]
    middle = len(raw) // 2
    # Keyed: a null key's partition is chosen at random, and the two runs must get the same input.
    return raw[:middle] + [(b"P9", b) for b in BAD] + raw[middle:]


def same(a: Any, b: Any, where: str) -> None:
    """Equal, except floats: model risk within the risk tolerance, an explanation's rounded
    numbers within one unit of their last place (tests/support/equivalence.py)."""
    if isinstance(a, float) or isinstance(b, float):
        tolerance = EXPLANATION_ABS_TOLERANCE if ".explain." in where else RISK_ABS_TOLERANCE
        assert a == pytest.approx(b, abs=tolerance), where
    elif isinstance(a, dict) and isinstance(b, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, list) and isinstance(b, list):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            same(x, y, f"{where}[{i}]")
    else:
        assert a == b, where


def settled(bootstrap: str, prefix: str, last: list[int]) -> bool:
    """Every reading ingest passed on is scored or dead-lettered by the scorer, and nothing
    new arrived since the previous look."""
    vitals = len(read_committed(bootstrap, prefix + VITALS, timeout_s=10, quiet_s=1))
    risk = len(read_committed(bootstrap, prefix + RISK, timeout_s=10, quiet_s=1))
    late = sum(r.headers.get("stage") == b"score" for r in read_committed(bootstrap, prefix + VITALS_DLQ, timeout_s=10, quiet_s=1))
    done = vitals > 0 and risk + late == vitals and last == [vitals, risk]
    last[:] = [vitals, risk]
    return done


def by_partition(records: list[Consumed]) -> dict[int, list[Consumed]]:
    out: dict[int, list[Consumed]] = defaultdict(list)
    for r in sorted(records, key=lambda r: (r.partition, r.offset)):
        out[r.partition].append(r)
    return dict(out)


def test_kafka_python_and_confluent_give_the_same_outputs_for_the_same_input(kafka_bootstrap: str, workdir: Path) -> None:
    stream = raw_stream()
    run = f"clients{int(time.time() * 1000) % 10**8}"
    prefixes = {client: f"{run}-{client}." for client in CLIENTS}
    services: list[Service] = []
    outputs: dict[str, dict[str, list[Consumed]]] = {}
    try:
        for client, prefix in prefixes.items():
            create_topics(kafka_bootstrap, prefix)
            common = ["--bootstrap-servers", kafka_bootstrap, "--topic-prefix", prefix, "--metrics-port", "-1", "--kafka-client", client]
            services += [spawn(f"{stage}-{client}", [stage, *common], workdir) for stage in ("ingest", "score", "alerts")]
        for prefix in prefixes.values():
            produce(kafka_bootstrap, prefix + VITALS_RAW, stream)
        for client, prefix in prefixes.items():
            last: list[int] = []
            wait_until(lambda prefix=prefix, last=last: settled(kafka_bootstrap, prefix, last), timeout_s=300, interval_s=2, message=f"{client} pipeline done")
            outputs[client] = {
                RISK: read_committed(kafka_bootstrap, prefix + RISK),
                ALERTS: read_committed(kafka_bootstrap, prefix + ALERTS, timeout_s=60, quiet_s=5),
                VITALS: read_committed(kafka_bootstrap, prefix + VITALS),
                VITALS_DLQ: read_committed(kafka_bootstrap, prefix + VITALS_DLQ),
            }
        for service in services:
            assert service.alive(), service.log()
    finally:
        for service in services:
            service.stop()

    first, second = (outputs[c] for c in CLIENTS)
    assert first[RISK] and first[VITALS], "the input is scored"
    assert len(first[VITALS_DLQ]) >= len(BAD) and first[ALERTS], "the input exercises dead-letters and alerts"
    for topic in (VITALS, VITALS_DLQ, RISK, ALERTS):
        a, b = by_partition(first[topic]), by_partition(second[topic])
        assert a.keys() == b.keys(), topic
        for partition in a:
            assert len(a[partition]) == len(b[partition]), f"{topic}[{partition}]"
            for x, y in zip(a[partition], b[partition]):
                where = f"{topic}[{partition}]@{x.offset}"
                assert x.key == y.key, where
                if topic == VITALS_DLQ:
                    assert x.value == y.value, where
                    assert {k: v for k, v in x.headers.items() if k != "source-topic"} == {
                        k: v for k, v in y.headers.items() if k != "source-topic"
                    }, where
                else:
                    assert x.headers == y.headers, where
                    same(json.loads(x.value or b"null"), json.loads(y.value or b"null"), where)
