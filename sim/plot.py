"""A picture of a few simulated patients: what the readings look like against the truth.

`plot_examples` picks one patient per deterioration scenario and a few confounders, and draws
per patient HR, RR, SpO2 (shaded on oxygen), blood pressure and temperature: dots are delivered
readings (artefacts and all), the thin line is the true physiology, the red line the event
(rapid-response call), the dotted line its onset, and grey bands where ACVPU is not Alert.
Needs matplotlib (the `plots` extra).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sim.cohort import Cohort
from sim.physiology import DBP, HR, RR, SBP, SPO2, TEMP
from sim.scenarios import SCENARIO_NAMES

CONFOUNDER_EXAMPLES = ("copd", "chronic_tachycardia", "transient_fever", "recovering", "exercise")


def pick_examples(cohort: Cohort, count: int) -> list[int]:
    """Patient indices: one per scenario (event mid-stay preferred), then confounders, then stable."""
    chosen: list[int] = []
    events = {e.patient_id: e for e in cohort.events}
    span = cohort.config.hours * 3_600_000
    truth = cohort.truth
    for name in SCENARIO_NAMES:
        candidates = [i for i, p in enumerate(cohort.patients) if p.scenario == name]
        if name == "sepsis" and truth is not None:  # show the common, febrile presentation
            febrile = [i for i in candidates if truth.vitals[TEMP, i].max() >= 38.0]
            candidates = febrile or candidates
        # Prefer an event well inside the stay, so the course and the treatment both show.
        candidates.sort(key=lambda i: abs((events[cohort.patients[i].patient_id].event_ts_ms - cohort.config.start_ms) / span - 0.6))
        chosen.extend(candidates[:1])
    for name in CONFOUNDER_EXAMPLES:
        candidates = [i for i, p in enumerate(cohort.patients) if p.scenario == "stable" and name in p.confounders and i not in chosen]
        chosen.extend(candidates[:1])
    chosen.extend(i for i, p in enumerate(cohort.patients) if p.scenario == "stable" and not p.confounders and i not in chosen)
    return chosen[:count]


def plot_examples(cohort: Cohort, path: str | Path, count: int = 6, dpi: int = 80) -> Path:
    """Draw `count` example patients to a PNG at `path`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image  # matplotlib's own dependency

    if cohort.truth is None:
        raise ValueError("cohort has no truth arrays: generate it with sim.cohort.generate")
    rows = pick_examples(cohort, count)
    plt.rcParams["figure.dpi"] = dpi
    fig, axes = plt.subplots(len(rows), 5, figsize=(18, 2.0 * len(rows)), sharex=True, squeeze=False)
    col, truth, config = cohort.columns, cohort.truth, cohort.config
    hours = (truth.slot_ms(config) - config.start_ms) / 3_600_000
    events = {e.patient_id: e for e in cohort.events}
    for r, i in enumerate(rows):
        patient = cohort.patients[i]
        mine = (col.patient == i) & ~col.duplicate
        t = (col.ts_ms[mine] - config.start_ms) / 3_600_000
        ax_hr, ax_rr, ax_spo2, ax_bp, ax_temp = axes[r]
        _series(ax_hr, t, col.hr[mine], hours, truth.vitals[HR, i], "tab:red", "HR")
        _series(ax_rr, t, col.rr[mine], hours, truth.vitals[RR, i], "tab:blue", "RR")
        _series(ax_spo2, t, col.spo2[mine], hours, truth.vitals[SPO2, i], "tab:purple", "SpO2")
        _shade(ax_spo2, hours, truth.on_oxygen[i], "tab:cyan", "on O2")
        _series(ax_bp, t, col.sbp[mine], hours, truth.vitals[SBP, i], "tab:green", "SBP", ms=4.0)
        _series(ax_bp, t, col.dbp[mine], hours, truth.vitals[DBP, i], "tab:olive", "DBP", ms=4.0)
        _series(ax_temp, t, col.temp[mine], hours, truth.vitals[TEMP, i], "tab:orange", "temp")
        title = f"{patient.patient_id} {patient.scenario}" + (f" [{', '.join(patient.confounders)}]" if patient.confounders else "")
        ax_hr.set_title(title, fontsize=9, loc="left")
        ax_spo2.set_title(f"scale {patient.spo2_scale}, age {patient.age}", fontsize=8, loc="left")
        for ax in axes[r]:
            _shade(ax, hours, truth.acvpu[i] > 0, "0.6", "not Alert")
            if patient.patient_id in events:
                e = events[patient.patient_id]
                ax.axvline((e.event_ts_ms - config.start_ms) / 3_600_000, color="red", lw=1.2)
                if e.onset_ts_ms is not None:
                    ax.axvline((e.onset_ts_ms - config.start_ms) / 3_600_000, color="red", lw=0.8, ls=":")
            ax.tick_params(labelsize=7)
    for ax, label in zip(axes[0], ("HR /min", "RR /min", "SpO2 %", "BP mmHg", "temperature °C")):
        ax.set_title(label, fontsize=9, loc="right")
        ax.legend(fontsize=6, loc="upper left", markerscale=3)
    for ax in axes[-1]:
        ax.set_xlabel("hours since admission", fontsize=8)
    fig.suptitle(f"wardwatch sim: seed {config.seed}, {config.hours:g} h, dots = delivered readings, line = true physiology, "
                 "red = event (dotted: onset), grey = ACVPU not A", fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 0.98))
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.canvas.draw()
    image = Image.fromarray(np.asarray(fig.canvas.buffer_rgba())[..., :3])  # type: ignore[attr-defined]  # Agg canvas
    plt.close(fig)
    # A 128-colour palette keeps the PNG small enough to live in the repository.
    image.quantize(colors=128, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(out, optimize=True)
    return out


def _series(ax: object, t: np.ndarray, values: np.ndarray, hours: np.ndarray, truth: np.ndarray, colour: str, label: str,
            ms: float = 1.2) -> None:
    seen = ~np.isnan(values)
    ax.plot(hours, truth, color=colour, lw=0.6, alpha=0.6)  # type: ignore[attr-defined]
    ax.plot(t[seen], values[seen], ".", color=colour, ms=ms, label=label)  # type: ignore[attr-defined]


def _shade(ax: object, hours: np.ndarray, on: np.ndarray, colour: str, label: str) -> None:
    if on.any():
        ax.fill_between(hours, 0, 1, where=on, color=colour, alpha=0.15, lw=0,  # type: ignore[attr-defined]
                        transform=ax.get_xaxis_transform(), label=label)  # type: ignore[attr-defined]
