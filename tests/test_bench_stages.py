"""The backlog-drain benchmark's arithmetic (bench/stages.py): timed by committed offsets."""

from __future__ import annotations

import pytest

from bench.stages import Progress, ratios


def test_the_rate_runs_from_the_first_commit_to_the_one_that_completes_the_backlog() -> None:
    # Nothing committed for 5 s (start-up, restore), then 1,000 committed at t=5 and 9,000 at t=7;
    # samples after the last change (t=8, 9) do not stretch the window.
    progress = Progress([(0.0, 0), (4.0, 0), (5.0, 1_000), (6.0, 5_000), (7.0, 9_000), (8.0, 9_000), (9.0, 9_000)])
    rate, window = progress.rate()
    assert window == pytest.approx(2.0)
    assert rate == pytest.approx(4_000.0)
    assert progress.committed == 9_000


def test_a_group_that_never_commits_has_no_rate() -> None:
    assert Progress([(0.0, 0), (1.0, 0)]).rate() == (0.0, 0.0)
    assert Progress().rate() == (0.0, 0.0)
    assert Progress().committed == 0


def test_each_stage_is_compared_with_the_ceiling_of_its_client_and_with_librdkafkas() -> None:
    drained = {
        "ceiling-kafka-python": {"readings_per_s": 20_000.0}, "ceiling-confluent": {"readings_per_s": 50_000.0},
        "ingest-kafka-python": {"readings_per_s": 10_000.0}, "ingest-confluent": {"readings_per_s": 15_000.0},
        "alerts-kafka-python": {"readings_per_s": 30_000.0}, "alerts-confluent": {"readings_per_s": 20_000.0},
    }
    r = ratios(drained)
    assert r["ingest / ceiling, kafka-python"] == 0.5
    assert r["ingest / ceiling, confluent"] == 0.3
    assert r["ingest (faster client) / ceiling, confluent"] == 0.3
    # alerts is faster on kafka-python here: the faster client's rate counts, against librdkafka's ceiling
    assert r["alerts (faster client) / ceiling, confluent"] == 0.6


def test_a_missing_ceiling_gives_no_ratio_rather_than_a_division_by_zero() -> None:
    r = ratios({"ingest-confluent": {"readings_per_s": 1.0}})
    assert r["ingest / ceiling, confluent"] is None
    assert r["ingest (faster client) / ceiling, confluent"] is None
