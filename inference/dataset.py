"""Simulator cohorts as model inputs: per-patient series, then padded tensors for BPTT.

Each patient's readings are cleaned the way the pipeline would apply them (validated as
ingest does, de-duplicated by (device_id, seq), late ones dropped as the scorer does), cut
at the patient's deterioration event (after it the patient belongs to the rapid-response
team, not the scorer), featurised with `inference.features.sequence_inputs` and labelled:
a reading is positive when an event follows it within the horizon.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from ingest import Reading, unique_readings
from ingest.contract import VITALS
from inference.features import FEATURE, FEATURES, MS_PER_HOUR, N_FEATURES, SequenceInputs, array_inputs, observed_columns, sequence_inputs
from inference.news2 import NEWS2_MAX_AGE_MS, news2

BINARY_FEATURES = ("on_oxygen", "consciousness")


@dataclass(frozen=True)
class PatientSeries:
    """One patient's scored readings: model inputs, labels and NEWS2, all in event-time order."""

    patient_id: str
    scenario: str
    event_ts_ms: int | None
    inputs: SequenceInputs
    labels: np.ndarray  # [T] 1.0 if an event follows within the horizon
    news2: np.ndarray  # [T] NEWS2 total the scorer would publish with the reading
    news2_single3: np.ndarray  # [T] bool

    def __len__(self) -> int:
        return len(self.labels)


def applied_readings(raw: Iterable[dict[str, object]]) -> dict[str, list[Reading]]:
    """Per patient, the readings the streaming scorer would apply, in the order it applies them.

    What ingest passes on (valid, each once by `ingest.reading_id`: `ingest.unique_readings`);
    a reading older than the patient's last applied one is late (the scorer dead-letters it).
    """
    by_patient: dict[str, list[Reading]] = {}
    for reading in unique_readings(raw):
        applied = by_patient.setdefault(reading.patient_id, [])
        if applied and reading.ts_ms < applied[-1].ts_ms:
            continue
        applied.append(reading)
    return by_patient


def carried_news2(readings: Sequence[Reading], max_age_ms: int = NEWS2_MAX_AGE_MS) -> tuple[np.ndarray, np.ndarray]:
    """NEWS2 per reading from each parameter's last value no older than `max_age_ms` (as the scorer)."""
    totals = np.zeros(len(readings), dtype=np.int16)
    single3 = np.zeros(len(readings), dtype=bool)
    last: dict[str, tuple[int, object]] = {}
    names = ("hr", "rr", "spo2", "temp", "sbp", "on_oxygen", "acvpu")
    for t, r in enumerate(readings):
        for name in names:
            v = getattr(r, name)
            if v is not None:
                last[name] = (r.ts_ms, v)
        fresh = {n: v for n, (ts, v) in last.items() if ts >= r.ts_ms - max_age_ms}
        score = news2(spo2_scale=r.spo2_scale, **fresh)  # type: ignore[arg-type]
        totals[t] = score.total
        single3[t] = score.single3
    return totals, single3


def labels_for(ts_ms: np.ndarray, event_ts_ms: int | None, horizon_hours: float) -> np.ndarray:
    """1.0 where the event happens within `horizon_hours` after the reading (the reading before it)."""
    if event_ts_ms is None:
        return np.zeros(len(ts_ms), dtype=np.float32)
    ahead = event_ts_ms - ts_ms
    return ((ahead > 0) & (ahead <= horizon_hours * MS_PER_HOUR)).astype(np.float32)


def cohort_series(cohort: object, horizon_hours: float) -> list[PatientSeries]:
    """Clean, cut at the event, featurise and label every patient of a `sim.cohort.Cohort`."""
    events: dict[str, tuple[int, str]] = {}
    for e in cohort.events:  # type: ignore[attr-defined]
        if e.patient_id not in events or e.event_ts_ms < events[e.patient_id][0]:
            events[e.patient_id] = (e.event_ts_ms, e.scenario)
    scenarios = {p.patient_id: p.scenario for p in cohort.patients}  # type: ignore[attr-defined]
    series = []
    for patient_id, readings in sorted(applied_readings(cohort.readings).items()):  # type: ignore[attr-defined]
        event_ts, scenario = events.get(patient_id, (None, scenarios.get(patient_id, "stable")))
        if event_ts is not None:
            readings = [r for r in readings if r.ts_ms < event_ts]
        if not readings:
            continue
        inputs = sequence_inputs(readings)
        totals, single3 = carried_news2(readings)
        series.append(
            PatientSeries(patient_id, scenario, event_ts, inputs, labels_for(inputs.ts_ms, event_ts, horizon_hours), totals, single3)
        )
    return series


