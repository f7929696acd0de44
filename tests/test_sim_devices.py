"""The simulated wearables lose, corrupt, duplicate and reorder readings at the configured rates."""

from __future__ import annotations

import numpy as np
import pytest

from sim.cohort import Cohort, CohortConfig, generate
from sim.devices import DeviceConfig
from sim.output import out_of_order, summarise


@pytest.fixture(scope="module")
def cohort() -> Cohort:
    return generate(CohortConfig(patients=200, hours=24, seed=8))


def missing_fractions(cohort: Cohort, vital: str) -> tuple[float, np.ndarray]:
    """Cohort-wide and per-patient fraction of the values a device should have sent but did not."""
    assert cohort.truth is not None
    m = cohort.truth.measured
    v = ("hr", "rr", "spo2", "temp", "sbp", "dbp").index(vital)
    absent = m.scheduled[v] & np.isnan(m.values[v])
    return float(absent.sum() / m.scheduled[v].sum()), absent.sum(axis=1) / m.scheduled[v].sum(axis=1)


@pytest.mark.parametrize("vital, configured", [("hr", (0.06, 0.27)), ("rr", (0.13, 0.34))])
def test_missingness_matches_the_published_wearable_loss_ranges(cohort: Cohort, vital: str, configured: tuple[float, float]) -> None:
    overall, per_patient = missing_fractions(cohort, vital)
    lo, hi = configured
    assert lo <= overall <= hi
    assert ((per_patient >= lo - 0.04) & (per_patient <= hi + 0.04)).mean() >= 0.8
    assert per_patient.max() - per_patient.min() > 0.1, "devices differ in quality"
    # The delivered readings agree: absent vitals are null (NaN in the columns), never a number.
    delivered = cohort.columns.vital(vital)[~cohort.columns.duplicate]
    assert np.isnan(delivered).any()


def test_missingness_follows_a_configured_range() -> None:
    config = CohortConfig(patients=150, hours=24, seed=2, devices=DeviceConfig(hr_loss=(0.30, 0.40), rr_loss=(0.45, 0.55)))
    cohort = generate(config)
    assert 0.30 <= missing_fractions(cohort, "hr")[0] <= 0.40
    assert 0.45 <= missing_fractions(cohort, "rr")[0] <= 0.55
    assert summarise(cohort)["missingness"]["hr"] == pytest.approx(missing_fractions(cohort, "hr")[0], abs=1e-4)


def test_whole_device_gaps_last_minutes_to_hours(cohort: Cohort) -> None:
    assert cohort.truth is not None
    down = cohort.truth.measured.down
    lengths = []
    for row in down:
        edges = np.flatnonzero(np.diff(np.concatenate([[0], row.astype(np.int8), [0]])))
        lengths.extend((edges[1::2] - edges[::2]).tolist())
    lengths_arr = np.array(lengths)
    assert lengths_arr.min() <= 5 and lengths_arr.max() >= 60
    assert np.median(lengths_arr) < 60


def test_vitals_are_reported_at_their_own_intervals(cohort: Cohort) -> None:
    col = cohort.columns
    never_bp = 0
    for i in range(40):
        mine = (col.patient == i) & ~col.duplicate
        temp_seq = col.seq[mine & ~np.isnan(col.temp)]
        assert len(temp_seq) > 0 and len(set((temp_seq % 5).tolist())) == 1, "temperature every 5 minutes"
        bp_seq = col.seq[mine & ~np.isnan(col.sbp)]
        if len(bp_seq) == 0:
            never_bp += 1
        else:
            assert np.all(np.diff(bp_seq) % 60 == 0), "blood pressure hourly or 4-hourly"
        assert np.array_equal(np.isnan(col.sbp[mine]), np.isnan(col.dbp[mine]))
    assert never_bp >= 1
    assert np.isnan(col.hr).mean() < 0.2, "HR is reported nearly every slot it is sent"


def test_duplicates_and_out_of_order_deliveries_are_present_at_about_their_rates(cohort: Cohort) -> None:
    col = cohort.columns
    unique = int((~col.duplicate).sum())
    assert 0.5 * 0.005 <= col.duplicate.sum() / unique <= 2 * 0.005
    keys = col.patient.astype(np.int64) * 10**6 + col.seq
    assert len(np.unique(keys)) == unique, "a duplicate repeats device and seq"
    assert out_of_order(cohort) >= 0.5 * 0.003 * unique
    assert np.all(np.diff(col.deliver_ms) >= 0), "readings are listed in delivery order"


def test_delivery_faults_can_be_switched_off() -> None:
    clean = DeviceConfig(duplicate_rate=0.0, reorder_rate=0.0, buffered_per_day=0.0)
    cohort = generate(CohortConfig(patients=30, hours=12, seed=4, devices=clean))
    assert not cohort.columns.duplicate.any()
    assert out_of_order(cohort) == 0


def test_device_clocks_are_skewed_by_seconds_not_minutes(cohort: Cohort) -> None:
    col, config = cohort.columns, cohort.config
    offset_s = (col.ts_ms - (config.start_ms + col.seq * config.step_ms)) / 1000
    assert np.abs(offset_s).max() <= config.devices.max_skew_s + 5
    assert offset_s.min() < -5 and offset_s.max() > 5


def test_motion_artefacts_are_valid_looking_values_mostly_during_activity(cohort: Cohort) -> None:
    assert cohort.truth is not None
    col = cohort.columns
    artefact = col.artefact > 0
    assert 0.002 < artefact.mean() < 0.05
    active = cohort.truth.activity[col.patient, col.seq] > 0.25
    assert artefact[active].mean() > 10 * artefact[~active].mean()
