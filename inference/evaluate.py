"""Evaluation of the model: its risk against NEWS2, per reading and per stay, side by side.

Per reading: AUROC and AUPRC of the risk (label: an event within the horizon), with 95%
intervals from resampling patients; calibration; per stay, in-hospital death where a cohort
has outcomes. Model metrics only: what the alerts make of the risk (alerts per patient-day,
event sensitivity, lead time) is measured by running the real alert engine over the risk
records, which needs more than this stage (`wardwatch/evaluation.py`). The measures
themselves (AUROC, AUPRC, bootstrap intervals, calibration) are `inference/stats.py`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from inference.dataset import PatientSeries, pad
from inference.features import MS_PER_HOUR
from inference.model import RiskModel
from inference.stats import PatientBootstrap, auprc, auroc, calibration, pr_curve, roc_curve

log = logging.getLogger(__name__)

# -- scoring and one cohort ----------------------------------------------------------------
@torch.no_grad()
def score(model: RiskModel, series: Sequence[PatientSeries], batch: int = 256) -> list[np.ndarray]:
    """The model's risk for every reading of every patient (whole sequences, as streamed)."""
    model.eval()
    out: list[np.ndarray] = [np.zeros(0, dtype=np.float32)] * len(series)
    order = sorted(range(len(series)), key=lambda i: len(series[i]))  # similar lengths pad little
    for start in range(0, len(order), batch):
        part = [series[i] for i in order[start : start + batch]]
        p = pad(part)
        logits, _ = model.forward_sequence(p.values, p.mask, p.delta, p.last_values, p.last_mask)
        risk = torch.sigmoid(logits).numpy()
        for row, (i, s) in enumerate(zip(order[start : start + batch], part)):
            out[i] = risk[row, : len(s)]
    return out


@dataclass
class CohortResult:
    name: str
    description: dict[str, Any]
    series: list[PatientSeries]
    risk: list[np.ndarray]
    summary: dict[str, Any] = field(default_factory=dict)


def evaluate_cohort(name: str, description: dict[str, Any], series: list[PatientSeries], risk: list[np.ndarray]) -> CohortResult:
    """The model metrics for one cohort: model and NEWS2 side by side."""
    labels = np.concatenate([s.labels for s in series])
    model_scores = np.concatenate(risk)
    news2_scores = np.concatenate([s.news2 for s in series]).astype(np.float64)
    summary = {
        "cohort": description,
        "patients": len(series),
        "readings": int(labels.size),
        "positive_readings": int(labels.sum()),
        "prevalence": float(labels.mean()),
        "events": sum(s.event_ts_ms is not None for s in series),
        "model": {"auroc": auroc(labels, model_scores), "auprc": auprc(labels, model_scores)},
        "news2": {"auroc": auroc(labels, news2_scores), "auprc": auprc(labels, news2_scores)},
    }
    return CohortResult(name, description, series, risk, summary)


# -- report --------------------------------------------------------------------------------
def _fmt(x: float, digits: int = 3) -> str:
    return "n/a" if x != x else f"{x:.{digits}f}"


