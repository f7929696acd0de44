"""The ingest stage: `vitals.raw` -> validated readings on `vitals`, rejects on `vitals.dlq`.

One raw record (a plain reading, a FHIR Observation or a FHIR Bundle) yields one or more
items, numbered 0..n-1. Each accepted item is one `vitals` record; all refused items of a
record (invalid, or a duplicate by `ingest.dedup`) share one `vitals.dlq` record carrying the
original bytes. Headers on both say where they came from (`source-topic`, `source-partition`,
`source-offset`, `source-items` = n) and which items (`source-item` on `vitals`,
`rejected-items` on `vitals.dlq`), so every item of every input is accounted for exactly once.
Duplicates are dead-lettered, not dropped, so redeliveries stay visible and countable.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence

from prometheus_client import Gauge

from ingest.contract import Reading, encode_reading
from ingest.dedup import DedupSettings, DedupState, reading_id
from ingest.payload import parse_payload
from ingest.validate import Limits, Reason, Rejected
from runtime.metrics import StreamMetrics
from runtime.records import JSON_HEADERS, Headers, InRecord, OutRecord, dead_letter
from runtime.topics import INGEST_STATE, VITALS, VITALS_DLQ, VITALS_RAW

STAGE = "ingest"


class IngestProcessor:
    """Maps and validates each raw record, drops nothing: readings to `vitals`, the rest to `vitals.dlq`."""

    stage = STAGE
    input_topics = (VITALS_RAW,)
    output_topics = (VITALS, VITALS_DLQ)
    changelog_topic: str | None = INGEST_STATE
    dead_letter_topic: str | None = VITALS_DLQ

    def __init__(
        self,
        metrics: StreamMetrics,
        limits: Limits = Limits(),
        clock: Callable[[], float] = time.time,
        dedup: DedupSettings = DedupSettings(),
    ) -> None:
        self.metrics = metrics
        self.limits = limits
        self.clock = clock
        self.dedup = DedupState(dedup)
        self.dedup_entries = Gauge(
            "wardwatch_dedup_entries", "Seqs held in the de-duplication window", ["stage"], registry=metrics.registry
        )

    def restore(self, partition: int, changelog: Iterable[tuple[bytes, bytes | None]]) -> None:
        self.dedup.restore(partition, changelog)
        self.dedup_entries.labels(STAGE).set(self.dedup.size())

    def drop(self, partitions: Iterable[int]) -> None:
        self.dedup.drop(partitions)
        self.dedup_entries.labels(STAGE).set(self.dedup.size())

    def process(self, records: Sequence[InRecord]) -> list[OutRecord]:
        now_ms = int(self.clock() * 1000)
        out: list[OutRecord] = []
        for record in records:
            items = parse_payload(record.value, now_ms, self.limits)
            refused: list[tuple[int, Rejected]] = []
            for index, item in enumerate(items):
                reading = item.reading
                if reading is None:
                    assert item.rejected is not None
                    refused.append((index, item.rejected))
                elif self.dedup.seen(record.partition, reading_id(reading)):
                    detail = f"device_id={reading.device_id[:64]!r} seq={reading.seq} ts_ms={reading.ts_ms} was already accepted"
                    refused.append((index, Rejected(Reason.DUPLICATE, detail)))
                else:
                    out.append(self._accepted(record, reading, index, len(items)))
            if refused:
                out.append(self._dead_letter(record, refused, len(items)))
        for partition, key, value in self.dedup.changes():
            # Same transaction and partition as the outputs: restored state matches committed output.
            out.append(OutRecord(INGEST_STATE, key, value, list(JSON_HEADERS) if value is not None else [], partition=partition))
        self.dedup_entries.labels(STAGE).set(self.dedup.size())
        return out

    @staticmethod
    def _accepted(record: InRecord, reading: Reading, index: int, count: int) -> OutRecord:
        return OutRecord(
            topic=VITALS,
            key=reading.patient_id.encode(),
            value=encode_reading(reading),
            headers=[*JSON_HEADERS, *_provenance(record, count), ("source-item", str(index).encode())],
            # The arrival time travels with the reading: event-to-score latency starts here.
            timestamp_ms=record.timestamp_ms,
        )

    def _dead_letter(self, record: InRecord, refused: list[tuple[int, Rejected]], count: int) -> OutRecord:
        for _, rejected in refused:
            self.metrics.reject(rejected.reason.value)
        first = refused[0][1]
        detail = first.detail if count == 1 else "; ".join(f"item {i}: {r}" for i, r in refused)
        letter = dead_letter(VITALS_DLQ, record, stage=STAGE, reason=first.reason.value, detail=detail)
        extra: Headers = [
            ("source-items", str(count).encode()),
            ("rejected-items", ",".join(str(i) for i, _ in refused).encode()),
            ("item-reasons", ",".join(r.reason.value for _, r in refused).encode()),
        ]
        return OutRecord(letter.topic, letter.key, letter.value, [*letter.headers, *extra], letter.partition, letter.timestamp_ms)


def _provenance(record: InRecord, count: int) -> Headers:
    return [
        ("source-topic", record.topic.encode()),
        ("source-partition", str(record.partition).encode()),
        ("source-offset", str(record.offset).encode()),
        ("source-items", str(count).encode()),
    ]
