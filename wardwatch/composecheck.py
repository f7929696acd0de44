"""Account for every valid reading on a running stack: `python -m wardwatch.composecheck`.

Reads `vitals`, `risk` and `vitals.dlq` (read_committed) to their ends and checks the scorer's
exactly-once promise: every validated reading has exactly one risk record, or was dead-lettered
by the scorer (`late`) — nothing lost, nothing doubled. Waits up to `--timeout` seconds for the
pipeline to drain, then prints one JSON line and exits 0 when the books balance, 1 when not.
The compose test runs it inside a service container, with that service's Kafka settings.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import Counter
from typing import Any

from runtime.kafka.client import BEGINNING, KafkaClient, TopicPartition, connect
from runtime.topics import RISK, VITALS, VITALS_DLQ

Identity = tuple[str, int, int]


def _identity(body: dict[str, Any]) -> Identity:
    return (str(body["patient_id"]), int(body["seq"]), int(body["ts_ms"]))


def _read_all(kafka: KafkaClient, topic: str) -> list[tuple[dict[str, Any], dict[str, bytes]]]:
    """Every committed record of `topic`, decoded, with its headers."""
    consumer = kafka.consumer(client_id="wardwatch-composecheck", group_id=None, large_fetches=True)
    try:
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for(topic))]
        if not tps:
            return []
        end = consumer.end_offsets(tps)
        consumer.assign({tp: BEGINNING for tp in tps})
        out: list[tuple[dict[str, Any], dict[str, bytes]]] = []
        deadline = time.monotonic() + 120
        while any((consumer.position(tp) or 0) < end[tp] for tp in tps) and time.monotonic() < deadline:
            for record in consumer.poll(1.0, 10_000):
                if record.value is None:
                    continue
                try:
                    body = json.loads(record.value)
                except ValueError:
                    continue  # undecodable bytes in a DLQ: not a reading this check accounts for
                out.append((body, dict(record.headers)))
        return out
    finally:
        consumer.close()


def reconcile(kafka: KafkaClient, prefix: str = "") -> dict[str, int]:
    vitals = Counter(_identity(body) for body, _ in _read_all(kafka, prefix + VITALS))
    risk = Counter(_identity(body) for body, _ in _read_all(kafka, prefix + RISK))
    late = Counter(
        _identity(body)
        for body, headers in _read_all(kafka, prefix + VITALS_DLQ)
        if headers.get("stage") == b"score" and {"patient_id", "seq", "ts_ms"} <= body.keys()
    )
    expected = vitals - late
    return {
        "vitals": sum(vitals.values()),
        "risk": sum(risk.values()),
        "late": sum(late.values()),
        "missing": sum((expected - risk).values()),
        "duplicates": sum((risk - expected).values()),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m wardwatch.composecheck", description=__doc__.splitlines()[0])
    parser.add_argument("--timeout", type=float, default=180.0, help="seconds to wait for the pipeline to drain")
    args = parser.parse_args(argv)
    kafka = connect(os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "localhost:9092"))
    prefix = os.environ.get("WARDWATCH_TOPIC_PREFIX", "")
    deadline = time.monotonic() + args.timeout
    while True:
        report = reconcile(kafka, prefix)
        balanced = report["missing"] == 0 and report["duplicates"] == 0 and report["vitals"] > 0
        if balanced or time.monotonic() > deadline:
            print(json.dumps(report))
            return 0 if balanced else 1
        time.sleep(5)


if __name__ == "__main__":
    sys.exit(main())
