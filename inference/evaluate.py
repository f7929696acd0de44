"""Evaluation: the model against NEWS2 on held-out simulator cohorts, side by side.

Per reading: AUROC and AUPRC of the risk (label: an event within the horizon). Per event:
sensitivity and lead time of alerts. Per patient-day: how many alerts it costs. An alert is
the rising edge of `score >= threshold` under one rule for both scores (`AlertRule`): the
condition must hold for `debounce` consecutive readings before an alert is raised, the alert
stays active until the condition fails, and after a raise no new alert is raised for
`refractory_minutes`. An event counts as detected when an alert is active at any reading in
the `window_hours` before it; the lead time is from the first such reading to the event.
The model's threshold is the highest one whose event sensitivity reaches NEWS2 >= 5's.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from inference.dataset import PatientSeries, pad
from inference.features import MS_PER_HOUR
from inference.model import RiskModel

log = logging.getLogger(__name__)

NEWS2_THRESHOLD = 5  # RCP: aggregate 5 or more calls for an urgent clinical response


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


# -- alerts and events ---------------------------------------------------------------------
@dataclass(frozen=True)
class AlertRule:
    debounce: int = 3  # consecutive readings at or above threshold before an alert is raised
    refractory_minutes: float = 60.0  # no new raise this soon after the last one
    window_hours: float = 6.0  # an alert active this long before an event detects it


def alerts(ts_ms: np.ndarray, scores: np.ndarray, threshold: float, rule: AlertRule) -> tuple[np.ndarray, np.ndarray]:
    """(alert active per reading, indices of the readings that raised an alert) for one patient."""
    above = np.asarray(scores) >= threshold
    active = np.zeros(len(above), dtype=bool)
    edges = np.diff(np.r_[0, above.astype(np.int8), 0])
    raised: list[int] = []
    last_raise = None
    # Within one stretch at or above threshold, the raise is the first reading that has been
    # above for `debounce` readings and is out of the previous raise's refractory period.
    for start, end in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)):
        first = int(start) + rule.debounce - 1
        if last_raise is not None:
            first = max(first, int(np.searchsorted(ts_ms, last_raise + rule.refractory_minutes * 60_000, side="left")))
        if first >= end:
            continue
        active[first:end] = True
        raised.append(int(first))
        last_raise = ts_ms[first]
    return active, np.asarray(raised, dtype=np.int64)


def event_metrics(series: Sequence[PatientSeries], scores: Sequence[np.ndarray], threshold: float, rule: AlertRule) -> dict[str, Any]:
    """Event sensitivity, lead times (hours), alerts and alerts per patient-day at one threshold."""
    detected, lead_hours, raised, false_alerts, days = 0, [], 0, 0, 0.0
    events = 0
    for s, score in zip(series, scores):
        ts = s.inputs.ts_ms
        active, raises = alerts(ts, score, threshold, rule)
        raised += len(raises)
        days += max(float(ts[-1] - ts[0]), 60_000.0) / (24 * MS_PER_HOUR)
        if s.event_ts_ms is None:
            false_alerts += len(raises)
            continue
        events += 1
        in_window = (s.event_ts_ms - ts) <= rule.window_hours * MS_PER_HOUR
        false_alerts += int((~in_window[raises]).sum())
        hits = np.flatnonzero(active & in_window)
        if hits.size:
            detected += 1
            lead_hours.append((s.event_ts_ms - ts[hits[0]]) / MS_PER_HOUR)
    return {
        "threshold": float(threshold),
        "events": events,
        "detected": detected,
        "sensitivity": detected / events if events else float("nan"),
        "median_lead_hours": float(np.median(lead_hours)) if lead_hours else float("nan"),
        "lead_hours": [round(x, 3) for x in lead_hours],
        "alerts": raised,
        "patient_days": round(days, 3),
        "alerts_per_patient_day": raised / days if days else float("nan"),
        "false_alerts": false_alerts,  # raised outside the window before an event
        "false_alerts_per_patient_day": false_alerts / days if days else float("nan"),
    }


def matched_threshold(series: Sequence[PatientSeries], scores: Sequence[np.ndarray], target: float, rule: AlertRule) -> float:
    """The highest threshold whose event sensitivity is at least `target` (fewest alerts for it)."""
    pooled = np.concatenate(list(scores))
    candidates = np.unique(np.quantile(pooled, np.r_[np.linspace(0.0, 0.9, 91), np.linspace(0.9, 1.0, 301)]))[::-1]
    best = float(candidates[-1])
    for threshold in candidates:  # high to low: the first that reaches the target wins
        if event_metrics(series, scores, float(threshold), rule)["sensitivity"] >= target - 1e-9:
            return float(threshold)
    return best


# -- scoring and one cohort ----------------------------------------------------------------
@torch.no_grad()
def score(model: RiskModel, series: Sequence[PatientSeries], batch: int = 256) -> list[np.ndarray]:
    """The model's risk for every reading of every patient (whole sequences, as streamed)."""
    model.eval()
    out: list[np.ndarray] = []
    for start in range(0, len(series), batch):
        part = series[start : start + batch]
        p = pad(part)
        logits, _ = model.forward_sequence(p.values, p.mask, p.delta, p.last_values, p.last_mask)
        risk = torch.sigmoid(logits).numpy()
        out.extend(risk[i, : len(s)] for i, s in enumerate(part))
    return out


