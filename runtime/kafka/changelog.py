"""Restore: replay a compacted changelog's partitions into a stage's state (Kafka Streams style).

A separate consumer, outside the group, is assigned the changelog partitions that match the
input partitions just assigned and reads them from the beginning to the last stable offset.
"""

from __future__ import annotations

from collections.abc import Iterator

from runtime.kafka.client import KafkaClient, TopicPartition, connect


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
