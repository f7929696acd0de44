"""Offline cohorts on disk: readings.jsonl, events.jsonl, summary.json and readings.npz.

- `readings.jsonl`: the reading contract, one per line, in delivery order (the order a
  consumer of `vitals.raw` would see them: time-ordered by arrival, so duplicates, store-and-
  forward bursts and held-back readings appear where they arrived).
- `events.jsonl`: one line per deterioration (`patient_id`, `event_ts_ms`, `scenario`, plus
  `onset_ts_ms` and `severity`), ordered by event time.
- `summary.json`: counts, prevalence, missingness per vital, scenario and confounder counts,
  delivery faults and the full configuration.
- `readings.npz`: the columnar copy (`sim.columns.Columns.load`) for fast training.
"""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from ingest.contract import VITALS
from runtime.records import to_json
from sim.cohort import Cohort, Event
from sim.confounders import CONFOUNDERS
from sim.scenarios import SCENARIO_NAMES


def event_record(e: Event) -> dict[str, object]:
    """An event as written to events.jsonl and published to `sim.events`."""
    return {"patient_id": e.patient_id, "event_ts_ms": e.event_ts_ms, "scenario": e.scenario,
            "onset_ts_ms": e.onset_ts_ms, "severity": e.severity}


def write_cohort(cohort: Cohort, out_dir: str | Path, *, columnar: bool = True) -> Path:
    """Write the cohort; the same seed gives byte-identical files."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "readings.jsonl", "wb") as f:
        batch: list[bytes] = []
        for reading in cohort.readings:
            batch.append(to_json(reading))
            if len(batch) >= 65536:
                f.write(b"\n".join(batch) + b"\n")
                batch.clear()
        if batch:
            f.write(b"\n".join(batch) + b"\n")
    with open(out / "events.jsonl", "wb") as f:
        for e in sorted(cohort.events, key=lambda e: (e.event_ts_ms, e.patient_id)):
            f.write(to_json(event_record(e)) + b"\n")
    (out / "summary.json").write_text(json.dumps(summarise(cohort), indent=2, sort_keys=True) + "\n")
    if columnar:
        cohort.columns.save(out / "readings.npz")
    return out


def summarise(cohort: Cohort) -> dict[str, Any]:
    """Counts, prevalence, missingness and delivery faults of a cohort (summary.json)."""
    config, col = cohort.config, cohort.columns
    n = len(cohort.patients)
    patient_days = n * config.hours / 24.0
    scenarios = Counter(p.scenario for p in cohort.patients)
    confounders = Counter(c for p in cohort.patients for c in p.confounders)
    summary: dict[str, Any] = {
        "patients": n,
        "hours": config.hours,
        "seed": config.seed,
        "patient_days": _r(patient_days),
        "readings": len(col),
        "duplicates": int(col.duplicate.sum()),
        "out_of_order": out_of_order(cohort),
        "artefact_readings": int((col.artefact > 0).sum()),
        "events": len(cohort.events),
        "prevalence": _r(len(cohort.events) / max(1, n)),
        "events_per_patient_day": _r(len(cohort.events) / max(patient_days, 1e-9)),
        "scenarios": {name: scenarios.get(name, 0) for name in ("stable", *SCENARIO_NAMES)},
        "confounders": {name: confounders.get(name, 0) for name in CONFOUNDERS},
        "config": _plain(dataclasses.asdict(config)),
    }
    if cohort.truth is not None:
        m = cohort.truth.measured
        missing, per_patient = {}, {}
        for v, name in enumerate(VITALS):
            scheduled = m.scheduled[v]
            absent = scheduled & np.isnan(m.values[v])
            missing[name] = _r(absent.sum() / max(int(scheduled.sum()), 1))
            counts = scheduled.sum(axis=1)
            fractions = absent.sum(axis=1)[counts > 0] / counts[counts > 0]
            per_patient[name] = {f"p{q}": _r(float(np.percentile(fractions, q))) for q in (10, 50, 90)} if fractions.size else {}
        slots = np.arange(m.down.shape[1])[None, :]
        summary["missingness"] = missing  # fraction of scheduled values not delivered
        summary["missingness_per_patient"] = per_patient
        summary["device_silent_fraction"] = _r(float(m.down.mean()))
        summary["store_and_forward_readings"] = int(((m.buffered_until != slots) & ~m.down).sum())
        summary["clock_skew_s"] = {"min": _r(float(m.skew_ms.min()) / 1000), "max": _r(float(m.skew_ms.max()) / 1000)}
    return summary


def out_of_order(cohort: Cohort) -> int:
    """Readings delivered after a reading with a later event time from the same device."""
    col = cohort.columns
    if len(col) == 0:
        return 0
    order = np.argsort(col.patient, kind="stable")  # per patient, still in delivery order
    patient = col.patient[order].astype(np.int64)
    ts = col.ts_ms[order] - col.ts_ms.min()
    keyed = patient * (int(ts.max()) + 1) + ts  # running max must not cross patients
    running = np.maximum.accumulate(keyed)
    return int((keyed[1:] < running[:-1]).sum())


def _r(x: float) -> float:
    return round(float(x), 4)


def _plain(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj
