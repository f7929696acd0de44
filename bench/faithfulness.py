"""Are the explanations faithful? Masking the top contribution against masking a random input.

`python -m bench.faithfulness [--patients 40] [--hours 8] [--seed 1001] [--checkpoint default]`

Held-out simulated patients (seed 1001 by default, one of the model's evaluation seeds, never
trained on) are scored by the scorer with explanations on every reading (`--explain all`). At
sampled readings (every 30th of each patient, and every 10th at or above risk 0.4), each input
group is then *masked over the patient's last 4 hours*: its values removed from those readings
(missing, as the model sees an unmeasured input), the patient's sequence re-run from the state
four hours back. A faithful explanation names an input whose removal moves the risk more than
removing a random one. This is a stronger test than the method's own counterfactual (the current
step, one input at a normal value): it asks whether the cheap per-reading method finds the input
that the model's whole recent history depends on.

For comparison it also scores, at the same readings, the alternative the issue suggests:
occlusion of the current step with the input masked as missing rather than set to normal.

Writes bench/results/faithfulness.json and the figure docs/explain_faithfulness.png. Runs in a
few minutes on one core; not part of any timed test.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from inference import explain
from inference.features import MAX_DELTA_HOURS, sequence_inputs
from inference.records import decode_risk
from inference.processor import ScorerProcessor, ScorerSettings
from inference.service import load_model
from ingest import decode_reading, encode_reading
from runtime.metrics import StreamMetrics, new_registry
from runtime.records import InRecord
from runtime.topics import RISK, VITALS

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
FIGURE = REPO / "docs" / "explain_faithfulness.png"
WINDOW_MS = 4 * 3_600_000
FIELDS = {"hr": ("hr",), "rr": ("rr",), "spo2": ("spo2",), "temp": ("temp",), "bp": ("sbp", "dbp"),
          "on_oxygen": ("on_oxygen",), "acvpu": ("acvpu",)}
# "normal": the values a measured input is set to (inference.explain.REFERENCE, as reading fields).
NORMAL = {"hr": 75.0, "rr": 16.0, "spo2": 97.0, "temp": 37.0, "sbp": 125.0, "dbp": 75.0, "on_oxygen": False, "acvpu": "A"}
MASKINGS = ("missing", "normal")


def sequences(cohort) -> dict[str, list]:  # noqa: ANN001
    """Each patient's readings as the scorer applies them: arrival order, late ones dropped."""
    out: dict[str, list] = {}
    for row in cohort.readings:
        r = decode_reading(json.dumps(row).encode())
        seq = out.setdefault(r.patient_id, [])
        if not seq or r.ts_ms >= seq[-1].ts_ms:
            seq.append(r)
    return out


def run(step, readings: list) -> tuple[np.ndarray, np.ndarray]:  # noqa: ANN001
    """States before each reading [T, S] and risks [T], one patient."""
    x = sequence_inputs(readings)
    state = step.initial_state(1)
    states, risks = np.empty((len(readings), step.state_size), np.float32), np.empty(len(readings))
    for t in range(len(readings)):
        states[t] = state[0]
        state, r = step.step(state, x.values[t : t + 1], x.mask[t : t + 1], x.delta_hours[t : t + 1],
                             x.last_values[t : t + 1], x.last_mask[t : t + 1])
        risks[t] = r[0]
    return states, risks


def masked_window(step, readings: list, states: np.ndarray, t: int, how: str) -> np.ndarray:  # noqa: ANN001
    """Risk at reading t with each group masked in the readings of the last 4 h: [groups].

    `how`: "missing" removes the values (the model sees the input unmeasured); "normal" sets each
    measured value to the normal one (the input measured, and normal)."""
    start = next(i for i in range(t + 1) if readings[i].ts_ms >= readings[t].ts_ms - WINDOW_MS)
    variants = []
    for names in FIELDS.values():
        def masked(r, names=names):  # noqa: ANN001, ANN202
            return replace(r, **{n: (None if how == "missing" or getattr(r, n) is None else NORMAL[n]) for n in names})
        changed = [masked(r) if i >= start else r for i, r in enumerate(readings[: t + 1])]
        variants.append(sequence_inputs(changed))
    stack = [np.stack([getattr(v, f)[start : t + 1] for v in variants]) for f in ("values", "mask", "delta_hours", "last_values", "last_mask")]
    state = np.repeat(states[start][None], len(variants), axis=0)
    for k in range(t + 1 - start):
        state, risk = step.step(state, *(a[:, k] for a in stack))
    return risk.astype(np.float64)


