"""The latency benchmark's view of the scorer's batches (bench/latency.py), from real /metrics text."""

from __future__ import annotations

import math

import pytest
from prometheus_client import generate_latest

from bench.latency import HEADER, loop_counts, loop_summary, table_rows
from runtime.metrics import StreamMetrics, new_registry


def _scrape(metrics: StreamMetrics) -> dict[str, tuple[float, float]]:
    return loop_counts(generate_latest(metrics.registry).decode())


def test_the_batches_between_two_scrapes_are_averaged_and_the_ones_before_left_out() -> None:
    m = StreamMetrics(new_registry(), "score")
    m.batch_size.labels("score").observe(5000)  # the warm-up: before the first scrape
    m.batch_seconds.labels("score").observe(2.0)
    m.commit_seconds.labels("score").observe(1.0)
    before = _scrape(m)
    for records, core_s, commit_s in ((100, 0.010, 0.030), (300, 0.020, 0.050)):
        m.batch_size.labels("score").observe(records)
        m.batch_seconds.labels("score").observe(core_s)
        m.commit_seconds.labels("score").observe(commit_s)
    summary = loop_summary(before, _scrape(m))
    assert summary is not None
    assert summary["batches"] == 2
    assert summary["mean_records"] == pytest.approx(200)
    assert summary["mean_core_ms"] == pytest.approx(15.0)
    assert summary["mean_commit_ms"] == pytest.approx(40.0)


def test_no_batches_or_no_metrics_give_no_summary() -> None:
    m = StreamMetrics(new_registry(), "score")
    scraped = _scrape(m)
    assert loop_summary(scraped, scraped) is None  # nothing processed in between
    assert loop_summary({}, scraped) is None  # the first scrape failed
    assert loop_counts("") == {}


def test_a_batch_whose_commit_is_still_in_flight_leaves_the_commit_mean_to_the_finished_ones() -> None:
    m = StreamMetrics(new_registry(), "score")
    before = _scrape(m)
    m.batch_size.labels("score").observe(10)
    m.batch_seconds.labels("score").observe(0.001)
    summary = loop_summary(before, _scrape(m))
    assert summary is not None and summary["batches"] == 1
    assert math.isnan(summary["mean_commit_ms"])


def test_rows_have_the_headers_columns_with_and_without_batches() -> None:
    run = {"client": "confluent", "offered_per_s": 5000, "achieved_offered_per_s": 4998.1, "achieved_scored_per_s": 4985.6,
           "scored": 75000, "event_to_score_ms": {"p50": 78.9, "p99": 146.6, "max": 197.4},
           "steady_event_to_score_ms": {"p50": 77.8, "p99": 132.4, "max": 166.9},
           "loop": {"batches": 179.0, "mean_records": 279.33, "mean_core_ms": 13.01, "mean_commit_ms": 41.14}}
    columns = HEADER[0].count("|")
    with_loop, without = table_rows([run, {**run, "loop": None}])
    assert with_loop.count("|") == columns and without.count("|") == columns
    assert "| 179 | 279.33 | 13.01 | 41.14 |" in with_loop


def test_the_machine_line_names_the_speed_probe_when_the_record_has_one() -> None:
    from bench.common import machine_line, speed_probe

    m = {"cpu": "AMD EPYC", "cores": 2, "memory_gib": 23.5, "load_average_at_start": [0.5, 1.0, 1.5]}
    assert machine_line(m) == "AMD EPYC, 2 cores, 23.5 GiB; load average at start 0.5 / 1.0 / 1.5"  # a record from before the probe
    probe = speed_probe()
    assert probe > 0
    assert machine_line({**m, "speed_probe_s": probe}).endswith(f"1.5, speed probe {probe} s")


@pytest.mark.parametrize("mode", ["quick", "full"])
def test_the_whole_bench_feeds_each_latency_load_enough_readings(mode: str) -> None:
    from bench.__main__ import MODES
    from bench.latency import SIZES, WARMUP

    size = SIZES[mode]
    for rate in size.rates:
        assert WARMUP + rate * size.seconds <= MODES[mode]["readings"], f"{mode}: {rate}/s for {size.seconds} s"
    assert (size.readings, size.patients) == (MODES[mode]["readings"], MODES[mode]["patients"])
