"""Restore: replay a compacted changelog's partitions into a stage's state (Kafka Streams style).

A separate consumer, outside the group, is assigned the changelog partitions that match the
input partitions just assigned and reads them from the beginning to the last stable offset:
all at once (`read_changelog`), or a slice at a time between the stream loop's polls
(`PartitionRestore`), so that a large restore does not stall the other partitions.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from runtime.kafka.client import KafkaClient, Record, TopicPartition, connect


def read_changelog(
    kafka: KafkaClient | str, topic: str, partitions: list[int], *, client_id: str, timeout_s: float = 300.0
) -> Iterator[tuple[int, bytes, bytes | None]]:
    """Yield (partition, key, value) for every committed record of `topic`'s `partitions`."""
    if not partitions:
        return
    kafka = connect(kafka) if isinstance(kafka, str) else kafka
    restore = kafka.consumer(client_id=f"{client_id}-restore", group_id=None, max_poll_records=50_000, large_fetches=True)
    try:
        tps = [TopicPartition(topic, p) for p in partitions]
        try:
            for batch in restore.read_to_end(tps, timeout_s=timeout_s, max_records=50_000):
                for record in batch:
                    if record.key is not None:
                        yield record.partition, record.key, record.value
        except TimeoutError as exc:
            raise TimeoutError(f"restore of {topic}: {exc}") from None
    finally:
        restore.close()


class PartitionRestore:
    """One partition's changelog, read a slice at a time between the stream loop's polls.

    Its own consumer (outside the group) reads the partition from the beginning to the last
    stable offset it had when the restore began; `step` reads for about `budget_s` and returns
    True once the end is reached. The entries, oldest first, are then in `entries`. `close`
    drops a restore at any point (a revocation, a rewind, an error to retry).
    """

    # Small batches bound how long one `step` can overrun its budget.
    MAX_RECORDS = 5_000

    def __init__(self, kafka: KafkaClient, topic: str, partition: int, *, client_id: str, timeout_s: float = 300.0) -> None:
        self.partition = partition
        self.entries: list[tuple[bytes, bytes | None]] = []
        self.records = 0
        self.started = time.perf_counter()
        self._kafka = kafka
        self._client_id = client_id
        self._consumer: Any = None
        self._batches: Iterator[list[Record]] | None = None
        self._topic = topic
        self._timeout_s = timeout_s
        self.done = False

    def step(self, budget_s: float) -> bool:
        """Read for about `budget_s` seconds; True when the partition has been read to its end."""
        if self.done:
            return True
        if self._batches is None:
            # Built here, not in the rebalance callback: connecting is part of the slice.
            self._consumer = self._kafka.consumer(client_id=f"{self._client_id}-restore", group_id=None,
                                                  max_poll_records=self.MAX_RECORDS, large_fetches=True)
            self._batches = self._consumer.read_to_end([TopicPartition(self._topic, self.partition)], timeout_s=self._timeout_s,
                                                       max_records=self.MAX_RECORDS)
        deadline = time.perf_counter() + budget_s
        try:
            while time.perf_counter() < deadline:
                for record in next(self._batches):
                    if record.key is not None:
                        self.entries.append((record.key, record.value))
                self.records = len(self.entries)
        except StopIteration:
            self.records = len(self.entries)
            self.done = True
            self.close()
        except TimeoutError as exc:
            raise TimeoutError(f"restore of {self._topic}: {exc}") from None
        return self.done

    def close(self) -> None:
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            consumer.close()
