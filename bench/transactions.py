"""`python -m bench.transactions [--quick]`: back-to-back transactions at each retry backoff.

The loop commits one transaction per batch; when it is caught up, the next one begins moments
after the last committed. The broker is then still writing the last one's commit markers and
answers the next AddOffsetsToTxn with CONCURRENT_TRANSACTIONS, which the client retries after
`retry.backoff.ms` (100 ms by default in both clients). This measures what a transaction costs
at the clients' default and at the runtime's `TXN_RETRY_BACKOFF_MS`, on each client, in one
run: each transaction is begin, 120 records of 181 bytes over 6 partitions, the consumed offsets,
commit, as the loop makes them. It drives each client directly, not through the runtime's client
layer, which has no setting for the clients' default backoff. Writes
bench/results/transactions.json and transactions.md with the machine and the command.
"""

from __future__ import annotations

import statistics
import sys
import time
import uuid
from collections.abc import Callable

from bench.common import broker, create_topics, fresh_prefix, logger, run_parser, run_record, write_results, run_header
from runtime.kafka import security
from runtime.kafka.client.base import TXN_RETRY_BACKOFF_MS
from runtime.topics import RISK, VITALS

CLIENT_DEFAULT_BACKOFF_MS = 100  # retry.backoff.ms in librdkafka and kafka-python
RECORDS = 120
VALUE = b"x" * 181
WARMUP = 5
SIZES = {"quick": 30, "full": 100}

NOTE = (f"Each transaction: begin, {RECORDS} records of {len(VALUE)} B over the topic's partitions, the consumed "
        f"offsets, commit; one after another on one producer, {WARMUP} left out at the start of each series; the "
        f"clients' default retry backoff ({CLIENT_DEFAULT_BACKOFF_MS} ms) against the runtime's "
        f"({TXN_RETRY_BACKOFF_MS} ms, `runtime.kafka.client.base.TXN_RETRY_BACKOFF_MS`), alternating, two rounds.")

log = logger("bench.transactions")


def _confluent(bootstrap: str, prefix: str, backoff_ms: int, count: int) -> list[float]:
    from confluent_kafka import Consumer, Producer, TopicPartition

    props = security.current_properties()
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-txn-{uuid.uuid4().hex[:8]}", **props})
    producer = Producer({"bootstrap.servers": bootstrap, "transactional.id": f"bench-txn-{uuid.uuid4().hex[:8]}",
                         "linger.ms": 5, "retry.backoff.ms": backoff_ms, "partitioner": "murmur2_random", **props})
    producer.init_transactions(30)

    def transaction(i: int) -> None:
        producer.begin_transaction()
        for j in range(RECORDS):
            producer.produce(prefix + RISK, key=str(j).encode(), value=VALUE)
        producer.send_offsets_to_transaction([TopicPartition(prefix + VITALS, 0, i + 1)],
                                             consumer.consumer_group_metadata(), 30)
        producer.commit_transaction(30)

    try:
        return _timed(transaction, count)
    finally:
        producer.flush(5)
        consumer.close()


def _kafka_python(bootstrap: str, prefix: str, backoff_ms: int, count: int) -> list[float]:
    from kafka import KafkaProducer, TopicPartition
    from kafka.structs import OffsetAndMetadata

    from runtime.kafka.client.kafka_python import translate_properties

    producer = KafkaProducer(bootstrap_servers=bootstrap, transactional_id=f"bench-txn-{uuid.uuid4().hex[:8]}",
                             linger_ms=5, retry_backoff_ms=backoff_ms,
                             **translate_properties(security.current_properties()))
    group = f"bench-txn-{uuid.uuid4().hex[:8]}"
    producer.init_transactions()

    def transaction(i: int) -> None:
        producer.begin_transaction()
        for j in range(RECORDS):
            producer.send(prefix + RISK, key=str(j).encode(), value=VALUE)
        producer.send_offsets_to_transaction({TopicPartition(prefix + VITALS, 0): OffsetAndMetadata(i + 1, "", -1)}, group)
        producer.commit_transaction()

    try:
        return _timed(transaction, count)
    finally:
        producer.close(5)


