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

from runtime.kafka import clients
from runtime.topics import RISK, VITALS, VITALS_DLQ

Identity = tuple[str, int, int]


def _identity(body: dict[str, Any]) -> Identity:
    return (str(body["patient_id"]), int(body["seq"]), int(body["ts_ms"]))


def _read_all(bootstrap: str, topic: str) -> list[tuple[dict[str, Any], dict[str, bytes]]]:
    """Every committed record of `topic`, decoded, with its headers."""
    from kafka import TopicPartition

    consumer = clients.consumer(bootstrap, client_id="wardwatch-composecheck", group_id=None)
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        if not tps:
            return []
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        end = consumer.end_offsets(tps)
        out: list[tuple[dict[str, Any], dict[str, bytes]]] = []
        deadline = time.monotonic() + 120
        while any(consumer.position(tp) < end[tp] for tp in tps) and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=1000).values():
                for record in batch:
                    if record.value is None:
                        continue
                    try:
                        body = json.loads(record.value)
                    except ValueError:
                        continue  # undecodable bytes in a DLQ: not a reading this check accounts for
                    out.append((body, {k: v for k, v in (record.headers or [])}))
        return out
    finally:
        consumer.close()


def reconcile(bootstrap: str, prefix: str = "") -> dict[str, int]:
    vitals = Counter(_identity(body) for body, _ in _read_all(bootstrap, prefix + VITALS))
    risk = Counter(_identity(body) for body, _ in _read_all(bootstrap, prefix + RISK))
    late = Counter(
        _identity(body)
        for body, headers in _read_all(bootstrap, prefix + VITALS_DLQ)
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
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "localhost:9092")
    prefix = os.environ.get("WARDWATCH_TOPIC_PREFIX", "")
    deadline = time.monotonic() + args.timeout
    while True:
        report = reconcile(bootstrap, prefix)
        balanced = report["missing"] == 0 and report["duplicates"] == 0 and report["vitals"] > 0
        if balanced or time.monotonic() > deadline:
            print(json.dumps(report))
            return 0 if balanced else 1
        time.sleep(5)


if __name__ == "__main__":
    sys.exit(main())
