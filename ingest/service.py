"""The ingest stage: `vitals.raw` -> validated readings on `vitals`, rejects on `vitals.dlq`."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from ingest.contract import encode_reading
from ingest.validate import Limits, Rejected, parse_reading
from runtime.config import StreamConfig, require, setting
from runtime.metrics import StreamMetrics
from runtime.records import JSON_HEADERS, InRecord, OutRecord, dead_letter
from runtime.topics import VITALS, VITALS_DLQ, VITALS_RAW

STAGE = "ingest"


@dataclass(frozen=True)
class IngestConfig(StreamConfig):
    metrics_port: int = setting(9102, "port for Prometheus /metrics (0 = any free port, -1 = off)")
    max_future_ms: int = setting(300_000, "reject readings stamped further than this ahead of the ingest clock, ms (0 = no check)")
    max_age_ms: int = setting(7 * 24 * 3_600_000, "reject readings older than this, ms (0 = no check: replaying old cohorts)")

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self.max_future_ms >= 0, f"--max-future-ms={self.max_future_ms}: expected >= 0")
        require(self.max_age_ms >= 0, f"--max-age-ms={self.max_age_ms}: expected >= 0")

    def limits(self) -> Limits:
        never = 2**62
        return Limits(max_future_ms=self.max_future_ms or never, max_age_ms=self.max_age_ms or never)


class IngestProcessor:
    """Validates each raw record; valid ones keep their arrival timestamp on `vitals`."""

    stage = STAGE
    input_topics = (VITALS_RAW,)
    output_topics = (VITALS, VITALS_DLQ)
    changelog_topic: str | None = None

    def __init__(self, metrics: StreamMetrics, limits: Limits = Limits(), clock: Callable[[], float] = time.time) -> None:
        self.metrics = metrics
        self.limits = limits
        self.clock = clock

    def restore(self, partition: int, changelog: Iterable[tuple[bytes, bytes | None]]) -> None:
        pass

    def drop(self, partitions: Iterable[int]) -> None:
        pass

    def process(self, records: Sequence[InRecord]) -> list[OutRecord]:
        now_ms = int(self.clock() * 1000)
        out: list[OutRecord] = []
        for record in records:
            try:
                reading = parse_reading(record.value, now_ms, self.limits)
            except Rejected as rejected:
                self.metrics.reject(rejected.reason.value)
                out.append(dead_letter(VITALS_DLQ, record, stage=STAGE, reason=rejected.reason.value, detail=rejected.detail))
                continue
            out.append(
                OutRecord(
                    topic=VITALS,
                    key=reading.patient_id.encode(),
                    value=encode_reading(reading),
                    headers=list(JSON_HEADERS),
                    # The arrival time travels with the reading: event-to-score latency starts here.
                    timestamp_ms=record.timestamp_ms,
                )
            )
        return out
