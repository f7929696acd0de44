"""Restore: replay a compacted changelog's partitions into a stage's state (Kafka Streams style).

A separate consumer, outside the group, `assign()`s the changelog partitions that match the
input partitions just assigned and reads them from the beginning to the last stable offset.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

from kafka import TopicPartition

from runtime.kafka.clients import consumer

log = logging.getLogger(__name__)


def read_changelog(
    bootstrap: str, topic: str, partitions: list[int], *, client_id: str, timeout_s: float = 300.0
) -> Iterator[tuple[int, bytes, bytes | None]]:
    """Yield (partition, key, value) for every committed record of `topic`'s `partitions`."""
    if not partitions:
        return
    restore = consumer(
        bootstrap,
        client_id=f"{client_id}-restore",
        group_id=None,
        max_partition_fetch_bytes=8 * 1024 * 1024,
        fetch_max_bytes=64 * 1024 * 1024,
        max_poll_records=50_000,
    )
    try:
        tps = [TopicPartition(topic, p) for p in partitions]
        restore.assign(tps)
        restore.seek_to_beginning(*tps)
        # Under read_committed this is the last stable offset: everything committed so far.
        end = {tp: off for tp, off in restore.end_offsets(tps).items() if off is not None}
        pending = {tp for tp in tps if end.get(tp, 0) > 0 and restore.position(tp) < end[tp]}
        deadline = time.monotonic() + timeout_s
        while pending:
            if time.monotonic() > deadline:
                raise TimeoutError(f"restore of {topic} partitions {sorted(tp.partition for tp in pending)} took over {timeout_s:.0f}s")
            batch = restore.poll(timeout_ms=200)
            for tp, records in batch.items():
                for record in records:
                    if record.offset < end[tp] and record.key is not None:
                        yield tp.partition, record.key, record.value
            for tp in list(pending):
                if restore.position(tp) >= end[tp]:
                    pending.discard(tp)
    finally:
        restore.close()
