"""The whole-pipeline benchmark's pure parts (bench/pipeline.py): its input, metrics and summary."""

from __future__ import annotations

import pytest

from bench.pipeline import StageTrace, parse_metrics, reading
from ingest.contract import decode_reading
from ingest.validate import OFFLINE_LIMITS, parse_reading


def test_every_offered_reading_is_valid_and_names_its_patient_and_minute() -> None:
    for patient, minute in ((0, 0), (999_999, 9), (123_456, 3)):
        key, value = reading(patient, minute, 1_767_225_600_000)
        parsed = parse_reading(value, 1_767_225_600_000, OFFLINE_LIMITS)  # raises Rejected if not
        assert key == parsed.patient_id.encode() == f"P{patient:07d}".encode()
        assert parsed.seq == minute
        assert decode_reading(value) == parsed


METRICS = """\
# HELP wardwatch_records_in_total Records consumed
wardwatch_records_in_total{stage="ingest",topic="bench-pipeline-ab12cd.vitals.raw"} 1500.0
wardwatch_records_in_total{stage="score",topic="bench-pipeline-ab12cd.vitals"} 700.0
wardwatch_consumer_lag_records{partition="0",stage="ingest",topic="bench-pipeline-ab12cd.vitals.raw"} 10.0
wardwatch_consumer_lag_records{partition="1",stage="ingest",topic="bench-pipeline-ab12cd.vitals.raw"} 5.0
"""


def test_a_topic_is_told_apart_from_another_that_starts_with_its_name() -> None:
    assert parse_metrics(METRICS, "vitals.raw") == (1500.0, 15.0)
    assert parse_metrics(METRICS, "vitals") == (700.0, 15.0)
    assert parse_metrics(METRICS, "risk") == (0.0, 15.0)


def test_the_summary_counts_what_was_consumed_while_readings_were_offered() -> None:
    trace = StageTrace([(1.0, 900.0, 100.0), (2.0, 1_900.0, 400.0), (3.0, 2_400.0, 1_000.0), (4.0, 3_400.0, 0.0)])
    s = trace.summary(rate=1_000.0, offered_s=3.0)
    assert s["consumed_while_offered"] == 2_400
    assert s["rate_while_offered_per_s"] == pytest.approx(800.0)
    assert s["max_lag_records"] == 1_000
    assert s["max_lag_s_of_input"] == pytest.approx(1.0)
    assert s["consumed_at_end"] == 3_400