def _timed(transaction: Callable[[int], None], count: int) -> list[float]:
    """Seconds each of `count` transactions took, one after another."""
    times: list[float] = []
    for i in range(count):
        started = time.perf_counter()
        transaction(i)
        times.append(time.perf_counter() - started)
    return times


RUNNERS = {"kafka-python": _kafka_python, "confluent": _confluent}


def run(bootstrap: str, count: int, rounds: int = 2) -> dict[str, dict[str, object]]:
    """Each client at each backoff, alternating, `rounds` times, summarized by `summarize`."""
    prefix = fresh_prefix("txn")
    create_topics(bootstrap, prefix)
    samples: dict[str, list[float]] = {}
    for _ in range(rounds):
        for client, runner in RUNNERS.items():
            for backoff in (CLIENT_DEFAULT_BACKOFF_MS, TXN_RETRY_BACKOFF_MS):
                times = runner(bootstrap, prefix, backoff, count + WARMUP)[WARMUP:]
                samples.setdefault(f"{client} {backoff}", []).extend(times)
    return summarize(samples)


def summarize(samples: dict[str, list[float]]) -> dict[str, dict[str, object]]:
    """Per series ("<client> <backoff ms>": seconds per transaction): percentiles in ms, the rate,
    and each client's rate at the runtime's backoff against its rate at the default."""
    out: dict[str, dict[str, object]] = {}
    for name, times in samples.items():
        client, backoff = name.rsplit(" ", 1)
        ms = sorted(1000 * t for t in times)
        out[name] = {"client": client, "retry_backoff_ms": int(backoff), "transactions": len(ms),
                     "p50_ms": round(statistics.median(ms), 1), "p90_ms": round(ms[int(0.9 * (len(ms) - 1))], 1),
                     "max_ms": round(ms[-1], 1), "per_s": round(len(ms) / (sum(ms) / 1000), 1)}
    for client in {str(t["client"]) for t in out.values()}:
        default = out.get(f"{client} {CLIENT_DEFAULT_BACKOFF_MS}")
        ours = out.get(f"{client} {TXN_RETRY_BACKOFF_MS}")
        if default and ours:
            ours["per_s_vs_default"] = round(float(ours["per_s"]) / float(default["per_s"]), 2)  # type: ignore[arg-type]
    return out


def table(rows: dict[str, dict[str, object]]) -> list[str]:
    """The Markdown table of `run`'s result (here and in `python -m bench`'s latest.md)."""
    lines = ["| client | retry backoff ms | transactions | p50 ms | p90 ms | max ms | transactions/s | vs default |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for t in rows.values():
        lines.append(f"| {t['client']} | {t['retry_backoff_ms']} | {t['transactions']} | {t['p50_ms']} | {t['p90_ms']} | "
                     f"{t['max_ms']} | {t['per_s']} | {t.get('per_s_vs_default', '')} |")
    return lines


def markdown(r: dict) -> str:
    lines = [
        *run_header(r, "Back-to-back transactions at each retry backoff"),
        NOTE,
        "",
        *table(r["transactions"]),
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = run_parser("bench.transactions", __doc__.split("\n\n")[0] if __doc__ else None,
                        f"{SIZES['quick']} transactions per series instead of {SIZES['full']}", "unused here")
    args = parser.parse_args(argv)
    mode = "quick" if args.quick else "full"
    result = run_record("bench.transactions", mode, argv)
    with broker() as (bootstrap, description):
        result["broker"] = description
        log(f"{SIZES[mode]} transactions per series on {description}")
        result["transactions"] = run(bootstrap, SIZES[mode])
    write_results(args.results, "transactions", result, markdown(result))
    print(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
