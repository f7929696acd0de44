"""Running the ingest processor as a service: its settings and how it is built."""

from __future__ import annotations

from dataclasses import dataclass

from ingest.dedup import DedupSettings
from ingest.processor import IngestProcessor
from ingest.validate import DEFAULT_MAX_AGE_MS, DEFAULT_MAX_FUTURE_MS, Limits, limits
from runtime.config import StreamConfig, require, setting
from runtime.metrics import StreamMetrics


@dataclass(frozen=True)
class IngestConfig(StreamConfig):
    metrics_port: int = setting(9102, "port for Prometheus /metrics (0 = any free port, -1 = off)")
    max_future_ms: int = setting(DEFAULT_MAX_FUTURE_MS, "reject readings stamped further than this ahead of the ingest clock, ms (0 = no check)")
    max_age_ms: int = setting(DEFAULT_MAX_AGE_MS, "reject readings older than this, ms (0 = no check: replaying old cohorts)")
    dedup_window_ms: int = setting(3_600_000, "de-duplication window: forget a device's seqs this far behind its newest reading (event time), ms")
    dedup_max_seqs: int = setting(256, "de-duplication: most seqs remembered per patient and device")
    dedup_max_devices: int = setting(50_000, "de-duplication: most (patient, device) windows kept per partition")

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self.max_future_ms >= 0, f"--max-future-ms={self.max_future_ms}: expected >= 0")
        require(self.max_age_ms >= 0, f"--max-age-ms={self.max_age_ms}: expected >= 0")
        require(self.dedup_window_ms >= 1000, f"--dedup-window-ms={self.dedup_window_ms}: expected >= 1000")
        require(1 <= self.dedup_max_seqs <= 100_000, f"--dedup-max-seqs={self.dedup_max_seqs}: expected 1-100000")
        require(1 <= self.dedup_max_devices <= 10_000_000, f"--dedup-max-devices={self.dedup_max_devices}: expected 1-10000000")

    def limits(self) -> Limits:
        return limits(self.max_future_ms, self.max_age_ms)

    def dedup(self) -> DedupSettings:
        return DedupSettings(self.dedup_window_ms, self.dedup_max_seqs, self.dedup_max_devices)


def build_ingest(config: IngestConfig, metrics: StreamMetrics) -> IngestProcessor:
    """The processor `runtime.service.run_stream` runs."""
    return IngestProcessor(metrics, config.limits(), dedup=config.dedup())