@dataclass
class CohortResult:
    name: str
    description: dict[str, Any]
    series: list[PatientSeries]
    risk: list[np.ndarray]
    summary: dict[str, Any] = field(default_factory=dict)


def evaluate_cohort(name: str, description: dict[str, Any], series: list[PatientSeries], risk: list[np.ndarray], rule: AlertRule) -> CohortResult:
    """All metrics for one cohort: model and NEWS2 side by side."""
    labels = np.concatenate([s.labels for s in series])
    model_scores = np.concatenate(risk)
    news2_scores = np.concatenate([s.news2 for s in series]).astype(np.float64)
    news2_lists = [s.news2.astype(np.float64) for s in series]
    news2_events = event_metrics(series, news2_lists, NEWS2_THRESHOLD, rule)
    threshold = matched_threshold(series, risk, news2_events["sensitivity"], rule)
    model_events = event_metrics(series, risk, threshold, rule)
    summary = {
        "cohort": description,
        "patients": len(series),
        "readings": int(labels.size),
        "positive_readings": int(labels.sum()),
        "prevalence": float(labels.mean()),
        "model": {"auroc": auroc(labels, model_scores), "auprc": auprc(labels, model_scores), "events": model_events},
        "news2": {"auroc": auroc(labels, news2_scores), "auprc": auprc(labels, news2_scores), "events": news2_events},
    }
    return CohortResult(name, description, series, risk, summary)


# -- report --------------------------------------------------------------------------------
def _fmt(x: float, digits: int = 3) -> str:
    return "n/a" if x != x else f"{x:.{digits}f}"