def current_step_missing(step, readings: list, states: np.ndarray, t: int, risk: float) -> np.ndarray:  # noqa: ANN001
    """The alternative: each group's contribution with the current step's input masked as missing."""
    x = sequence_inputs(readings[: t + 1])
    rows = []
    for _, cols in explain.GROUPS:
        v, m, d, lv, lm = (a[t].copy() for a in (x.values, x.mask, x.delta_hours, x.last_values, x.last_mask))
        for c in cols:
            v[c] = m[c] = lv[c] = lm[c] = 0.0
            d[c] = MAX_DELTA_HOURS
        rows.append((v, m, d, lv, lm))
    arrays = [np.stack([r[i] for r in rows]).astype(np.float32) for i in range(5)]
    _, occluded = step.step(np.repeat(states[t][None], len(rows), axis=0), *arrays)
    return risk - occluded.astype(np.float64)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.faithfulness", description=__doc__)
    parser.add_argument("--patients", type=int, default=40)
    parser.add_argument("--hours", type=float, default=8.0)
    parser.add_argument("--seed", type=int, default=1001)
    parser.add_argument("--every", type=int, default=30, help="sample every n-th reading (and every 10th at risk >= 0.4)")
    parser.add_argument("--checkpoint", default="default")
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--figure", type=Path, default=FIGURE)
    args = parser.parse_args(argv)
    from sim.cohort import CohortConfig, generate

    started = time.monotonic()
    step, version = load_model(args.checkpoint)
    cohort = generate(CohortConfig(patients=args.patients, hours=args.hours, seed=args.seed))
    seqs = sequences(cohort)
    # The scorer's own explanations, as written on the risk topic.
    scorer = ScorerProcessor(step, version, StreamMetrics(new_registry(), "score"), ScorerSettings(explain="all"))
    items = [InRecord(VITALS, 0, i, r.patient_id.encode(), encode_reading(r), 0)
             for i, r in enumerate(sorted((r for s in seqs.values() for r in s), key=lambda r: r.ts_ms))]
    tops = {}
    for i in range(0, len(items), 2000):
        for o in scorer.process(items[i : i + 2000]):
            if o.topic == RISK:
                rec = decode_risk(o.value)
                tops[(rec.patient_id, rec.seq)] = rec.explain.top if rec.explain else ()
    rng = np.random.default_rng(args.seed)
    samples = []
    for pid, readings in seqs.items():
        states, risks = run(step, readings)
        for t in range(len(readings)):
            if readings[t].ts_ms - readings[0].ts_ms < WINDOW_MS or not (t % args.every == 0 or (risks[t] >= 0.4 and t % 10 == 0)):
                continue
            top = tops.get((pid, readings[t].seq), ())
            if not top:
                continue
            windows = {how: np.abs(risks[t] - masked_window(step, readings, states, t, how)).tolist() for how in MASKINGS}
            alt = current_step_missing(step, readings, states, t, risks[t])
            g = explain.GROUP_NAMES.index(top[0][0])
            a = int(np.argmax(np.abs(alt)))
            samples.append({"risk": float(risks[t]), "top": g, "alt": a, "windows": windows,
                            "random": int(rng.integers(explain.N_GROUPS))})
    result = {f"masked_{how}": summarise([{**s, "window": s["windows"][how]} for s in samples]) for how in MASKINGS}
    result.update({
        "command": "python -m bench.faithfulness" + "".join(f" {a}" for a in (sys.argv[1:] if argv is None else argv)),
        "when": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M:%S"), "model": version,
        "cohort": {"patients": args.patients, "hours": args.hours, "seed": args.seed}, "window_h": WINDOW_MS / 3_600_000,
        "wall_s": round(time.monotonic() - started, 1),
    })
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / "faithfulness.json").write_text(json.dumps(result, indent=2) + "\n")
    figure(result, args.figure)
    print(json.dumps(result, indent=2))
    return 0


