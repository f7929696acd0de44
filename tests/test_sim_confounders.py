"""Confounders appear at their configured rates and look abnormal without deteriorating."""

from __future__ import annotations

import math

import numpy as np
import pytest

from inference.news2 import score_spo2
from sim.cohort import Cohort, CohortConfig, generate
from sim.confounders import CONFOUNDERS, ConfounderRates
from sim.physiology import HR, TEMP


@pytest.fixture(scope="module")
def cohort() -> Cohort:
    # No deteriorations: anything abnormal here is a confounder.
    return generate(CohortConfig(patients=400, hours=24, seed=21, deteriorating_fraction=0.0))


def with_confounder(cohort: Cohort, name: str) -> list[int]:
    rows = [i for i, p in enumerate(cohort.patients) if name in p.confounders]
    assert len(rows) >= 10, f"too few {name} patients"
    return rows


def without_any(cohort: Cohort) -> list[int]:
    return [i for i, p in enumerate(cohort.patients) if not p.confounders]


@pytest.mark.parametrize("rates", [ConfounderRates(), ConfounderRates(copd=0.3, chronic_tachycardia=0.0, transient_fever=0.5, recovering=0.02, exercise=0.9)])
def test_confounders_occur_at_the_configured_rates(rates: ConfounderRates) -> None:
    n = 4000
    cohort = generate(CohortConfig(patients=n, hours=0.5, seed=3, confounders=rates))
    for name in CONFOUNDERS:
        expected = getattr(rates, name)
        seen = sum(name in p.confounders for p in cohort.patients) / n
        assert abs(seen - expected) <= 4 * math.sqrt(expected * (1 - expected) / n) + 1e-9, (name, seen, expected)


def test_copd_patients_sit_at_88_to_92_percent_on_scale_2_and_news2_does_not_score_it(cohort: Cohort) -> None:
    col = cohort.columns
    for i in with_confounder(cohort, "copd"):
        mine = (col.patient == i) & ~np.isnan(col.spo2) & (col.artefact == 0)
        spo2 = col.spo2[mine]
        assert set(col.spo2_scale[col.patient == i].tolist()) == {2}
        assert 87.5 <= np.median(spo2) <= 92.5
        assert score_spo2(float(np.median(spo2)), scale=2) == 0
        assert score_spo2(float(np.median(spo2)), scale=1) == 3, "the same value on scale 1 would be a red score"
    others = without_any(cohort)
    assert all(cohort.patients[i].spo2_scale == 1 for i in others)


def test_chronic_tachycardia_is_fast_all_stay(cohort: Cohort) -> None:
    assert cohort.truth is not None
    hr = cohort.truth.vitals[HR]
    tachy = with_confounder(cohort, "chronic_tachycardia")
    assert np.median([np.median(hr[i]) for i in tachy]) > 100
    assert np.median([np.median(hr[i]) for i in without_any(cohort)]) < 85


def test_transient_fever_peaks_and_resolves_with_a_heart_rate_response(cohort: Cohort) -> None:
    assert cohort.truth is not None
    temp, hr = cohort.truth.vitals[TEMP], cohort.truth.vitals[HR]
    for i in with_confounder(cohort, "transient_fever"):
        peak = int(temp[i].argmax())
        assert temp[i, peak] >= 37.6
        assert temp[i, -30:].mean() < temp[i, peak] - 0.6, "the fever resolves within the stay"
    fevers = with_confounder(cohort, "transient_fever")
    # Fever couples to heart rate: HR at the temperature peak exceeds the patient's own median.
    assert np.mean([hr[i, max(0, int(temp[i].argmax()) - 5):int(temp[i].argmax()) + 5].mean() > np.median(hr[i]) for i in fevers]) >= 0.8


def test_recovering_patients_start_deranged_and_normalise(cohort: Cohort) -> None:
    assert cohort.truth is not None
    hr = cohort.truth.vitals[HR]
    improving = [hr[i, :60].mean() - hr[i, -60:].mean() for i in with_confounder(cohort, "recovering")]
    assert np.median(improving) > 10


def test_exercise_episodes_raise_heart_and_breathing_rate(cohort: Cohort) -> None:
    assert cohort.truth is not None
    activity, hr = cohort.truth.activity, cohort.truth.vitals[HR]
    exercising = with_confounder(cohort, "exercise")
    assert np.mean([(activity[i] > 0.5).any() for i in exercising]) >= 0.8
    lifts = [hr[i][activity[i] > 0.5].mean() - hr[i][activity[i] == 0].mean() for i in exercising if (activity[i] > 0.5).any()]
    assert np.median(lifts) > 15
    assert np.mean([(activity[i] > 0.5).mean() for i in exercising]) > 3 * np.mean([(activity[i] > 0.5).mean() for i in without_any(cohort)])