@dataclass(frozen=True)
class Padded:
    """A cohort as right-padded tensors: inputs [N, T, D], labels and valid [N, T]."""

    values: Tensor
    mask: Tensor
    delta: Tensor
    last_values: Tensor
    last_mask: Tensor
    labels: Tensor
    valid: Tensor

    @property
    def patients(self) -> int:
        return self.values.shape[0]

    @property
    def steps(self) -> int:
        return self.values.shape[1]

    def select(self, rows: Tensor) -> Padded:
        return Padded(*(t.index_select(0, rows) for t in self._tensors()))

    def to(self, device: torch.device | str) -> Padded:
        return Padded(*(t.to(device) for t in self._tensors()))

    def chunks(self, length: int) -> Iterator[Padded]:
        """Consecutive time slices of at most `length` steps, for truncated BPTT."""
        last = int(self.valid.any(0).nonzero().max()) + 1 if bool(self.valid.any()) else 0
        for start in range(0, last, length):
            yield Padded(*(t[:, start : start + length] for t in self._tensors()))

    def _tensors(self) -> tuple[Tensor, ...]:
        return (self.values, self.mask, self.delta, self.last_values, self.last_mask, self.labels, self.valid)


def pad(series: Sequence[PatientSeries]) -> Padded:
    """Right-pad per-patient series into tensors; `valid` marks the real readings."""
    n = len(series)
    steps = max(len(s) for s in series)
    out = {name: np.zeros((n, steps, N_FEATURES), dtype=np.float32) for name in ("values", "mask", "delta", "last_values", "last_mask")}
    labels = np.zeros((n, steps), dtype=np.float32)
    valid = np.zeros((n, steps), dtype=bool)
    for i, s in enumerate(series):
        t = len(s)
        out["values"][i, :t] = s.inputs.values
        out["mask"][i, :t] = s.inputs.mask
        out["delta"][i, :t] = s.inputs.delta_hours
        out["last_values"][i, :t] = s.inputs.last_values
        out["last_mask"][i, :t] = s.inputs.last_mask
        labels[i, :t] = s.labels
        valid[i, :t] = True
    return Padded(**{k: torch.from_numpy(out[k]) for k in ("values", "mask", "delta", "last_values", "last_mask")},
                  labels=torch.from_numpy(labels), valid=torch.from_numpy(valid))


def normalisation(series: Sequence[PatientSeries]) -> tuple[Tensor, Tensor]:
    """Mean and standard deviation of each input over its observed values (the training cohort's)."""
    values = np.concatenate([s.inputs.values for s in series])
    mask = np.concatenate([s.inputs.mask for s in series]) > 0
    mean = np.zeros(N_FEATURES, dtype=np.float64)
    std = np.ones(N_FEATURES, dtype=np.float64)
    for j in range(N_FEATURES):
        if FEATURES[j] in BINARY_FEATURES:
            continue  # 0/1 already; a rare flag scaled by a tiny spread would swamp the rest
        seen = values[mask[:, j], j].astype(np.float64)
        if seen.size:
            mean[j] = seen.mean()
            std[j] = max(seen.std(), 0.05)
    return torch.tensor(mean, dtype=torch.float32), torch.tensor(std, dtype=torch.float32)


