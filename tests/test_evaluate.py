"""Evaluation metrics on inputs small enough to check by hand, and the cohort cleaning they rely on."""

from __future__ import annotations

import numpy as np
import pytest

from inference.dataset import PatientSeries, applied_readings, cohort_series, labels_for, make_cohort
from inference.evaluate import by_hours_since_admission
from inference.features import N_FEATURES, array_inputs
from inference.stats import auprc, auroc, roc_curve

MINUTE = 60_000
HOUR = 60 * MINUTE


def test_auroc_of_perfect_inverted_and_constant_scores() -> None:
    labels = np.array([0, 0, 1, 1, 0, 1])
    perfect = labels * 0.8 + 0.1
    assert auroc(labels, perfect) == 1.0
    assert auroc(labels, -perfect) == 0.0
    assert auroc(labels, np.zeros(6)) == 0.5


def test_auroc_equals_pairwise_probability_with_ties_counted_half() -> None:
    rng = np.random.default_rng(0)
    labels = rng.random(300) < 0.2
    scores = rng.integers(0, 6, 300).astype(float) + labels  # integer scores: many ties, like NEWS2
    pos, neg = scores[labels], scores[~labels]
    pairwise = ((pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()) / (pos.size * neg.size)
    assert auroc(labels, scores) == pytest.approx(pairwise, abs=1e-12)


def test_auprc_of_perfect_ranking_is_one_and_of_a_known_ranking_by_hand() -> None:
    assert auprc(np.array([1, 0, 1, 0]), np.array([0.9, 0.1, 0.8, 0.2])) == pytest.approx(1.0)
    # ranked: 1, 0, 1, 0 -> precision 1 at recall 0.5, precision 2/3 at recall 1
    assert auprc(np.array([1, 0, 1, 0]), np.array([0.9, 0.8, 0.7, 0.1])) == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)


def test_auprc_of_uninformative_scores_is_the_prevalence() -> None:
    labels = np.array([1, 0, 0, 0, 1, 0, 0, 0, 0, 0])
    assert auprc(labels, np.ones(10)) == pytest.approx(0.2)


def test_roc_needs_both_classes() -> None:
    with pytest.raises(ValueError, match="positive and negative"):
        roc_curve(np.ones(3), np.arange(3))


def test_labels_mark_readings_within_the_horizon_before_the_event() -> None:
    ts = np.array([0, 1, 5, 6, 7]) * HOUR
    assert labels_for(ts, 7 * HOUR, 6.0).tolist() == [0, 1, 1, 1, 0]
    assert labels_for(ts, None, 6.0).sum() == 0


def test_cleaning_drops_invalid_duplicate_and_late_readings_like_the_scorer() -> None:
    def raw(seq: int, ts: int, **extra: object) -> dict[str, object]:
        return {"patient_id": "P1", "device_id": "D1", "seq": seq, "ts_ms": ts, "hr": 80, **extra}

    applied = applied_readings([raw(0, 0), raw(1, 60_000), raw(1, 60_000), raw(2, 30_000), raw(3, 120_000, hr=9999), raw(4, 180_000)])
    assert [r.seq for r in applied["P1"]] == [0, 1, 4]


def test_cohort_series_stops_before_the_event_and_labels_the_horizon() -> None:
    _, cohort = make_cohort(patients=6, hours=3.0, seed=5, deteriorating_fraction=1.0)
    out = cohort_series(cohort, horizon_hours=6.0)
    assert out and all(s.event_ts_ms is not None for s in out)
    for s in out:
        assert s.inputs.ts_ms.max() < s.event_ts_ms
        assert np.all(np.diff(s.inputs.ts_ms) >= 0)
        assert s.labels.tolist() == labels_for(s.inputs.ts_ms, s.event_ts_ms, 6.0).tolist()


def _stay(pid: str, hours: list[float], labels: list[float], news2: list[int]) -> PatientSeries:
    n = len(hours)
    ts = (np.array(hours) * HOUR).astype(np.int64) + 1_700_000_000_000
    inputs = array_inputs(np.zeros((n, N_FEATURES), np.float32), np.zeros((n, N_FEATURES), np.float32), ts)
    return PatientSeries(pid, "test", None, inputs, np.array(labels, np.float64), np.array(news2), np.zeros(n, bool))


def test_auroc_by_hours_since_admission_counts_only_each_windows_readings() -> None:
    # Early readings: the model ranks them perfectly, NEWS2 inverted; from hour 6 to 48 the
    # reverse; past hour 48 both are wrong. Each window's AUROC sees only its own readings.
    stays = [
        _stay("a", [0, 1, 10, 60], [1, 0, 1, 0], [0, 5, 5, 5]),
        _stay("b", [0, 2, 20, 70], [0, 1, 0, 1], [5, 0, 0, 0]),
        _stay("c", [0.5, 3, 30], [1, 0, 0], [0, 5, 0]),
    ]
    risk = [np.array([0.9, 0.1, 0.2, 0.6]), np.array([0.1, 0.9, 0.7, 0.3]), np.array([0.8, 0.2, 0.4])]
    early, middle, late = by_hours_since_admission(stays, risk, replicates=50)
    assert (early["readings"], early["positive"], early["patients"]) == (6, 3, 3)
    assert early["model_auroc"] == 1.0 and early["news2_auroc"] == 0.0 and early["auroc_difference"] == 1.0
    assert (middle["readings"], middle["positive"], middle["patients"]) == (3, 1, 3)
    assert middle["model_auroc"] == 0.0 and middle["news2_auroc"] == 1.0
    assert (late["readings"], late["positive"], late["to_hours"]) == (2, 1, None)
    assert late["model_auroc"] == 0.0
    lo, hi = early["model_auroc_ci"]
    assert lo <= 1.0 <= hi + 1e-12


def test_a_window_with_one_class_only_reports_counts_and_no_auroc() -> None:
    stays = [_stay("a", [0, 1, 10], [0, 0, 1], [1, 2, 3]), _stay("b", [0, 1, 12], [0, 0, 0], [1, 1, 1])]
    early, middle, late = by_hours_since_admission(stays, [np.array([0.1, 0.2, 0.9]), np.array([0.1, 0.1, 0.2])], replicates=20)
    assert "model_auroc" not in early and early["readings"] == 4
    assert middle["model_auroc"] == 1.0
    assert late["readings"] == 0 and "model_auroc" not in late
