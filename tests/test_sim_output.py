"""Offline cohorts: deterministic bytes, the reading contract, the summary, the CLI and the plot."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ingest import Limits, validate_object
from sim.cohort import CohortConfig, generate
from sim.columns import Columns
from sim.live import payloads
from sim.output import write_cohort
from wardwatch.cli import main

FILES = ("readings.jsonl", "events.jsonl", "summary.json", "readings.npz")
ANY_TIME = Limits(max_age_ms=2**62, max_future_ms=2**62)


def test_the_same_seed_gives_byte_identical_files(tmp_path: Path) -> None:
    config = CohortConfig(patients=25, hours=8, seed=42)
    a = write_cohort(generate(config), tmp_path / "a")
    b = write_cohort(generate(config), tmp_path / "b")
    for name in FILES:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


def test_different_seeds_give_different_cohorts(tmp_path: Path) -> None:
    a = write_cohort(generate(CohortConfig(patients=25, hours=8, seed=1)), tmp_path / "a")
    b = write_cohort(generate(CohortConfig(patients=25, hours=8, seed=2)), tmp_path / "b")
    assert (a / "readings.jsonl").read_bytes() != (b / "readings.jsonl").read_bytes()
    assert (a / "events.jsonl").read_bytes() != (b / "events.jsonl").read_bytes()


def test_every_reading_passes_the_contract_and_absent_vitals_are_null(tmp_path: Path) -> None:
    out = write_cohort(generate(CohortConfig(patients=30, hours=12, seed=6)), tmp_path)
    lines = (out / "readings.jsonl").read_bytes().splitlines()
    nulls = 0
    for line in lines:
        assert b"NaN" not in line and b"Infinity" not in line
        obj = json.loads(line)
        validate_object(obj, 0, ANY_TIME)  # raises Rejected with the reason if not
        nulls += obj["hr"] is None
    assert nulls > 0, "probe-off shows as null"


def test_readings_and_columns_are_two_views_of_the_same_deliveries(tmp_path: Path) -> None:
    cohort = generate(CohortConfig(patients=10, hours=4, seed=9))
    out = write_cohort(cohort, tmp_path)
    col = Columns.load(out / "readings.npz")
    assert len(col) == len(cohort.readings)
    for k in (0, len(col) // 2, len(col) - 1):
        reading = cohort.readings[k]
        assert reading["patient_id"] == cohort.patients[int(col.patient[k])].patient_id
        assert reading["seq"] == int(col.seq[k]) and reading["ts_ms"] == int(col.ts_ms[k])
        hr = reading["hr"]
        assert (hr is None and np.isnan(col.hr[k])) or hr == float(col.hr[k])


def test_summary_reports_counts_prevalence_and_missingness(tmp_path: Path) -> None:
    cohort = generate(CohortConfig(patients=40, hours=12, seed=3))
    summary = json.loads((write_cohort(cohort, tmp_path) / "summary.json").read_text())
    assert summary["patients"] == 40 and summary["readings"] == len(cohort.columns)
    assert summary["events"] == len(cohort.events) == 40 - summary["scenarios"]["stable"]
    assert summary["prevalence"] == pytest.approx(len(cohort.events) / 40, abs=1e-4)
    assert set(summary["missingness"]) == {"hr", "rr", "spo2", "temp", "sbp", "dbp"}
    assert sum(summary["confounders"].values()) == sum(len(p.confounders) for p in cohort.patients)
    assert summary["duplicates"] > 0 and summary["out_of_order"] > 0


def test_default_cohort_has_visible_deteriorations_and_a_labelled_event_per_patient() -> None:
    cohort = generate(CohortConfig(patients=400, hours=1, seed=0))
    assert 0.2 <= len(cohort.events) / 400 <= 0.3
    assert len({e.patient_id for e in cohort.events}) == len(cohort.events)


def test_a_seed_gives_the_same_patients_whenever_the_stay_starts() -> None:
    """Live mode anchors the stay to the wall clock; only the timestamps may move with it."""
    a = generate(CohortConfig(patients=8, hours=3, seed=13))
    b = generate(CohortConfig(patients=8, hours=3, seed=13, start_ms=a.config.start_ms + 123_456_789))
    assert len(a.readings) == len(b.readings)
    for ra, rb in zip(a.readings, b.readings):
        assert rb["ts_ms"] - ra["ts_ms"] == 123_456_789
        assert {k: v for k, v in ra.items() if k != "ts_ms"} == {k: v for k, v in rb.items() if k != "ts_ms"}
    assert [e.event_ts_ms + 123_456_789 for e in a.events] == [e.event_ts_ms for e in b.events]


def test_live_payloads_are_deterministic_for_a_seed_and_mix_in_malformed_records() -> None:
    config = CohortConfig(patients=5, hours=2, seed=12)
    first = list(payloads(generate(config), bad_rate=0.05, seed=12))
    second = list(payloads(generate(config), bad_rate=0.05, seed=12))
    assert first == second
    assert len(first) > len(generate(config).readings)
    times = [ts for _key, ts, _value in first]
    assert times == sorted(times), "paced by arrival time"


def test_the_sim_command_writes_a_cohort_and_a_plot(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    png = tmp_path / "examples.png"
    code = main(["sim", "--patients", "12", "--hours", "6", "--seed", "4", "--output", str(tmp_path / "cohort"),
                 "--plot", str(png), "--plot-patients", "4"])
    assert code == 0
    for name in FILES:
        assert (tmp_path / "cohort" / name).stat().st_size > 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert png.stat().st_size < 300_000


def test_the_sim_command_rejects_a_bad_fraction_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sim", "--deteriorating-fraction", "1.5", "--output", "unused"]) == 2
    assert "--deteriorating-fraction=1.5" in capsys.readouterr().err
