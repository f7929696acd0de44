"""Offline cohorts on disk: readings.jsonl, events.jsonl and summary.json in one directory."""

from __future__ import annotations

import json
from pathlib import Path

from runtime.records import to_json
from sim.cohort import Cohort


def write_cohort(cohort: Cohort, out_dir: str | Path) -> Path:
    """Write the cohort; the same seed gives byte-identical files."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "readings.jsonl", "wb") as f:
        for reading in cohort.readings:
            f.write(to_json(reading) + b"\n")
    with open(out / "events.jsonl", "wb") as f:
        for e in sorted(cohort.events, key=lambda e: (e.event_ts_ms, e.patient_id)):
            f.write(to_json({"patient_id": e.patient_id, "event_ts_ms": e.event_ts_ms, "scenario": e.scenario}) + b"\n")
    summary = {
        "patients": len(cohort.patients),
        "hours": cohort.config.hours,
        "seed": cohort.config.seed,
        "readings": len(cohort.readings),
        "events": len(cohort.events),
        "prevalence": len(cohort.events) / max(1, len(cohort.patients)),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    return out
