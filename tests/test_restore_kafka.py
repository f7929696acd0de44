"""A long restore does not stall the group (docs/state.md): while one partition's large
changelog is read, the scorer goes on scoring its other partitions, and the restored partition's
output is still what an uninterrupted offline run writes."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from inference.service import load_model
from inference.state.changelog import CONTENT_TYPE, encode_row
from inference.state.table import StateTable
from runtime.kafka.client import Record, TopicPartition, connect
from runtime.topics import RISK, SCORER_STATE, VITALS
from tests.support.kafka import create_topics, produce, read_committed, wait_until
from tests.test_scorer_kafka import (
    _free_port,
    assert_same_stream,
    cohort_readings,
    committed_scores,
    metric,
    offline_scores,
    phases,
    risk_count,
    scorer,
)

pytestmark = [pytest.mark.kafka, pytest.mark.both_clients]

# State rows of patients that never send a reading again, in front of the real ones in one
# partition's changelog: enough that its restore takes seconds on a CI machine.
FILLER_ROWS = 200_000


def write_filler(bootstrap: str, topic: str, partition: int, rows: int, last_ts_ms: int) -> None:
    """`rows` valid state rows (this model version, recent enough not to be evicted) for
    patients FILLER0000000..., all on `partition` of the changelog."""
    model, version = load_model("untrained")
    rng = np.random.default_rng(7)
    # librdkafka writes the 200k rows several times faster than kafka-python.
    producer = connect(bootstrap, "confluent").producer(client_id="wardwatch-test-filler", linger_ms=50, delivery_timeout_ms=300_000)
    try:
        chunk = 20_000
        for start in range(0, rows, chunk):
            n = min(chunk, rows - start)
            table = StateTable(model.state_size, capacity=n)
            ids = [f"FILLER{start + i:07d}" for i in range(n)]
            rows_at = [table.row_of(pid, partition) for pid in ids]
            table.hidden[rows_at] = rng.standard_normal((n, model.state_size), dtype=np.float32)
            table.seen_ts[rows_at] = last_ts_ms
            table.last_ts[rows_at] = last_ts_ms
            for pid, row in zip(ids, rows_at):
                producer.send(topic, encode_row(table, row, version), key=pid.encode(),
                              headers=[("content-type", CONTENT_TYPE)], partition=partition)
        producer.flush(timeout_s=300)
    finally:
        producer.close(timeout_s=10)


def test_a_long_restore_of_one_partition_does_not_stall_the_others(
    kafka_client: str, kafka_bootstrap: str, topic_prefix: str, workdir: Path
) -> None:
    readings = cohort_readings(patients=16, hours=2, seed=51)
    expected = offline_scores(readings)
    create_topics(kafka_bootstrap, topic_prefix)
    first, second = phases(readings, 2)

    # A first scorer scores the first half and leaves: its state is in the changelog.
    a = scorer("restore-a", kafka_bootstrap, topic_prefix, workdir)
    try:
        produce(kafka_bootstrap, topic_prefix + VITALS, first)
        wait_until(lambda: risk_count(kafka_bootstrap, topic_prefix) >= len(first), timeout_s=180, message="first half scored")
    finally:
        assert a.stop() == 0, a.log()[-3000:]

    # The busiest partition gets a large changelog; the second half waits in the input.
    partition_of = {r.key: r.partition for r in read_committed(kafka_bootstrap, topic_prefix + VITALS, expect=len(first))}
    big = Counter(partition_of.values()).most_common(1)[0][0]
    assert len(set(partition_of.values())) > 1, "the cohort must span several partitions"
    write_filler(kafka_bootstrap, topic_prefix + SCORER_STATE, big, FILLER_ROWS, last_ts_ms=min(r.ts_ms for r in readings))
    produce(kafka_bootstrap, topic_prefix + VITALS, second)

    def split(records: list) -> tuple[int, int]:
        mine = sum(1 for r in records if r.partition == big)
        return len(records) - mine, mine

    before_other, before_big = split(read_committed(kafka_bootstrap, topic_prefix + RISK, expect=len(first)))
    port = _free_port()
    b = scorer("restore-b", kafka_bootstrap, topic_prefix, workdir, "--metrics-port", str(port))
    try:
        wait_until(lambda: _restoring(port) > 0, timeout_s=120, interval_s=0.05, message="the restore started")
        # Each sample is bracketed by two readings of the gauge: both > 0 means the committed
        # output was read while a restore was still running.
        samples: list[tuple[int, int]] = []
        while _restoring(port) > 0:
            counts = split(committed_now(kafka_bootstrap, topic_prefix + RISK))
            if _restoring(port) > 0:
                samples.append(counts)
            time.sleep(0.1)
        assert samples, "the restore ended before the committed output could be read once: make FILLER_ROWS larger"
        # The other partitions were scored while the big one was restoring ...
        assert max(other for other, _ in samples) > before_other, (samples, before_other, b.log()[-3000:])
        # ... and no record of the partition in restore was.
        assert all(mine == before_big for _, mine in samples), (samples, before_big)
        got = committed_scores(kafka_bootstrap, topic_prefix + RISK, len(readings))
        assert metric(port, "wardwatch_restore_records_total") >= FILLER_ROWS
        assert b.alive(), b.log()[-3000:]
    finally:
        b.stop()
    # The restored partition (and every other) scores exactly as an uninterrupted offline run.
    assert_same_stream(got, expected)


def committed_now(bootstrap: str, topic: str) -> list[Record]:
    """Every record of `topic` committed when the call begins (read to the last stable offsets)."""
    consumer = connect(bootstrap).consumer(client_id="wardwatch-test-reader", group_id=None)
    try:
        tps = [TopicPartition(topic, p) for p in consumer.partitions_for(topic)]
        return [r for batch in consumer.read_to_end(tps, timeout_s=60, max_records=10_000) for r in batch]
    finally:
        consumer.close()


def _restoring(port: int) -> float:
    try:
        return metric(port, "wardwatch_restoring_partitions")
    except OSError:  # the metrics server is not up yet
        return 0.0