def summarise(samples: list[dict]) -> dict:
    """Per stratum (all sampled, risk >= 0.4): mean |risk change| masking the top vs a random input."""
    out: dict = {}
    for name, keep in (("all", lambda s: True), ("risk_at_least_0.4", lambda s: s["risk"] >= 0.4)):
        chosen = [s for s in samples if keep(s)]
        if not chosen:
            continue
        w = np.array([s["window"] for s in chosen])
        top = w[np.arange(len(w)), [s["top"] for s in chosen]]
        alt = w[np.arange(len(w)), [s["alt"] for s in chosen]]
        rand = w[np.arange(len(w)), [s["random"] for s in chosen]]
        others = (w.sum(axis=1) - top) / (w.shape[1] - 1)
        best = w.argmax(axis=1)
        out[name] = {
            "readings": len(chosen),
            "mean_change_masking_top": round(float(top.mean()), 4),
            "mean_change_masking_random": round(float(rand.mean()), 4),
            "mean_change_masking_other_inputs": round(float(others.mean()), 4),
            "share_top_beats_random": round(float((top > rand).mean()), 3),
            "share_top_is_the_most_influential": round(float((np.array([s["top"] for s in chosen]) == best).mean()), 3),
            "alternative_current_step_missing": {
                "mean_change_masking_top": round(float(alt.mean()), 4),
                "share_top_beats_random": round(float((alt > rand).mean()), 3),
                "share_top_is_the_most_influential": round(float((np.array([s["alt"] for s in chosen]) == best).mean()), 3),
            },
        }
    return out


def figure(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(MASKINGS), figsize=(11, 3.8), dpi=100, sharey=True)
    for ax, how in zip(axes, MASKINGS):
        _panel(ax, result[f"masked_{how}"], how)
    axes[0].set_ylabel("mean |risk change|")
    axes[0].legend(fontsize=8, frameon=False, loc="upper left")
    fig.suptitle(f"Masking one input over the last 4 h, held-out simulated patients (seed {result['cohort']['seed']}, "
                 f"model {result['model']})", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def _panel(ax, result: dict, how: str) -> None:  # noqa: ANN001
    strata = [k for k in ("all", "risk_at_least_0.4") if k in result]
    width = 0.26
    xs = np.arange(len(strata))
    bars = (("top input (wardwatch: current step at normal)", lambda r: r["mean_change_masking_top"], "#1d5fa8"),
            ("top input (alternative: current step masked)", lambda r: r["alternative_current_step_missing"]["mean_change_masking_top"], "#7fa7d6"),
            ("a random input", lambda r: r["mean_change_masking_random"], "#b0b7c0"))
    for i, (label, get, colour) in enumerate(bars):
        values = [get(result[s]) for s in strata]
        ax.bar(xs + (i - 1) * width, values, width, label=label, color=colour)
        for x, v in zip(xs + (i - 1) * width, values):
            ax.text(x, v, f"{v:.3f}", ha="center", va="bottom", fontsize=8)
    ax.set_xticks(xs, [f"{s.replace('_', ' ')}\n({result[s]['readings']} readings; top beats random "
                       f"{result[s]['share_top_beats_random']:.0%})" for s in strata], fontsize=8)
    ax.set_title("input set to " + ("missing (removed)" if how == "missing" else "a normal value"), fontsize=9)


if __name__ == "__main__":
    sys.exit(main())
