"""Running a stream stage as a service: signals, metrics endpoint, file or Kafka mode."""

from __future__ import annotations

import gc
import logging
import signal
import threading
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry

from runtime import metrics as metrics_module
from runtime.config import StreamConfig
from runtime.filemode import dlq_path, run_file
from runtime.kafka.loop import StreamLoop
from runtime.metrics import StreamMetrics
from runtime.processor import Processor

log = logging.getLogger(__name__)


def stop_on_signals() -> threading.Event:
    """An event set by SIGTERM or SIGINT, so the loop finishes its batch and closes cleanly."""
    stop = threading.Event()

    def handler(signum: int, _frame: Any) -> None:
        log.info("stopping signal=%s", signal.Signals(signum).name)
        stop.set()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)
    return stop


def tune_gc() -> None:
    """Fewer garbage-collector passes on the hot path.

    A batch allocates thousands of short-lived objects (records, bytes) that reference counting
    frees anyway, yet each allocation burst triggers young-generation scans. Freezing the
    start-up heap and raising the threshold cut scoring time by about a third in
    bench measurements, at the cost of a few megabytes.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)


def run_stream(
    config: StreamConfig,
    build: Callable[[StreamMetrics], Processor],
    *,
    stage: str,
    registry: CollectorRegistry | None = None,
    stop: threading.Event | None = None,
    assignor: str | None = None,
    build_info: dict[str, str] | None = None,
) -> int:
    """Build the stage's processor and run it until stopped; returns a process exit code."""
    registry = registry or metrics_module.new_registry()
    stream_metrics = StreamMetrics(registry, stage)
    if build_info:
        stream_metrics.build.info(build_info)
    processor = build(stream_metrics)
    if config.file_mode:
        assert config.input is not None and config.output is not None
        result = run_file(processor, config.input, config.output, stream_metrics, batch_size=config.max_poll_records)
        log.info(
            "file mode done stage=%s records_in=%d records_out=%d rejected=%d output=%s dlq=%s",
            stage, result.records_in, result.records_out, result.rejected, config.output, dlq_path(config.output),
        )
        return 0
    metrics_module.serve(registry, config.metrics_port, config.metrics_host)
    tune_gc()
    StreamLoop(processor, config, stream_metrics, stop or stop_on_signals(), assignor=assignor).run()
    return 0