def markdown(report: dict[str, Any], sections: Sequence[str] = ()) -> str:
    """The human-readable report; `sections` (Markdown) go after the model's table."""
    lines = [
        "# Model vs NEWS2 on held-out cohorts",
        "",
        f"Model `{report['model_version']}`; horizon {report['horizon_hours']:g} h. Command: `{report['command']}`",
        "",
        "| cohort | patients | events | prevalence | AUROC model | AUROC NEWS2 | AUPRC model | AUPRC NEWS2 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, c in report["cohorts"].items():
        m, n = c["model"], c["news2"]
        lines.append(
            f"| {name} | {c['patients']} | {c['events']} | {_fmt(c['prevalence'], 4)} | **{_fmt(m['auroc'])}** | {_fmt(n['auroc'])} "
            f"| **{_fmt(m['auprc'])}** | {_fmt(n['auprc'])} |"
        )
    lines += ["", *sections, "Cohorts:", ""]
    lines += [f"- `{name}`: {json.dumps(c['cohort'], sort_keys=True)}" for name, c in report["cohorts"].items()]
    lines += ["", "Plots: " + ", ".join(f"[{p}]({p})" for p in report["plots"]), ""]
    return "\n".join(lines)


def plots(results: Sequence[CohortResult], out_dir: Path) -> list[str]:
    """ROC, PR and calibration PNGs (small) into `out_dir`; returns their names."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = []
    figures = {name: plt.subplots(figsize=(4.2, 3.6), dpi=72) for name in ("roc", "pr", "calibration")}
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
    axes = {
        "roc": ("false positive rate", "true positive rate", "ROC per reading (solid model, dashed NEWS2)"),
        "pr": ("recall", "precision", "Precision-recall per reading"),
        "calibration": ("predicted risk", "observed event rate", "Calibration (model)"),
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


def write_report(
    results: Sequence[CohortResult], out_dir: str | Path, *, model_version: str, horizon_hours: float, command: str, sections: Sequence[str] = ()
) -> dict[str, Any]:
    """Write report.json (each cohort's summary), report.md (with `sections`) and the PNG plots; returns the report."""
    out = _report_dir(out_dir)
    report = _report_head(model_version, horizon_hours, command) | {
        "cohorts": {r.name: r.summary for r in results},
        "plots": plots(results, out),
    }
    return _written(out, report, markdown(report, sections))


def _report_dir(out_dir: str | Path) -> Path:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return out


def _report_head(model_version: str, horizon_hours: float, command: str) -> dict[str, Any]:
    return {"model_version": model_version, "horizon_hours": horizon_hours, "command": command}


def _written(out: Path, report: dict[str, Any], text: str) -> dict[str, Any]:
    """Write report.json and report.md (`text`) into `out`; returns the report."""
    (out / "report.json").write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    (out / "report.md").write_text(text)
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


def simulated_cohort(model: RiskModel, name: str, seed: int, options: dict[str, object], *, patients: int, hours: float) -> tuple[CohortResult, object]:
    """Generate one held-out simulator cohort, score it at full cadence and measure the model;
    returns the result and the cohort (a `sim.cohort.Cohort`)."""
    from inference.dataset import cohort_series, make_cohort

    description, cohort = make_cohort(patients, hours, seed, **options)
    series = cohort_series(cohort, model.config.horizon_hours)
    result = evaluate_cohort(name, description, series, score(model, series))
    s = result.summary
    log.info("cohort=%s auroc_model=%.4f auroc_news2=%.4f", name, s["model"]["auroc"], s["news2"]["auroc"])
    return result, cohort


def _public(m: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in m.items() if not k.startswith("_")}


# -- cohort directories: real or simulated ---------------------------------------------------
def evaluate_readings(name: str, series: list[PatientSeries], risk: list[np.ndarray], replicates: int = 200) -> dict[str, Any]:
    """Per-reading discrimination with intervals and calibration for one cohort."""
    result = evaluate_cohort(name, {}, series, risk).summary
    labels = np.concatenate([s.labels for s in series])
    patient = np.concatenate([np.full(len(s), i) for i, s in enumerate(series)])
    boot = PatientBootstrap(patient, labels, replicates)
    model = boot.metrics(np.concatenate(risk))
    news2 = boot.metrics(np.concatenate([s.news2 for s in series]).astype(np.float64))
    result["model"].update(_public(model))
    result["news2"].update(_public(news2))
    result["model_minus_news2"] = boot.difference(model, news2)
    result["calibration"] = calibration(labels, np.concatenate(risk))
    result["by_hours_since_admission"] = by_hours_since_admission(series, risk, replicates)
    return result


# Windows of hours since a stay's first reading. A per-reading AUROC over whole stays also ranks
# readings by where in a stay they fall: where a cohort ties events to stay length (2019 stays end
# at their sepsis event; docs/real-data.md), "hours since admission" alone discriminates. Within a
# window that part of the signal is held roughly fixed.
HOURS_WINDOWS: tuple[tuple[float, float], ...] = ((0.0, 6.0), (6.0, 48.0), (48.0, float("inf")))


def by_hours_since_admission(series: list[PatientSeries], risk: list[np.ndarray], replicates: int) -> list[dict[str, Any]]:
    """Model and NEWS2 AUROC on the readings within each of HOURS_WINDOWS, with intervals."""
    hours = np.concatenate([(s.inputs.ts_ms - s.inputs.ts_ms[0]) / MS_PER_HOUR for s in series])
    labels = np.concatenate([s.labels for s in series])
    patient = np.concatenate([np.full(len(s), i) for i, s in enumerate(series)])
    model_all, news2_all = np.concatenate(risk), np.concatenate([s.news2 for s in series]).astype(np.float64)
    out: list[dict[str, Any]] = []
    for lo, hi in HOURS_WINDOWS:
        inside = (hours >= lo) & (hours < hi)
        y = labels[inside]
        window: dict[str, Any] = {"from_hours": lo, "to_hours": None if np.isinf(hi) else hi, "readings": int(inside.sum()),
                                  "positive": int(y.sum()), "patients": int(np.unique(patient[inside]).size)}
        if 0 < y.sum() < y.size:
            boot = PatientBootstrap(np.unique(patient[inside], return_inverse=True)[1], y, replicates)
            model, news2 = boot.metrics(model_all[inside]), boot.metrics(news2_all[inside])
            window |= {"model_auroc": model["auroc"], "model_auroc_ci": model["auroc_ci"],
                       "news2_auroc": news2["auroc"], "news2_auroc_ci": news2["auroc_ci"], **boot.difference(model, news2)}
        out.append(window)
    return out


def evaluate_outcomes(series: list[PatientSeries], risk: list[np.ndarray], outcomes: dict[str, dict[str, Any]], replicates: int = 1000) -> dict[str, Any]:
    """In-hospital death from the last risk of each stay, against max NEWS2, last NEWS2, SAPS-I and SOFA."""
    kept = [(s, r) for s, r in zip(series, risk) if outcomes.get(s.patient_id, {}).get("in_hospital_death") in (0, 1)]
    labels = np.array([outcomes[s.patient_id]["in_hospital_death"] for s, _ in kept], dtype=np.float64)
    boot = PatientBootstrap(np.arange(len(kept)), labels, replicates)
    last = np.array([r[-1] for _, r in kept], dtype=np.float64)
    scores = {
        "model_last_risk": last,
        "model_max_risk": np.array([r.max() for _, r in kept], dtype=np.float64),
        "news2_max": np.array([s.news2.max() for s, _ in kept], dtype=np.float64),
        "news2_last": np.array([s.news2[-1] for s, _ in kept], dtype=np.float64),
    }
    out: dict[str, Any] = {"patients": len(kept), "deaths": int(labels.sum()), "mortality": float(labels.mean())}
    measured = {name: boot.metrics(x) for name, x in scores.items()}
    for column in ("saps_i", "sofa"):
        have = np.array([outcomes[s.patient_id].get(column) is not None for s, _ in kept])
        if have.all():
            measured[column] = boot.metrics(np.array([outcomes[s.patient_id][column] for s, _ in kept], dtype=np.float64))
        elif have.any():  # scored only where the outcomes file has a value
            sub = PatientBootstrap(np.arange(int(have.sum())), labels[have], replicates)
            values = np.array([outcomes[s.patient_id][column] for (s, _), h in zip(kept, have) if h], dtype=np.float64)
            measured[column] = sub.metrics(values) | {"patients": int(have.sum())}
    out["scores"] = {k: _public(v) for k, v in measured.items()}
    out["model_last_minus_news2_max"] = boot.difference(measured["model_last_risk"], measured["news2_max"])
    out["calibration_last_risk"] = calibration(labels, last)  # the risk is for the model's task, not death: expect a misfit
    return out


def evaluate_cohort_dirs(
    model: RiskModel,
    model_version: str,
    paths: Sequence[str],
    *,
    split: str,
    split_rule: dict[str, Any] | None,
    out_dir: str | Path,
    command: str,
    replicates: int = 200,
    alerts: Any = None,
) -> dict[str, Any]:
    """Score cohort directories (their `split` patients under the checkpoint's split rule) and write the report.

    `alerts`, where given, measures what the alert rules make of the same patients: an object with
    `measure(path, patient_ids)` (a list of results with `rules` and `to_dict()`) and `markdown(per_cohort)`
    (the report's section). Alerts need the alert engine, a stage this one does not import: the
    application passes it in (wardwatch/evaluation.py).
    """
    from inference.dataset import load_cohort_dir, split_of
    from inference.train import source_name

    horizon = model.config.horizon_hours
    cohorts: dict[str, Any] = {}
    figures: list[tuple[str, np.ndarray, np.ndarray, np.ndarray]] = []
    measured: dict[str, Any] = {}
    for path in paths:
        loaded = load_cohort_dir(path, horizon)
        source = source_name(path)
        series = loaded.series
        if split != "all":
            assert split_rule is not None
            series = [s for s in series if split_of(source, s.patient_id, split_rule["salt"], split_rule["val_fraction"], split_rule["test_fraction"]) == split]
        if not series:
            raise ValueError(f"{path}: no patients in split {split!r}")
        risk = score(model, series)
        name = f"{Path(path).name} ({split})"
        entry: dict[str, Any] = {"path_name": Path(path).name, "source": source, "split": split, "patients": len(series),
                                 "readings": int(sum(map(len, series))), "imported": bool(loaded.summary.get("imported"))}
        labels = np.concatenate([s.labels for s in series])
        if 0 < labels.sum() < labels.size:
            entry |= evaluate_readings(name, series, risk, replicates)
            entry.pop("cohort", None)
            figures.append((name, labels, np.concatenate(risk), np.concatenate([s.news2 for s in series]).astype(np.float64)))
        if loaded.outcomes:
            entry["outcomes"] = evaluate_outcomes(series, risk, loaded.outcomes, max(replicates, 200))
        if alerts is not None:
            measured[name] = alerts.measure(path, [s.patient_id for s in series])
            entry["alerts"] = {q.rules: q.to_dict() for q in measured[name]}
        log.info("cohort=%s patients=%d", name, len(series))
        cohorts[name] = entry
    out = _report_dir(out_dir)
    report = _report_head(model_version, horizon, command) | {
        "split_rule": split_rule,
        "bootstrap_replicates": replicates,
        "cohorts": cohorts,
        "plots": cohort_plots(figures, cohorts, out),
    }
    sections = [alerts.markdown(measured)] if alerts is not None and measured else []
    return _written(out, report, cohort_markdown(report, sections))


def _interval(m: dict[str, Any], key: str) -> str:
    lo, hi = m[f"{key}_ci"]
    return f"{_fmt(m[key])} [{_fmt(lo)}, {_fmt(hi)}]"


def cohort_markdown(report: dict[str, Any], sections: Sequence[str] = ()) -> str:
    """The report on cohort directories, for a clinician: every number with its 95% interval;
    `sections` (Markdown) go before the plots."""
    lines = [
        "# Model vs NEWS2 on cohort directories",
        "",
        f"Model `{report['model_version']}`; horizon {report['horizon_hours']:g} h. Command: `{report['command']}`",
        "",
        f"95% intervals: {report['bootstrap_replicates']} bootstrap replicates resampling patients. Split rule: "
        f"`{json.dumps(report['split_rule'], sort_keys=True)}`.",
        "",
    ]
    events = {k: c for k, c in report["cohorts"].items() if "model" in c}
    if events:
        lines += [
            "## Per reading: event within the horizon",
            "",
            "| cohort | patients | events | readings | prevalence | AUROC model | AUROC NEWS2 | model − NEWS2 | AUPRC model | AUPRC NEWS2 "
            "| Brier (reference) |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for name, c in events.items():
            m, n, d, cal = c["model"], c["news2"], c["model_minus_news2"], c["calibration"]
            lines.append(
                f"| {name} | {c['patients']} | {c['events']} | {c['readings']} | {_fmt(c['prevalence'], 4)} "
                f"| **{_interval(m, 'auroc')}** | {_interval(n, 'auroc')} "
                f"| {d['auroc_difference']:+.3f} [{d['auroc_difference_ci'][0]:+.3f}, {d['auroc_difference_ci'][1]:+.3f}] "
                f"| {_interval(m, 'auprc')} | {_interval(n, 'auprc')} "
                f"| {_fmt(cal['brier'], 4)} ({_fmt(cal['brier_reference'], 4)}) |"
            )
        lines += ["", "### Per reading, by hours since the stay's first reading", "",
                  "Where a cohort ties events to stay length, where in a stay a reading falls discriminates by itself; "
                  "within each window that part is held roughly fixed.", "",
                  "| cohort | hours | patients | readings | positive | AUROC model | AUROC NEWS2 | model − NEWS2 |",
                  "|---|---|---|---|---|---|---|---|"]
        for name, c in events.items():
            for w in c.get("by_hours_since_admission", []):
                span = f"{w['from_hours']:g}–{w['to_hours']:g}" if w["to_hours"] is not None else f"≥ {w['from_hours']:g}"
                if "model_auroc" not in w:
                    lines.append(f"| {name} | {span} | {w['patients']} | {w['readings']} | {w['positive']} | – | – | – |")
                    continue
                lines.append(
                    f"| {name} | {span} | {w['patients']} | {w['readings']} | {w['positive']} | {_interval(w, 'model_auroc')} "
                    f"| {_interval(w, 'news2_auroc')} | {w['auroc_difference']:+.3f} "
                    f"[{w['auroc_difference_ci'][0]:+.3f}, {w['auroc_difference_ci'][1]:+.3f}] |"
                )
        lines += [""]
    outcomes = {k: c["outcomes"] for k, c in report["cohorts"].items() if "outcomes" in c}
    if outcomes:
        lines += ["## Per stay: in-hospital death", "",
                  "| cohort | stays | deaths | score | AUROC [95% CI] | AUPRC [95% CI] |", "|---|---|---|---|---|---|"]
        for name, o in outcomes.items():
            for score_name, m in o["scores"].items():
                lines.append(f"| {name} | {m.get('patients', o['patients'])} | {o['deaths']} | {score_name} | {_interval(m, 'auroc')} | {_interval(m, 'auprc')} |")
            d = o["model_last_minus_news2_max"]
            lines.append(f"| {name} | | | model last risk − max NEWS2 | {d['auroc_difference']:+.3f} "
                         f"[{d['auroc_difference_ci'][0]:+.3f}, {d['auroc_difference_ci'][1]:+.3f}] | |")
        lines += ["", "SAPS-I and SOFA are the severity scores of the outcomes file (they use laboratory values too; "
                  "stays without one are left out of its row); the model and NEWS2 see vital signs only. The model's risk is "
                  "calibrated for its own task, not for death.", ""]
    lines += [*sections, "Plots: " + ", ".join(f"[{p}]({p})" for p in report["plots"]), ""]
    return "\n".join(lines)


def cohort_plots(figures: Sequence[tuple[str, np.ndarray, np.ndarray, np.ndarray]], cohorts: dict[str, Any], out_dir: Path) -> list[str]:
    """ROC (model solid, NEWS2 dashed) and reliability PNGs for the per-reading cohorts."""
    if not figures:
        return []
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    roc_fig, roc_ax = plt.subplots(figsize=(4.2, 3.6), dpi=72)
    cal_fig, cal_ax = plt.subplots(figsize=(4.2, 3.6), dpi=72)
    for i, (name, labels, model_scores, news2_scores) in enumerate(figures):
        for scores, style, who in ((model_scores, "-", "model"), (news2_scores, "--", "NEWS2")):
            fpr, tpr = roc_curve(labels, scores)
            roc_ax.plot(fpr, tpr, style, color=f"C{i}", lw=1.2, label=f"{who} {name}")
        table = cohorts[name]["calibration"]["reliability"]
        cal_ax.plot([b["predicted"] for b in table], [b["observed"] for b in table], "o-", color=f"C{i}", ms=3, label=name)
    top = max(max(b["predicted"], b["observed"]) for name, *_ in figures for b in cohorts[name]["calibration"]["reliability"])
    roc_ax.plot([0, 1], [0, 1], ":", color="grey", lw=0.8)
    cal_ax.plot([0, top], [0, top], ":", color="grey", lw=0.8)
    roc_ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC per reading (solid model, dashed NEWS2)")
    cal_ax.set(xlabel="predicted risk (decile mean)", ylabel="observed event rate", title="Reliability (model)")
    names = []
    for fig, ax, file in ((roc_fig, roc_ax, "roc.png"), (cal_fig, cal_ax, "reliability.png")):
        ax.title.set_fontsize(9)
        ax.legend(fontsize=6)
        fig.tight_layout()
        fig.savefig(out_dir / file)
        plt.close(fig)
        names.append(file)
    return names
