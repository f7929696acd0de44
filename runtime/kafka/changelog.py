"""Restore: replay a compacted changelog's partitions into a stage's state (Kafka Streams style).

A separate consumer, outside the group, is assigned the changelog partitions that match the
input partitions just assigned and reads them from the beginning to the last stable offset:
all at once (`read_changelog`), or a slice at a time between the stream loop's polls
(`ChangelogRestore`), so that a large restore does not stall the other partitions.
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


class ChangelogRestore:
    """Some partitions' changelogs, read a slice at a time between the stream loop's polls.

    One consumer (outside the group) reads the partitions from the beginning to the last stable
    offset each had when the restore began. `step` reads for about `budget_s` and returns the
    partitions it finished; each one's entries, oldest first, are then in `entries`. `drop`
    forgets a partition (revoked, or rewound) and `close` the whole restore.
    """

    # Small batches bound how long one `step` can overrun its budget.
    MAX_RECORDS = 5_000

    def __init__(self, kafka: KafkaClient, topic: str, partitions: list[int], *, client_id: str, timeout_s: float = 300.0) -> None:
        self.partitions = set(partitions)
        self.entries: dict[int, list[tuple[bytes, bytes | None]]] = {p: [] for p in partitions}
        self.applied: dict[int, int] = {}  # entries already handed to the core, per partition
        self.started = time.perf_counter()
        self._kafka = kafka
        self._client_id = client_id
        self._topic = topic
        self._timeout_s = timeout_s
        self._consumer: Any = None
        self._batches: Iterator[list[Record]] | None = None
        self._ended: list[int] = []

    @property
    def done(self) -> bool:
        return not self.partitions

    def step(self, budget_s: float) -> list[int]:
        """Read for about `budget_s` seconds; the partitions read to their end meanwhile."""
        if self._batches is None:
            # Built here, not in the rebalance callback: connecting is part of a slice.
            self._consumer = self._kafka.consumer(client_id=f"{self._client_id}-restore", group_id=None,
                                                  max_poll_records=self.MAX_RECORDS, large_fetches=True)
            tps = [TopicPartition(self._topic, p) for p in sorted(self.partitions)]
            self._batches = self._consumer.read_to_end(tps, timeout_s=self._timeout_s, max_records=self.MAX_RECORDS,
                                                       on_end=lambda tp: self._ended.append(tp.partition))
        deadline = time.perf_counter() + budget_s
        try:
            while self.partitions and not self._ended and time.perf_counter() < deadline:
                for record in next(self._batches):
                    entries = self.entries.get(record.partition)
                    if entries is not None and record.key is not None:
                        entries.append((record.key, record.value))
        except StopIteration:
            pass
        except TimeoutError as exc:
            raise TimeoutError(f"restore of {self._topic}: {exc}") from None
        finished = sorted(p for p in self._ended if p in self.partitions)
        self._ended.clear()
        self.partitions -= set(finished)
        if not self.partitions:
            self.close()
        return finished

    def drop(self, partition: int) -> None:
        """Stop restoring `partition`: its entries are forgotten (records still read are skipped)."""
        self.partitions.discard(partition)
        self.entries.pop(partition, None)
        self.applied.pop(partition, None)
        if not self.partitions:
            self.close()

    def close(self) -> None:
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            consumer.close()
