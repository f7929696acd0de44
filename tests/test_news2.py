"""NEWS2 (RCP 2017) against the chart: every band edge, both SpO2 scales, worked examples."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ingest import Reading
from inference.news2 import news2, news2_of, score_acvpu, score_hr, score_rr, score_sbp, score_spo2, score_temp

NORMAL = dict(rr=15, spo2=97, on_oxygen=False, sbp=120, hr=70, acvpu="A", temp=37.0)


def total(**changes: object) -> int:
    return news2(**{**NORMAL, **changes}).total  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("rr", "expected"),
    [(2, 3), (8, 3), (9, 1), (11, 1), (12, 0), (20, 0), (21, 2), (24, 2), (25, 3), (60, 3)],
)
def test_respiration_rate_band_edges(rr: float, expected: int) -> None:
    assert score_rr(rr) == expected


@pytest.mark.parametrize(
    ("spo2", "expected"), [(50, 3), (91, 3), (92, 2), (93, 2), (94, 1), (95, 1), (96, 0), (100, 0)]
)
def test_spo2_scale1_band_edges_ignore_oxygen(spo2: float, expected: int) -> None:
    assert score_spo2(spo2, scale=1, on_oxygen=False) == expected
    assert score_spo2(spo2, scale=1, on_oxygen=True) == expected


@pytest.mark.parametrize(
    ("spo2", "on_oxygen", "expected"),
    [
        (83, False, 3), (84, False, 2), (85, False, 2), (86, False, 1), (87, False, 1),
        (88, False, 0), (92, False, 0), (93, False, 0), (97, False, 0), (100, False, 0),  # >= 93 on air scores 0
        (88, True, 0), (92, True, 0), (93, True, 1), (94, True, 1), (95, True, 2), (96, True, 2), (97, True, 3), (100, True, 3),
        (83, True, 3), (84, True, 2), (87, True, 1),
    ],
)
def test_spo2_scale2_band_edges(spo2: float, on_oxygen: bool, expected: int) -> None:
    assert score_spo2(spo2, scale=2, on_oxygen=on_oxygen) == expected


@pytest.mark.parametrize(("sbp", "expected"), [(40, 3), (90, 3), (91, 2), (100, 2), (101, 1), (110, 1), (111, 0), (219, 0), (220, 3)])
def test_systolic_band_edges(sbp: float, expected: int) -> None:
    assert score_sbp(sbp) == expected


@pytest.mark.parametrize(
    ("hr", "expected"), [(20, 3), (40, 3), (41, 1), (50, 1), (51, 0), (90, 0), (91, 1), (110, 1), (111, 2), (130, 2), (131, 3)]
)
def test_pulse_band_edges(hr: float, expected: int) -> None:
    assert score_hr(hr) == expected


@pytest.mark.parametrize(
    ("temp", "expected"),
    [(25.0, 3), (35.0, 3), (35.1, 1), (36.0, 1), (36.1, 0), (38.0, 0), (38.1, 1), (39.0, 1), (39.1, 2), (42.0, 2)],
)
def test_temperature_band_edges(temp: float, expected: int) -> None:
    assert score_temp(temp) == expected


@pytest.mark.parametrize(("acvpu", "expected"), [("A", 0), ("C", 3), ("V", 3), ("P", 3), ("U", 3)])
def test_consciousness_new_confusion_scores_three(acvpu: str, expected: int) -> None:
    assert score_acvpu(acvpu) == expected


def test_oxygen_adds_two() -> None:
    assert total(on_oxygen=True) == 2


@pytest.mark.parametrize(
    ("changes", "expected_total", "band"),
    [
        ({}, 0, "low"),
        ({"rr": 21, "temp": 38.5, "hr": 95}, 4, "low"),
        ({"rr": 21, "temp": 38.5, "hr": 95, "sbp": 100}, 6, "medium"),
        ({"acvpu": "V"}, 3, "low-medium"),
        ({"rr": 4, "spo2": 91, "hr": 35}, 9, "high"),
        ({"spo2_scale": 2, "spo2": 90, "on_oxygen": False}, 0, "low"),
        ({"spo2_scale": 2, "spo2": 98, "on_oxygen": True}, 5, "medium"),
        ({"rr": 4, "spo2": 80, "on_oxygen": True, "sbp": 80, "hr": 35, "acvpu": "U", "temp": 34}, 20, "high"),
    ],
)
def test_worked_examples_from_clinical_reference(changes: dict[str, object], expected_total: int, band: str) -> None:
    score = news2(**{**NORMAL, **changes})  # type: ignore[arg-type]
    assert score.total == expected_total
    assert score.band == band


def test_single_parameter_three_is_flagged_even_when_total_is_low() -> None:
    score = news2(**{**NORMAL, "hr": 135})  # type: ignore[arg-type]
    assert score.total == 3 and score.single3 and score.band == "low-medium"
    assert not news2(**{**NORMAL, "hr": 125}).single3  # type: ignore[arg-type]


def test_values_between_chart_rows_are_rounded_not_dropped() -> None:
    # The gap a naive `12 <= rr <= 20` table leaves: 20.5 must score like 21, 20.4 like 20.
    assert score_rr(20.4) == 0 and score_rr(20.5) == 2
    assert score_rr(8.4) == 3 and score_rr(8.5) == 1
    assert score_temp(36.04) == 1 and score_temp(36.06) == 0
    assert score_hr(90.5) == 1 and score_sbp(219.5) == 3 and score_spo2(95.5) == 0


def test_absent_parameters_score_zero_and_are_listed() -> None:
    score = news2(hr=135)
    assert score.total == 3
    assert set(score.missing) == {"rr", "spo2", "on_oxygen", "sbp", "temp", "acvpu"}


def test_news2_of_reading_uses_its_scale() -> None:
    reading = Reading("P1", "D1", 0, 0, hr=70, rr=15, spo2=98, temp=37.0, sbp=120, on_oxygen=True, acvpu="A", spo2_scale=2)
    assert news2_of(reading).total == 5
    assert news2_of(Reading("P1", "D1", 0, 0, spo2=98, on_oxygen=True)).total == 2


@given(st.floats(min_value=2, max_value=80), st.floats(min_value=20, max_value=300), st.floats(min_value=25, max_value=45))
def test_every_float_scores_like_its_chart_value(rr: float, hr: float, temp: float) -> None:
    # No float falls between bands: each scores as the chart row of its rounded value.
    assert score_rr(rr) == score_rr(int(rr + 0.5))
    assert score_hr(hr) == score_hr(int(hr + 0.5))
    assert score_temp(temp) in (0, 1, 2, 3)
    assert score_temp(temp) == score_temp(int(temp * 10 + 0.5) / 10)