def make_cohort(patients: int, hours: float, seed: int, **options: object) -> tuple[dict[str, object], object]:
    """Generate a simulator cohort; options the simulator does not know are an error naming them."""
    from dataclasses import asdict, fields

    from sim.cohort import CohortConfig, generate

    known = {f.name for f in fields(CohortConfig)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise ValueError(f"cohort option(s) {unknown} not offered by sim.cohort.CohortConfig (has {sorted(known)})")
    config = CohortConfig(patients=patients, hours=hours, seed=seed, **options)  # type: ignore[arg-type]
    # What identifies the cohort in reports; device faults are the simulator's defaults.
    description = {k: v for k, v in asdict(config).items() if k not in ("start_ms", "devices")}
    return description, generate(config)


# -- cohort directories (imported or simulated), columnar -----------------------------------
def carried_news2_arrays(inputs: SequenceInputs, spo2_scale: np.ndarray | None = None, max_age_ms: int = NEWS2_MAX_AGE_MS) -> tuple[np.ndarray, np.ndarray]:
    """`carried_news2` on arrays: each parameter's last value no older than `max_age_ms`."""
    from inference.news2_batch import news2_batch

    observed = inputs.mask > 0
    n = len(inputs.ts_ms)
    steps = np.arange(n)[:, None]
    last_seen = np.maximum.accumulate(np.where(observed, steps, -1), axis=0)
    safe = np.maximum(last_seen, 0)
    cols = np.arange(N_FEATURES)[None, :]
    values = inputs.values[safe, cols]
    fresh = (last_seen >= 0) & (inputs.ts_ms[safe] >= (inputs.ts_ms - max_age_ms)[:, None])
    scale = np.ones(n, dtype=np.int8) if spo2_scale is None else spo2_scale
    scores = news2_batch(values, fresh, scale)
    return scores.total.astype(np.int16), scores.single3


@dataclass(frozen=True)
class CohortDir:
    """A cohort directory read for training/evaluation: patients' series plus their outcomes."""

    path: str
    summary: dict[str, object]
    series: list[PatientSeries]
    outcomes: dict[str, dict[str, object]]


def load_cohort_dir(path: str, horizon_hours: float, patients: set[str] | None = None) -> CohortDir:
    """Read readings.npz, events.jsonl, outcomes.jsonl of a cohort directory into patient series.

    Uses the columnar copy only. Imported cohorts hold valid, de-duplicated readings already;
    for simulated ones duplicates are dropped and a reading older than the patient's last
    applied one is dropped as late, as the scorer would. Each stay is cut at its first event.
    """
    import json
    from pathlib import Path

    root = Path(path)
    summary = json.loads((root / "summary.json").read_text())
    with np.load(root / "readings.npz") as data:
        cols = {k: data[k] for k in data.files}
    if (root / "patients.json").is_file():
        ids = json.loads((root / "patients.json").read_text())
    else:  # a simulated cohort: patient ids follow the simulator's numbering
        from sim.cohort import patient_id

        ids = [patient_id(i) for i in range(int(cols["patient"].max()) + 1 if len(cols["patient"]) else 0)]
    events: dict[str, tuple[int, str]] = {}
    events_file = root / "events.jsonl"
    if events_file.is_file():
        for line in events_file.read_text().splitlines():
            if line:
                e = json.loads(line)
                if e["patient_id"] not in events or e["event_ts_ms"] < events[e["patient_id"]][0]:
                    events[e["patient_id"]] = (int(e["event_ts_ms"]), e["scenario"])
    outcomes: dict[str, dict[str, object]] = {}
    if (root / "outcomes.jsonl").is_file():
        for line in (root / "outcomes.jsonl").read_text().splitlines():
            if line:
                o = json.loads(line)
                outcomes[o["patient_id"]] = o
    keep = ~cols["duplicate"] if "duplicate" in cols else np.ones(len(cols["patient"]), dtype=bool)
    order = np.flatnonzero(keep)
    order = order[np.argsort(cols["patient"][order], kind="stable")]  # per patient, in delivery order
    values, present = observed_columns(cols)
    mask = present > 0
    # A reading with a vital outside the contract's range is rejected whole by ingest (imported
    # cohorts never have one: the importer drops such values one by one).
    from ingest.contract import RANGES

    for name in VITALS:
        low, high = RANGES[name]
        j = FEATURE[name]
        keep_row = ~mask[:, j] | ((values[:, j] >= low) & (values[:, j] <= high))
        order = order[keep_row[order]]
    patient_of = cols["patient"][order]
    bounds = np.flatnonzero(np.diff(patient_of)) + 1
    series = []
    for rows in np.split(order, bounds) if len(order) else []:
        pid = ids[int(cols["patient"][rows[0]])]
        if patients is not None and pid not in patients:
            continue
        ts = cols["ts_ms"][rows]
        running = np.maximum.accumulate(ts)
        rows = rows[ts >= running]  # late: older than one already applied
        event_ts, scenario = events.get(pid, (None, "stable"))
        if event_ts is not None:
            rows = rows[cols["ts_ms"][rows] < event_ts]
        if not len(rows):
            continue
        inputs = array_inputs(values[rows], mask[rows].astype(np.float32), cols["ts_ms"][rows])
        totals, single3 = carried_news2_arrays(inputs, cols["spo2_scale"][rows])
        series.append(PatientSeries(pid, scenario, event_ts, inputs, labels_for(inputs.ts_ms, event_ts, horizon_hours), totals, single3))
    series.sort(key=lambda s: s.patient_id)
    return CohortDir(str(root), summary, series, outcomes)


# -- patient-level splits -------------------------------------------------------------------
SPLITS = ("train", "val", "test")


def split_of(source: str, patient_id: str, salt: str, val_fraction: float, test_fraction: float) -> str:
    """The split a patient belongs to: fixed by a hash of (salt, source, patient id), never by order.

    Every reading of a stay goes with its patient, so no stay is in two splits; the same salt
    and fractions give the same split on any machine, for any subset of the source.
    """
    import hashlib

    digest = hashlib.sha256(f"{salt}\x00{source}\x00{patient_id}".encode()).digest()
    u = int.from_bytes(digest[:8], "big") / 2**64
    if u < test_fraction:
        return "test"
    if u < test_fraction + val_fraction:
        return "val"
    return "train"
