"""Model inputs from readings: values, missing mask and time since each input was last seen.

One transformation, used by every path that feeds the model:

- `observed` turns readings into (values, mask), one row per reading, columns named in
  `FEATURE` (`observed_columns` does the same for the columnar cohort copy, readings.npz);
- `step_inputs` adds what the model needs from before each reading: hours since each input
  was last seen (`delta_hours`), its last value and whether there was one;
- `model_inputs` is the two together for a batch of readings, given the last-seen state of
  each row (the Quix peer: one reading, from its store), and `remember` advances that state;
  the scorer calls `observed` and `step_inputs` itself, once per batch, with the last-seen
  state before each reading from the patient's earlier readings in the batch or else from its
  state table (inference/processor.py), and `remember` too;
- `sequence_inputs` / `array_inputs` featurise one patient's whole stay at once (training,
  evaluation): the last-seen state before each reading comes from the readings before it.

Raw units go in; the model normalises. tests/test_one_definition.py checks that a stay fed
reading by reading through `model_inputs` gets the same inputs as `sequence_inputs`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from operator import attrgetter
from types import MappingProxyType
from typing import Final

import numpy as np

from ingest import VITALS, Reading

# Model inputs: the six numeric vitals, supplemental oxygen, and consciousness (0 = Alert).
FEATURES: Final = (*VITALS, "on_oxygen", "consciousness")
N_FEATURES: Final = len(FEATURES)
FEATURE: Final[Mapping[str, int]] = MappingProxyType({name: i for i, name in enumerate(FEATURES)})  # column of each input
VITAL_COLUMNS: Final = slice(FEATURE[VITALS[0]], FEATURE[VITALS[-1]] + 1)  # the numeric vitals' columns, in VITALS order
# Time since last seen is capped: beyond a day, "long ago" is all the model needs to know.
MAX_DELTA_HOURS: Final = 24.0
MS_PER_HOUR: Final = 3_600_000.0
NEVER: Final = -1  # the last-seen time of an input never observed

# A reading's inputs in FEATURES order: the vitals and on_oxygen as they are (True = 1), then
# consciousness from ACVPU: 0 when Alert, 1 for any other level; None = not observed.
assert FEATURES[: FEATURE["on_oxygen"] + 1] == (*VITALS, "on_oxygen") and FEATURES[-1] == "consciousness"
_AS_GIVEN = attrgetter(*FEATURES[:-1])
_CONSCIOUSNESS: Final[Mapping[str | None, float | None]] = {None: None, "A": 0.0}  # any other level: 1.0
_ALERT_CODE: Final = 0  # readings.npz: acvpu holds an index into ingest.contract.ACVPU_LEVELS ("A" first), -1 absent


@dataclass(frozen=True, slots=True)
class ModelInputs:
    """The model's inputs for n readings, each array shaped [n, D] (ts_ms: [n]).

    Either one patient's readings in event-time order (a sequence) or a scorer batch's readings
    (many patients, each patient's in order)."""

    values: np.ndarray
    mask: np.ndarray
    delta_hours: np.ndarray
    last_values: np.ndarray
    last_mask: np.ndarray
    ts_ms: np.ndarray

    def step_args(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The arrays in the order the model's step takes them, after its state."""
        return self.values, self.mask, self.delta_hours, self.last_values, self.last_mask


SequenceInputs = ModelInputs  # one patient's stay: the name training and evaluation use


def _encode(raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(values, mask) from [n, D] inputs with NaN where not observed: absent inputs are 0, mask 0."""
    present = ~np.isnan(raw)
    return np.where(present, raw, np.float32(0.0)).astype(np.float32, copy=False), present.astype(np.float32)


def observed(readings: Sequence[Reading]) -> tuple[np.ndarray, np.ndarray]:
    """(values, mask), each [n, D], of a batch of readings: the one encoding of a reading as inputs."""
    get, consciousness = _AS_GIVEN, _CONSCIOUSNESS
    rows = [(*get(r), consciousness.get(r.acvpu, 1.0)) for r in readings]
    return _encode(np.array(rows, dtype=np.float32).reshape(len(rows), N_FEATURES))


def observed_columns(columns: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """`observed` for readings held as columns (readings.npz: vitals NaN when absent; on_oxygen
    0/1 and acvpu an ACVPU_LEVELS index, -1 when absent)."""
    on_oxygen = columns["on_oxygen"]
    acvpu = columns["acvpu"]
    raw = np.stack(
        [columns[name].astype(np.float32) for name in VITALS]
        + [np.where(on_oxygen >= 0, on_oxygen, np.nan), np.where(acvpu >= 0, acvpu != _ALERT_CODE, np.nan)],
        axis=1,
    ).astype(np.float32)
    return _encode(raw)


def step_inputs(values: np.ndarray, mask: np.ndarray, ts_ms: np.ndarray, seen_ts: np.ndarray, seen_values: np.ndarray) -> ModelInputs:
    """The inputs of n readings given, per row and input, when it was last seen before the
    reading (`NEVER`: not yet) and its value then (0 if never)."""
    ts = np.asarray(ts_ms, dtype=np.int64)
    known = seen_ts != NEVER
    delta = np.where(known, np.minimum((ts[:, None] - seen_ts) / MS_PER_HOUR, MAX_DELTA_HOURS), MAX_DELTA_HOURS)
    return ModelInputs(values, mask, delta.astype(np.float32), seen_values.astype(np.float32, copy=False), known.astype(np.float32), ts)


def model_inputs(readings: Sequence[Reading], seen_ts: np.ndarray, seen_values: np.ndarray) -> ModelInputs:
    """The model's inputs for a batch of readings, one per row of the last-seen state
    (`seen_ts`, `seen_values`, each [n, D]); `remember` gives the state after them."""
    values, mask = observed(readings)
    ts = np.fromiter((r.ts_ms for r in readings), dtype=np.int64, count=len(readings))
    return step_inputs(values, mask, ts, seen_ts, seen_values)


def remember(inputs: ModelInputs, seen_ts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The last-seen state (seen_ts, seen_values) after the readings `inputs` were made from,
    given `seen_ts` before them (the values before them are `inputs.last_values`)."""
    present = inputs.mask > 0
    return np.where(present, inputs.ts_ms[:, None], seen_ts), np.where(present, inputs.values, inputs.last_values)


def sequence_inputs(readings: Sequence[Reading]) -> ModelInputs:
    """Featurise one patient's readings (already in event-time order) in one pass."""
    values, mask = observed(readings)
    return array_inputs(values, mask, np.fromiter((r.ts_ms for r in readings), dtype=np.int64, count=len(readings)))


def array_inputs(values: np.ndarray, mask: np.ndarray, ts_ms: np.ndarray) -> ModelInputs:
    """`sequence_inputs` for one patient given as arrays: values and mask [T, D], ts_ms [T].

    The columnar path (imported and simulated cohorts from readings.npz): no Python loop over
    readings. The last-seen state before each reading is that of the readings before it.
    """
    values = np.where(mask > 0, values, 0.0).astype(np.float32)
    mask = (mask > 0).astype(np.float32)
    ts = np.asarray(ts_ms, dtype=np.int64)
    n = len(ts)
    steps = np.arange(n)[:, None]
    # Index of the last reading before t that observed each input (-1: none yet).
    seen_at = np.where(mask > 0, steps, -1)
    last_seen = np.maximum.accumulate(seen_at, axis=0)
    before = np.vstack([np.full((1, N_FEATURES), -1), last_seen[:-1]]) if n else last_seen
    known = before >= 0
    safe = np.maximum(before, 0)
    seen_ts = np.where(known, ts[safe], NEVER)
    seen_values = np.where(known, values[safe, np.arange(N_FEATURES)[None, :]], 0.0)
    return step_inputs(values, mask, ts, seen_ts, seen_values)
