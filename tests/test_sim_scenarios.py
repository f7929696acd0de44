"""Each deterioration scenario leaves its own signature before the event, against the patient's own baseline."""

from __future__ import annotations

import numpy as np
import pytest

from ingest.contract import ACVPU_LEVELS
from sim.cohort import Cohort, CohortConfig, generate
from sim.physiology import DBP, HR, RR, SBP, SPO2
from sim.scenarios import SCENARIO_NAMES

BASELINE_MIN = 60  # the hour before onset
NEAR_MIN = 30  # the half hour before the event


@pytest.fixture(scope="module")
def cohort() -> Cohort:
    return generate(CohortConfig(patients=240, hours=24, seed=5, deteriorating_fraction=1.0))


def slots(cohort: Cohort, scenario: str) -> list[tuple[int, int, int]]:
    """(patient index, onset slot, event slot) of every patient with this scenario."""
    step, start = cohort.config.step_ms, cohort.config.start_ms
    out = []
    for e in cohort.events:
        if e.scenario == scenario:
            assert e.onset_ts_ms is not None
            out.append((int(e.patient_id[1:]), (e.onset_ts_ms - start) // step, (e.event_ts_ms - start) // step))
    assert len(out) >= 25, f"too few {scenario} patients to judge a signature"
    return out


def reading_change(cohort: Cohort, scenario: str, vital: str) -> np.ndarray:
    """Per patient: median delivered value in the half hour before the event minus the hour before onset."""
    col = cohort.columns
    changes = []
    for i, onset, event in slots(cohort, scenario):
        mine = (col.patient == i) & ~col.duplicate
        values, seq = col.vital(vital)[mine], col.seq[mine]
        base = values[(seq >= onset - BASELINE_MIN) & (seq < onset)]
        near = values[(seq >= event - NEAR_MIN) & (seq < event)]
        base, near = base[~np.isnan(base)], near[~np.isnan(near)]
        if base.size >= 5 and near.size >= 5:  # skip the few whose device was silent then
            changes.append(np.median(near) - np.median(base))
    return np.array(changes)


def truth_change(cohort: Cohort, scenario: str, vital: int) -> np.ndarray:
    """Per patient: true value in the 10 min before the event minus the hour before onset."""
    assert cohort.truth is not None
    v = cohort.truth.vitals[vital]
    return np.array([v[i, event - 10:event].mean() - v[i, onset - BASELINE_MIN:onset].mean() for i, onset, event in slots(cohort, scenario)])


def rises(changes: np.ndarray, by: float) -> bool:
    return np.median(changes) >= by and (changes > 0).mean() >= 0.85


def falls(changes: np.ndarray, by: float) -> bool:
    return rises(-changes, by)


def test_every_deteriorating_patient_has_one_event_after_at_least_an_hour_of_baseline(cohort: Cohort) -> None:
    assert len(cohort.events) == len(cohort.patients)
    assert {e.scenario for e in cohort.events} == set(SCENARIO_NAMES)
    end = cohort.config.start_ms + cohort.config.slots * cohort.config.step_ms
    for e in cohort.events:
        assert e.onset_ts_ms is not None
        assert cohort.config.start_ms + 3_600_000 <= e.onset_ts_ms < e.event_ts_ms < end
    durations_h = [(e.event_ts_ms - e.onset_ts_ms) / 3_600_000 for e in cohort.events if e.onset_ts_ms]
    assert max(durations_h) - min(durations_h) > 3, "courses should unfold at different speeds"
    severities = [e.severity for e in cohort.events if e.severity is not None]
    assert max(severities) - min(severities) > 0.4, "courses should differ in severity"


def test_sepsis_raises_heart_and_breathing_rate_moves_temperature_and_drops_pressure(cohort: Cohort) -> None:
    assert rises(reading_change(cohort, "sepsis", "hr"), 15)
    assert rises(reading_change(cohort, "sepsis", "rr"), 4)
    temp = reading_change(cohort, "sepsis", "temp")
    assert (np.abs(temp) >= 0.5).mean() >= 0.8, "fever, or hypothermia in some"
    assert (temp < -0.5).any() and (temp > 0.5).any()
    assert falls(truth_change(cohort, "sepsis", SBP), 10)


def test_respiratory_failure_lowers_saturation_and_raises_breathing_rate(cohort: Cohort) -> None:
    assert falls(reading_change(cohort, "respiratory_failure", "spo2"), 3)
    assert rises(reading_change(cohort, "respiratory_failure", "rr"), 5)
    assert rises(reading_change(cohort, "respiratory_failure", "hr"), 10)


def test_haemorrhage_raises_heart_rate_and_drops_blood_pressure(cohort: Cohort) -> None:
    assert rises(reading_change(cohort, "haemorrhage", "hr"), 15)
    assert falls(truth_change(cohort, "haemorrhage", SBP), 15)
    assert falls(truth_change(cohort, "haemorrhage", DBP), 8)
    # Temperature is not the story here, unlike sepsis.
    assert np.median(np.abs(truth_change(cohort, "haemorrhage", 3))) < 0.6


def test_opioid_depression_slows_breathing_lowers_saturation_and_drowsiness_is_charted(cohort: Cohort) -> None:
    assert falls(reading_change(cohort, "opioid", "rr"), 3)
    assert falls(reading_change(cohort, "opioid", "spo2"), 2)
    assert np.median(truth_change(cohort, "opioid", HR)) < 0, "no tachycardia"
    col = cohort.columns
    drowsy = []
    for i, _onset, event in slots(cohort, "opioid"):
        near = (col.patient == i) & (col.seq >= event - 10) & (col.seq < event)
        if near.any():
            drowsy.append(bool((col.acvpu[near] > ACVPU_LEVELS.index("A")).all()))
    assert np.mean(drowsy) >= 0.9, "ACVPU should be charted C/V/P (not Alert) just before the call"


def test_scenarios_are_distinguishable_from_each_other(cohort: Cohort) -> None:
    hr = {s: np.median(truth_change(cohort, s, HR)) for s in SCENARIO_NAMES}
    rr = {s: np.median(truth_change(cohort, s, RR)) for s in SCENARIO_NAMES}
    spo2 = {s: np.median(truth_change(cohort, s, SPO2)) for s in SCENARIO_NAMES}
    assert rr["opioid"] < 0 < rr["sepsis"] and hr["opioid"] < 0 < hr["haemorrhage"]
    assert spo2["respiratory_failure"] < spo2["haemorrhage"] and spo2["respiratory_failure"] < spo2["sepsis"]


def test_patients_recover_after_the_rapid_response_call(cohort: Cohort) -> None:
    assert cohort.truth is not None
    v = cohort.truth.vitals[HR]
    recovered = []
    for i, _onset, event in slots(cohort, "haemorrhage"):
        later = min(event + 6 * 60, v.shape[1])
        if later - event >= 4 * 60:
            recovered.append(v[i, later - 10:later].mean() < v[i, event - 10:event].mean())
    assert np.mean(recovered) >= 0.8
