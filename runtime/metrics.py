"""Prometheus metrics: one registry per process, names `wardwatch_<what>_<unit>`.

Labels are low-cardinality (stage, topic, partition, reason, severity, status) and never a
patient id.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from importlib import metadata

import numpy as np
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    ProcessCollector,
    disable_created_metrics,
    start_http_server,
)

from runtime.config import ConfigError

log = logging.getLogger(__name__)

# Batches take milliseconds; restores and event-to-score latency up to seconds.
FAST_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.35, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0)
SIZE_BUCKETS = (1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000)


def observe_many(histogram: Histogram, values: np.ndarray) -> None:
    """`histogram.observe(v)` for every v in `values`, as one count per bucket: the scorer
    observes each reading's latency, and one call per reading cost it 4% of its time.

    Uses the histogram's bucket and sum values (prometheus_client keeps them as `_buckets`,
    `_sum`, `_upper_bounds`); without them it falls back to one observe per value."""
    if not len(values):
        return
    bounds = getattr(histogram, "_upper_bounds", None)
    buckets = getattr(histogram, "_buckets", None)
    total = getattr(histogram, "_sum", None)
    if bounds is None or buckets is None or total is None or len(bounds) != len(buckets):
        for value in values.tolist():
            histogram.observe(value)
        return
    # observe() counts a value in the first bucket whose upper bound is >= the value.
    counts = np.bincount(np.searchsorted(np.asarray(bounds, dtype=float), values, side="left"), minlength=len(bounds))
    total.inc(float(values.sum()))
    for i in np.flatnonzero(counts).tolist():
        buckets[i].inc(int(counts[i]))


def package_version() -> str:
    """The installed wardwatch version (runtime sits below the `wardwatch` package, so it asks
    the package metadata rather than importing it)."""
    try:
        return metadata.version("wardwatch")
    except metadata.PackageNotFoundError:
        return "unknown"


class BuildInfo:
    """`wardwatch_build_info{version, model, stage, ...} 1` on every service.

    Every service exports the same label names: `info()` merges what a stage knows (its model
    version, its rules file) over the defaults instead of replacing them.
    """

    def __init__(self, registry: CollectorRegistry, stage: str) -> None:
        self._info = Info("wardwatch_build", "Build, stage and model version of this process", registry=registry)
        self._values = {"version": package_version(), "stage": stage, "model": "none"}
        self._info.info(self._values)

    def info(self, values: dict[str, str]) -> None:
        self._values = {**self._values, **{k: str(v) for k, v in values.items()}}
        self._info.info(self._values)

    @property
    def values(self) -> dict[str, str]:
        return dict(self._values)


@dataclass
class StreamMetrics:
    """The metrics every stream stage exports; stage-specific ones are added by the stage."""

    registry: CollectorRegistry
    stage: str

    def __post_init__(self) -> None:
        r = self.registry
        self.records_in = Counter("wardwatch_records_in", "Records consumed", ["stage", "topic"], registry=r)
        self.records_out = Counter("wardwatch_records_out", "Records produced", ["stage", "topic"], registry=r)
        self.rejects = Counter("wardwatch_rejects", "Records sent to the dead-letter topic", ["stage", "reason"], registry=r)
        self.batch_size = Histogram(
            "wardwatch_batch_size_records", "Records per processed batch", ["stage"], buckets=SIZE_BUCKETS, registry=r
        )
        self.batch_seconds = Histogram(
            "wardwatch_batch_duration_seconds", "Time to process one batch (core only)", ["stage"], buckets=FAST_BUCKETS, registry=r
        )
        self.transactions = Counter(
            "wardwatch_transactions", "Kafka transactions by outcome", ["stage", "result"], registry=r
        )
        self.commit_seconds = Histogram(
            "wardwatch_commit_duration_seconds", "Time to commit one transaction", ["stage"], buckets=FAST_BUCKETS, registry=r
        )
        self.lag = Gauge("wardwatch_consumer_lag_records", "Records behind the log end", ["stage", "topic", "partition"], registry=r)
        self.rebalances = Counter("wardwatch_rebalances", "Partition assignment changes", ["stage", "kind"], registry=r)
        self.assigned = Gauge("wardwatch_assigned_partitions", "Input partitions this process owns", ["stage"], registry=r)
        self.restore_seconds = Histogram(
            "wardwatch_restore_duration_seconds", "Time to restore state from the changelog", ["stage"], buckets=LATENCY_BUCKETS, registry=r
        )
        self.restore_records = Counter("wardwatch_restore_records", "Changelog records replayed in restores", ["stage"], registry=r)
        self.restoring = Gauge(
            "wardwatch_restoring_partitions", "Input partitions paused while their state is restored", ["stage"], registry=r
        )
        self.build = BuildInfo(r, self.stage)
        # Children are created up front so every series is visible from the first scrape.
        for result in ("committed", "aborted"):
            self.transactions.labels(self.stage, result)
        self.batch_size.labels(self.stage)
        self.batch_seconds.labels(self.stage)
        self.restoring.labels(self.stage)

    def reject(self, reason: str) -> None:
        self.rejects.labels(self.stage, reason).inc()


def new_registry() -> CollectorRegistry:
    """A fresh registry with the process's CPU and memory series; `_created` series are
    dropped to keep the exposition small."""
    disable_created_metrics()
    registry = CollectorRegistry(auto_describe=True)
    ProcessCollector(registry=registry)
    return registry


def serve(registry: CollectorRegistry, port: int, host: str = "0.0.0.0") -> int | None:
    """Serve /metrics for `registry`; returns the bound port (port 0 picks a free one).

    A port that cannot be bound (taken by another instance, say) is a configuration error
    naming the port, raised before the service touches Kafka."""
    if port < 0:
        return None
    try:
        server, _thread = start_http_server(port, addr=host, registry=registry)
    except OSError as exc:
        raise ConfigError(
            f"--metrics-port={port} (WARDWATCH_METRICS_PORT) on {host}: cannot listen ({exc.strerror or exc}); "
            "choose another port, 0 for any free one, or -1 to turn metrics off"
        ) from None
    bound = server.server_address[1]
    log.info("metrics serving url=http://%s:%d/metrics", "127.0.0.1" if host == "0.0.0.0" else host, bound)
    return bound
