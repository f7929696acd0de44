"""Scenario 1, the ceiling: the same transactional StreamLoop with a processor that does nothing.

`vitals` in, the same bytes out to `risk` (same key, headers, timestamp, partition count),
one transaction per poll with the input offsets: everything the scorer pays for except scoring
(and its `scorer.state` rows, which are the scorer's own cost).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from runtime.records import InRecord, OutRecord
from runtime.topics import RISK, VITALS


class PassthroughProcessor:
    """Copies every `vitals` record to `risk`, unchanged."""

    stage = "bench-passthrough"
    input_topics = (VITALS,)
    output_topics = (RISK,)
    changelog_topic = None
    dead_letter_topic = None

    def restore(self, partition: int, changelog: Iterable[tuple[bytes, bytes | None]]) -> None:
        pass

    def drop(self, partitions: Iterable[int]) -> None:
        pass

    def process(self, records: Sequence[InRecord]) -> list[OutRecord]:
        return [
            OutRecord(topic=RISK, key=r.key, value=r.value, headers=r.headers, timestamp_ms=r.timestamp_ms)
            for r in records
        ]
