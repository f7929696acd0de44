"""The measures the evaluation reports: AUROC and AUPRC, their bootstrap intervals over
patients, and calibration (Brier score, reliability table). Pure numpy, no model."""

from __future__ import annotations

from typing import Any

import numpy as np


# -- per-reading discrimination ------------------------------------------------------------
def _curve(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative (true positives, false positives) at each distinct threshold, high to low."""
    labels = np.asarray(labels, dtype=np.float64).ravel()
    scores = np.asarray(scores, dtype=np.float64).ravel()
    order = np.argsort(-scores, kind="mergesort")
    s, y = scores[order], labels[order]
    last_of_tie = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]  # ties share one threshold
    tps = np.cumsum(y)[last_of_tie]
    fps = (last_of_tie + 1) - tps
    return tps, fps


def roc_curve(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(false positive rate, true positive rate), starting at (0, 0)."""
    tps, fps = _curve(labels, scores)
    if tps[-1] == 0 or fps[-1] == 0:
        raise ValueError("ROC needs both positive and negative labels")
    return np.r_[0.0, fps / fps[-1]], np.r_[0.0, tps / tps[-1]]


def auroc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve (ties count one half), by the trapezoid over distinct thresholds."""
    fpr, tpr = roc_curve(labels, scores)
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2.0))


def pr_curve(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(recall, precision) at each distinct threshold, high to low."""
    tps, fps = _curve(labels, scores)
    if tps[-1] == 0:
        raise ValueError("precision-recall needs positive labels")
    return tps / tps[-1], tps / (tps + fps)


def auprc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Average precision: precision at each threshold weighted by the recall it adds."""
    recall, precision = pr_curve(labels, scores)
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


# -- bootstrap intervals (patients resampled) ------------------------------------------------
class PatientBootstrap:
    """AUROC/AUPRC with 95% intervals from resampling patients (with replacement).

    Readings of one patient are correlated, so the unit resampled is the patient: each
    replicate draws patients and weighs every reading by how often its patient was drawn.
    Scores are sorted once; each replicate is one weighted pass.
    """

    def __init__(self, patient: np.ndarray, labels: np.ndarray, replicates: int = 200, seed: int = 0) -> None:
        self.patient = np.asarray(patient, dtype=np.int64)
        self.labels = np.asarray(labels, dtype=np.float64)
        n = int(self.patient.max()) + 1 if self.patient.size else 0
        rng = np.random.default_rng(seed)
        self.weights = [np.bincount(rng.integers(0, n, n), minlength=n).astype(np.float64) for _ in range(replicates)]

    @staticmethod
    def _weighted(labels: np.ndarray, scores: np.ndarray, weights: np.ndarray) -> tuple[float, float]:
        order = np.argsort(-scores, kind="mergesort")
        s, y, w = scores[order], labels[order], weights[order]
        last_of_tie = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]
        tps = np.cumsum(y * w)[last_of_tie]
        fps = np.cumsum((1 - y) * w)[last_of_tie]
        if tps[-1] <= 0 or fps[-1] <= 0:
            return float("nan"), float("nan")
        tpr, fpr = np.r_[0.0, tps / tps[-1]], np.r_[0.0, fps / fps[-1]]
        roc = float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2.0))
        precision = tps / np.maximum(tps + fps, 1e-12)
        pr = float(np.sum(np.diff(np.r_[0.0, tps / tps[-1]]) * precision))
        return roc, pr

    def metrics(self, scores: np.ndarray) -> dict[str, Any]:
        """Point estimates and 95% percentile intervals for one score."""
        scores = np.asarray(scores, dtype=np.float64)
        roc, pr = auroc(self.labels, scores), auprc(self.labels, scores)
        reps = np.array([self._weighted(self.labels, scores, w[self.patient]) for w in self.weights])
        return {"auroc": roc, "auroc_ci": percentile_interval(reps[:, 0]), "auprc": pr, "auprc_ci": percentile_interval(reps[:, 1]), "_reps": reps}

    def difference(self, a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
        """AUROC of a minus b, paired over the same replicates."""
        d = a["_reps"][:, 0] - b["_reps"][:, 0]
        return {"auroc_difference": a["auroc"] - b["auroc"], "auroc_difference_ci": percentile_interval(d)}


def percentile_interval(values: np.ndarray) -> list[float]:
    """The 95% percentile interval of bootstrap replicates (NaN replicates left out)."""
    v = values[~np.isnan(values)]
    return [float(np.percentile(v, 2.5)), float(np.percentile(v, 97.5))] if v.size else [float("nan"), float("nan")]


def calibration(labels: np.ndarray, risk: np.ndarray, bins: int = 10) -> dict[str, Any]:
    """Brier score and a reliability table (equal-count bins: mean predicted vs observed rate)."""
    labels = np.asarray(labels, dtype=np.float64)
    risk = np.asarray(risk, dtype=np.float64)
    order = np.argsort(risk, kind="mergesort")
    table = []
    for part in np.array_split(order, bins):
        if part.size:
            table.append({"n": int(part.size), "predicted": float(risk[part].mean()), "observed": float(labels[part].mean())})
    prevalence = float(labels.mean())
    return {
        "brier": float(np.mean((risk - labels) ** 2)),
        "brier_reference": prevalence * (1 - prevalence),  # predicting the prevalence for everyone
        "mean_predicted": float(risk.mean()),
        "prevalence": prevalence,
        "reliability": table,
    }
