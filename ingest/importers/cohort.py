"""The importers' common core: collect values per (patient, time), check them, write a cohort directory.

Every importer turns its source rows into calls on `CohortBuilder`:

- `value(patient, ts_ms, field, raw, where, unit=None)` for one measurement. The value is
  parsed, converted to the contract's unit, range-checked on the unconverted-rounding value
  (as `ingest.validate` does) and kept, or dropped with a reason. Dropped values are
  counted by `<reason>.<field>` and never clamped.
- `problem(where, reason, detail)` for a row or file that cannot be read at all.
- `event(...)`/`outcome(...)` for labels.

`write` produces the same directory the simulator writes (`sim/output.py`):
`readings.jsonl`, `events.jsonl`, `summary.json`, `readings.npz` (the columns of
`sim.columns.Columns`), plus `patients.json` (patient ids in the npz's `patient` index order)
and, where the source has them, `outcomes.jsonl`.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np

from ingest.contract import ACVPU_LEVELS, RANGES, VITALS
from ingest.units import to_contract_unit
from ingest.validate import Rejected

# The simulator's start of time, so imported and simulated cohorts share an epoch.
DEFAULT_START_MS: Final = 1_767_225_600_000
MS_PER_HOUR: Final = 3_600_000
MAX_PROBLEM_LINES: Final = 200  # problems kept verbatim in summary.json; all are counted
ROOM_AIR_FIO2: Final = 0.21

# Fields an importer may set: the contract's vitals, plus inputs that become contract fields.
EXTRA_FIELDS: Final = ("fio2", "on_oxygen", "mech_vent", "gcs", "acvpu")


class SourceError(Exception):
    """A source that cannot be imported at all (missing, or not one file in it readable): one line."""


@dataclass
class Slot:
    """What is known of one patient at one time."""

    vitals: dict[str, float] = field(default_factory=dict)
    on_oxygen: bool | None = None
    acvpu: str | None = None
    secondary: set[str] = field(default_factory=set)  # vitals that came from a second-choice source


def parse_number(raw: object) -> float | None:
    """A finite float, or None for an empty/NaN cell; ValueError for text."""
    if raw is None:
        return None
    if isinstance(raw, (int, float)):
        x = float(raw)
    else:
        text = str(raw).strip()
        if text == "" or text.lower() in ("nan", "na", "null"):
            return None
        x = float(text)  # ValueError names the text
    if math.isnan(x):
        return None
    if math.isinf(x):
        raise ValueError(f"{raw!r} is not finite")
    return x


def gcs_to_acvpu(gcs: float) -> str:
    """Glasgow Coma Scale -> ACVPU (an approximation; documented in docs/real-data.md).

    15 alert; 13-14 new confusion; 9-12 responds to voice; 4-8 to pain; 3 unresponsive.
    """
    if gcs >= 15:
        return "A"
    if gcs >= 13:
        return "C"
    if gcs >= 9:
        return "V"
    if gcs >= 4:
        return "P"
    return "U"


class CohortBuilder:
    """Collects an imported cohort; `write` lays it out like a simulated one."""

    def __init__(self, source: str, *, start_ms: int = DEFAULT_START_MS, options: dict[str, Any] | None = None) -> None:
        self.source = source
        self.start_ms = start_ms
        self.options = options or {}
        self.slots: dict[str, dict[int, Slot]] = {}
        self.events: dict[str, dict[str, Any]] = {}
        self.outcomes: dict[str, dict[str, Any]] = {}
        self.dropped: Counter[str] = Counter()  # values dropped, by "<reason>.<field>"
        self.rejected: Counter[str] = Counter()  # rows or files not read, by reason
        self.converted: Counter[str] = Counter()  # values converted from another unit, by "<from>.<field>"
        self.problems: list[str] = []
        self.problem_count = 0
        self.files_read = 0
        self.files_rejected = 0
        self.rows_read = 0

    # -- reporting -----------------------------------------------------------------------
    def problem(self, where: str, reason: str, detail: str) -> None:
        """A row or file that could not be (fully) read: counted, and the first ones kept verbatim."""
        self.problem_count += 1
        if len(self.problems) < MAX_PROBLEM_LINES:
            self.problems.append(f"{where}: {reason}: {detail}")

    def reject_row(self, where: str, reason: str, detail: str) -> None:
        self.rejected[reason] += 1
        self.problem(where, reason, detail)

    def reject_file(self, where: str, reason: str, detail: str) -> None:
        self.files_rejected += 1
        self.rejected[f"file_{reason}"] += 1
        self.problem(where, reason, detail)

    def drop(self, where: str, reason: str, name: str, detail: str, *, report: bool = False) -> None:
        self.dropped[f"{reason}.{name}"] += 1
        if report:
            self.problem(where, reason, f"{name}: {detail}")

    # -- values --------------------------------------------------------------------------
    def slot(self, patient: str, ts_ms: int) -> Slot:
        return self.slots.setdefault(patient, {}).setdefault(ts_ms, Slot())

    def value(self, patient: str, ts_ms: int, name: str, raw: object, where: str, *, unit: str | None = None, prefer: bool = True) -> bool:
        """Record one measurement; returns whether it was kept.

        `name` is a contract vital or one of EXTRA_FIELDS; `unit` a UCUM code to convert from.
        With `prefer=False` the value only fills a vital the slot does not have yet (a
        second-choice source, e.g. non-invasive blood pressure next to an arterial line).
        """
        try:
            x = parse_number(raw) if name != "acvpu" else raw
        except ValueError:
            self.drop(where, "not_numeric", name, f"{str(raw)[:40]!r} is not a number", report=True)
            return False
        if x is None:
            return False
        if name == "acvpu":
            level = str(x).strip().upper()[:1]
            if level not in ACVPU_LEVELS:
                self.drop(where, "unknown_acvpu", name, f"{str(x)[:40]!r}", report=True)
                return False
            self.slot(patient, ts_ms).acvpu = level
            return True
        assert isinstance(x, float)
        if name in VITALS:
            if unit is not None:
                try:
                    converted = to_contract_unit(name, x, unit, None)
                except Rejected as exc:
                    self.drop(where, "unsupported_unit", name, exc.detail, report=True)
                    return False
                if converted != x:
                    self.converted[f"{unit}.{name}"] += 1
                x = converted
            low, high = RANGES[name]
            if not low <= x <= high:  # checked before rounding, as ingest does: never pulled into range
                self.drop(where, "out_of_range", name, f"{x:g} outside [{low:g}, {high:g}]")
                return False
            slot = self.slot(patient, ts_ms)
            if name in slot.vitals:
                if not prefer and name not in slot.secondary:
                    self.drop(where, "superseded", name, "the preferred source has a value at this time")
                    return False
                if prefer and name in slot.secondary:
                    self.drop(where, "superseded", name, "a second-choice value replaced by the preferred source")
                else:
                    self.drop(where, "duplicate", name, "a second value at the same time (the later row wins)")
            slot.vitals[name] = round(x, 1)
            if prefer:
                slot.secondary.discard(name)
            else:
                slot.secondary.add(name)
            return True
        if name == "fio2":
            if 1.0 < x <= 100.0:  # charted as a percentage
                self.converted["%.fio2"] += 1
                x = x / 100.0
            if not ROOM_AIR_FIO2 - 0.005 <= x <= 1.0:
                self.drop(where, "out_of_range", name, f"{x:g} outside [0.21, 1] (or 21-100 %)")
                return False
            slot = self.slot(patient, ts_ms)
            slot.on_oxygen = bool(slot.on_oxygen) or x > ROOM_AIR_FIO2 + 1e-9
            return True
        if name in ("on_oxygen", "mech_vent"):
            if x not in (0.0, 1.0):
                self.drop(where, "out_of_range", name, f"{x:g} is not 0 or 1")
                return False
            slot = self.slot(patient, ts_ms)
            slot.on_oxygen = bool(slot.on_oxygen) or x == 1.0
            return True
        if name == "gcs":
            if not 3.0 <= x <= 15.0:
                self.drop(where, "out_of_range", name, f"{x:g} outside [3, 15]")
                return False
            self.slot(patient, ts_ms).acvpu = gcs_to_acvpu(x)
            return True
        raise ValueError(f"unknown field {name!r}")

    def event(self, patient: str, event_ts_ms: int, scenario: str, onset_ts_ms: int | None = None) -> None:
        """A deterioration event (the first per patient counts)."""
        current = self.events.get(patient)
        if current is None or event_ts_ms < current["event_ts_ms"]:
            self.events[patient] = {"patient_id": patient, "event_ts_ms": int(event_ts_ms), "scenario": scenario,
                                    "onset_ts_ms": int(onset_ts_ms if onset_ts_ms is not None else event_ts_ms), "severity": None}

    def outcome(self, patient: str, values: dict[str, Any]) -> None:
        self.outcomes[patient] = {"patient_id": patient, **values}

    # -- output --------------------------------------------------------------------------
    def columns(self) -> tuple[list[str], dict[str, np.ndarray]]:
        """(patient ids, the columns of `sim.columns.Columns`) ordered by event time, then patient."""
        patients = sorted(p for p, slots in self.slots.items() if any(_has_data(s) for s in slots.values()))
        rows: list[tuple[int, int, int, Slot]] = []
        for index, patient in enumerate(patients):
            seq = 0
            for ts in sorted(self.slots[patient]):
                s = self.slots[patient][ts]
                if _has_data(s):
                    rows.append((ts, index, seq, s))
                    seq += 1
        rows.sort(key=lambda r: (r[0], r[1]))
        n = len(rows)
        cols: dict[str, np.ndarray] = {
            "patient": np.fromiter((r[1] for r in rows), dtype=np.int32, count=n),
            "seq": np.fromiter((r[2] for r in rows), dtype=np.int64, count=n),
            "ts_ms": np.fromiter((r[0] for r in rows), dtype=np.int64, count=n),
        }
        for name in VITALS:
            dtype = np.float64 if name == "temp" else np.float32
            cols[name] = np.fromiter((r[3].vitals.get(name, math.nan) for r in rows), dtype=dtype, count=n)
        cols["on_oxygen"] = np.fromiter((-1 if r[3].on_oxygen is None else int(r[3].on_oxygen) for r in rows), dtype=np.int8, count=n)
        cols["acvpu"] = np.fromiter((-1 if r[3].acvpu is None else ACVPU_LEVELS.index(r[3].acvpu) for r in rows), dtype=np.int8, count=n)
        cols["spo2_scale"] = np.ones(n, dtype=np.int8)
        cols["deliver_ms"] = cols["ts_ms"].copy()
        cols["duplicate"] = np.zeros(n, dtype=bool)
        cols["artefact"] = np.zeros(n, dtype=np.uint8)
        self._rows = rows
        return patients, cols

    def write(self, out_dir: str | Path) -> dict[str, Any]:
        """Write the cohort directory; returns the summary."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        patients, cols = self.columns()
        with open(out / "readings.jsonl", "w", encoding="utf-8") as f:
            for ts, index, seq, s in self._rows:
                f.write(json.dumps(reading_dict(patients[index], seq, ts, s), separators=(",", ":"), allow_nan=False) + "\n")
        kept = set(patients)
        events = sorted((e for p, e in self.events.items() if p in kept), key=lambda e: (e["event_ts_ms"], e["patient_id"]))
        with open(out / "events.jsonl", "w", encoding="utf-8") as f:
            for e in events:
                f.write(json.dumps(e, separators=(",", ":")) + "\n")
        if self.outcomes:
            with open(out / "outcomes.jsonl", "w", encoding="utf-8") as f:
                for p in sorted(self.outcomes):
                    if p in kept:
                        f.write(json.dumps(self.outcomes[p], separators=(",", ":"), allow_nan=False) + "\n")
        (out / "patients.json").write_text(json.dumps(patients) + "\n")
        np.savez(out / "readings.npz", **cols)  # type: ignore[arg-type]  # numpy's stub types the keywords as `allow_pickle`
        summary = self.summary(patients, cols, events)
        (out / "summary.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
        return summary

    def summary(self, patients: list[str], cols: dict[str, np.ndarray], events: list[dict[str, Any]]) -> dict[str, Any]:
        n = len(patients)
        ts, pat = cols["ts_ms"], cols["patient"]
        hours = 0.0
        if n:
            first = np.full(n, np.iinfo(np.int64).max)
            last = np.full(n, np.iinfo(np.int64).min)
            np.minimum.at(first, pat, ts)
            np.maximum.at(last, pat, ts)
            hours = float((last - first).sum()) / MS_PER_HOUR
        readings = int(len(ts))
        missing = {name: _r(float(np.isnan(cols[name]).mean())) if readings else 1.0 for name in VITALS}
        deaths = sum(1 for p in patients if self.outcomes.get(p, {}).get("in_hospital_death") == 1)
        return {
            "source": self.source,
            "imported": True,
            "patients": n,
            "readings": readings,
            "values": {name: int((~np.isnan(cols[name])).sum()) for name in VITALS}
            | {"on_oxygen": int((cols["on_oxygen"] >= 0).sum()), "acvpu": int((cols["acvpu"] >= 0).sum())},
            "patient_days": _r(hours / 24.0),
            "events": len(events),
            "prevalence": _r(len(events) / max(1, n)),
            "outcomes": {"patients": sum(1 for p in patients if p in self.outcomes), "in_hospital_deaths": deaths} if self.outcomes else None,
            "missingness": missing,
            "dropped_values": dict(sorted(self.dropped.items())),
            "dropped_values_total": int(sum(self.dropped.values())),
            "converted_values": dict(sorted(self.converted.items())),
            "rejected": dict(sorted(self.rejected.items())),
            "files": {"read": self.files_read, "rejected": self.files_rejected},
            "rows_read": self.rows_read,
            "problems": self.problems,
            "problems_total": self.problem_count,
            "start_ms": self.start_ms,
            "options": self.options,
        }


def _has_data(s: Slot) -> bool:
    return bool(s.vitals) or s.on_oxygen is not None or s.acvpu is not None


def reading_dict(patient: str, seq: int, ts_ms: int, s: Slot) -> dict[str, object]:
    """A reading-contract dict (every field, null for absent; whole numbers written as ints)."""
    out: dict[str, object] = {"patient_id": patient, "device_id": f"import-{patient}", "seq": seq, "ts_ms": ts_ms}
    for name in VITALS:
        v = s.vitals.get(name)
        out[name] = None if v is None else (int(v) if v == int(v) and name != "temp" else v)
    out["on_oxygen"] = s.on_oxygen
    out["acvpu"] = s.acvpu
    out["spo2_scale"] = 1
    return out


def _r(x: float) -> float:
    return round(float(x), 4)