def markdown(report: dict[str, Any]) -> str:
    """The human-readable report."""
    rule = report["alert_rule"]
    lines = [
        "# Model vs NEWS2 on held-out cohorts",
        "",
        f"Model `{report['model_version']}`; horizon {report['horizon_hours']:g} h. Command: `{report['command']}`",
        "",
        f"Alert rule (both scores): raise after {rule['debounce']} consecutive readings at or above the threshold, "
        f"active until a reading falls below it, at most one raise per {rule['refractory_minutes']:g} min; an event is "
        f"detected when an alert is active within {rule['window_hours']:g} h before it. NEWS2 threshold {NEWS2_THRESHOLD}; "
        "the model's threshold is the highest giving at least NEWS2's event sensitivity.",
        "",
        "| cohort | patients | events | prevalence | AUROC model | AUROC NEWS2 | AUPRC model | AUPRC NEWS2 "
        "| sensitivity model / NEWS2 | median lead h model / NEWS2 | alerts/patient-day model / NEWS2 "
        "| false alerts/patient-day model / NEWS2 | model threshold |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, c in report["cohorts"].items():
        m, n = c["model"], c["news2"]
        me, ne = m["events"], n["events"]
        lines.append(
            f"| {name} | {c['patients']} | {ne['events']} | {_fmt(c['prevalence'], 4)} | **{_fmt(m['auroc'])}** | {_fmt(n['auroc'])} "
            f"| **{_fmt(m['auprc'])}** | {_fmt(n['auprc'])} | {_fmt(me['sensitivity'], 2)} / {_fmt(ne['sensitivity'], 2)} "
            f"| {_fmt(me['median_lead_hours'], 2)} / {_fmt(ne['median_lead_hours'], 2)} "
            f"| **{_fmt(me['alerts_per_patient_day'], 2)}** / {_fmt(ne['alerts_per_patient_day'], 2)} "
            f"| {_fmt(me['false_alerts_per_patient_day'], 2)} / {_fmt(ne['false_alerts_per_patient_day'], 2)} | {_fmt(me['threshold'], 3)} |"
        )
    lines += ["", "Cohorts:", ""]
    lines += [f"- `{name}`: {json.dumps(c['cohort'], sort_keys=True)}" for name, c in report["cohorts"].items()]
    lines += ["", "Plots: " + ", ".join(f"[{p}]({p})" for p in report["plots"]), ""]
    return "\n".join(lines)


def plots(results: Sequence[CohortResult], out_dir: Path, rule: AlertRule) -> list[str]:
    """ROC, PR, calibration and lead-time PNGs (small) into `out_dir`; returns their names."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = []
    figures = {name: plt.subplots(figsize=(4.2, 3.6), dpi=72) for name in ("roc", "pr", "calibration", "lead_time")}
    for i, r in enumerate(results):
        labels = np.concatenate([s.labels for s in r.series])
        model_scores, news2_scores = np.concatenate(r.risk), np.concatenate([s.news2 for s in r.series]).astype(float)
        color = f"C{i}"
        for scores, style, who in ((model_scores, "-", "model"), (news2_scores, "--", "NEWS2")):
            fpr, tpr = roc_curve(labels, scores)
            figures["roc"][1].plot(fpr, tpr, style, color=color, lw=1.2, label=f"{who} {r.name}")
            recall, precision = pr_curve(labels, scores)
            figures["pr"][1].plot(recall, precision, style, color=color, lw=1.2, label=f"{who} {r.name}")
        bins = np.linspace(0, 1, 11)
        which = np.clip(np.digitize(model_scores, bins) - 1, 0, 9)
        seen = [b for b in range(10) if (which == b).sum() >= 20]
        figures["calibration"][1].plot(
            [model_scores[which == b].mean() for b in seen], [labels[which == b].mean() for b in seen], "o-", color=color, ms=3, label=r.name
        )
    first = results[0].summary
    leads = (first["model"]["events"]["lead_hours"], first["news2"]["events"]["lead_hours"])
    edges = np.linspace(0, rule.window_hours, 13)
    figures["lead_time"][1].hist(leads, bins=edges.tolist(), label=["model (matched)", f"NEWS2 >= {NEWS2_THRESHOLD}"])
    axes = {
        "roc": ("false positive rate", "true positive rate", "ROC per reading (solid model, dashed NEWS2)"),
        "pr": ("recall", "precision", "Precision-recall per reading"),
        "calibration": ("predicted risk", "observed event rate", "Calibration (model)"),
        "lead_time": ("hours before event", "events", f"Lead time, cohort {results[0].name}"),
    }
    for name, (fig, ax) in figures.items():
        xlabel, ylabel, title = axes[name]
        ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
        ax.title.set_fontsize(9)
        if name in ("roc", "calibration"):
            ax.plot([0, 1], [0, 1], ":", color="grey", lw=0.8)
        ax.legend(fontsize=6)
        fig.tight_layout()
        fig.savefig(out_dir / f"{name}.png")
        plt.close(fig)
        names.append(f"{name}.png")
    return names


def write_report(results: Sequence[CohortResult], out_dir: str | Path, *, model_version: str, horizon_hours: float, rule: AlertRule, command: str) -> dict[str, Any]:
    """Write report.json, report.md and the PNG plots; returns the report."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {
        "model_version": model_version,
        "horizon_hours": horizon_hours,
        "alert_rule": asdict(rule),
        "news2_threshold": NEWS2_THRESHOLD,
        "command": command,
        "cohorts": {r.name: r.summary for r in results},
        "plots": plots(results, out, rule),
    }
    (out / "report.json").write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    (out / "report.md").write_text(markdown(report))
    log.info("report written dir=%s", out)
    return report


def shifted_options() -> dict[str, object]:
    """Cohort options for the shifted case: fewer deteriorations, another scenario mix, more confounders.

    Uses whatever the simulator offers (`scenario_mix`, `confounders`); the share of
    deteriorating patients always drops from the training 25% to 10%.
    """
    import dataclasses

    from sim import cohort

    offered = {f.name for f in dataclasses.fields(cohort.CohortConfig)}
    options: dict[str, object] = {"deteriorating_fraction": 0.10}
    if "scenario_mix" in offered:  # training mix is sepsis-heavy; here the fast scenarios dominate
        options["scenario_mix"] = (("sepsis", 0.1), ("respiratory_failure", 0.1), ("haemorrhage", 0.4), ("opioid", 0.4))
    if "confounders" in offered:
        from sim.confounders import ConfounderRates

        options["confounders"] = ConfounderRates(copd=0.2, chronic_tachycardia=0.15, transient_fever=0.2, recovering=0.2, exercise=0.4)
    return options


def evaluate_model(
    model: RiskModel,
    model_version: str,
    cohorts: Sequence[tuple[str, int, dict[str, object]]],
    *,
    patients: int,
    hours: float,
    rule: AlertRule,
    out_dir: str | Path,
    command: str,
) -> dict[str, Any]:
    """Generate each (name, seed, options) cohort, score it at full cadence, and write the report."""
    from inference.dataset import cohort_series, make_cohort

    horizon = model.config.horizon_hours
    results = []
    for name, seed, options in cohorts:
        description, cohort = make_cohort(patients, hours, seed, **options)
        series = cohort_series(cohort, horizon)
        result = evaluate_cohort(name, description, series, score(model, series), rule)
        s = result.summary
        log.info("cohort=%s auroc_model=%.4f auroc_news2=%.4f", name, s["model"]["auroc"], s["news2"]["auroc"])
        results.append(result)
    return write_report(results, out_dir, model_version=model_version, horizon_hours=horizon, rule=rule, command=command)
