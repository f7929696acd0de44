"""Model inputs from readings: values, missing mask and time since each input was last seen.

Two paths that must agree: `sequence_inputs` featurises a whole patient stay at once
(training, evaluation, the equivalence test) and the scorer's state table does the same one
reading at a time (inference/state/table.py). Raw units go in; the model normalises.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np

from ingest import VITALS, Reading

# Model inputs: the six numeric vitals, supplemental oxygen, and consciousness (0 = Alert).
FEATURES: Final = (*VITALS, "on_oxygen", "consciousness")
N_FEATURES: Final = len(FEATURES)
# Time since last seen is capped: beyond a day, "long ago" is all the model needs to know.
MAX_DELTA_HOURS: Final = 24.0
MS_PER_HOUR: Final = 3_600_000.0


def reading_values(reading: Reading) -> tuple[np.ndarray, np.ndarray]:
    """(values, mask) for one reading; absent inputs have value 0 and mask 0."""
    values = np.zeros(N_FEATURES, dtype=np.float32)
    mask = np.zeros(N_FEATURES, dtype=np.float32)
    for i, name in enumerate(VITALS):
        v = getattr(reading, name)
        if v is not None:
            values[i] = v
            mask[i] = 1.0
    if reading.on_oxygen is not None:
        values[6] = 1.0 if reading.on_oxygen else 0.0
        mask[6] = 1.0
    if reading.acvpu is not None:
        values[7] = 0.0 if reading.acvpu == "A" else 1.0
        mask[7] = 1.0
    return values, mask


@dataclass(frozen=True, slots=True)
class SequenceInputs:
    """Inputs for one patient's readings in event-time order, each array shaped [T, D]."""

    values: np.ndarray
    mask: np.ndarray
    delta_hours: np.ndarray
    last_values: np.ndarray
    last_mask: np.ndarray
    ts_ms: np.ndarray


def sequence_inputs(readings: Sequence[Reading]) -> SequenceInputs:
    """Featurise one patient's readings (already in event-time order) in one pass."""
    n = len(readings)
    values = np.zeros((n, N_FEATURES), dtype=np.float32)
    mask = np.zeros((n, N_FEATURES), dtype=np.float32)
    delta = np.full((n, N_FEATURES), MAX_DELTA_HOURS, dtype=np.float32)
    last_values = np.zeros((n, N_FEATURES), dtype=np.float32)
    last_mask = np.zeros((n, N_FEATURES), dtype=np.float32)
    ts = np.array([r.ts_ms for r in readings], dtype=np.int64)
    seen_ts = np.full(N_FEATURES, -1, dtype=np.int64)
    seen_val = np.zeros(N_FEATURES, dtype=np.float32)
    for t, reading in enumerate(readings):
        values[t], mask[t] = reading_values(reading)
        known = seen_ts >= 0
        delta[t, known] = np.minimum((ts[t] - seen_ts[known]) / MS_PER_HOUR, MAX_DELTA_HOURS)
        last_values[t] = seen_val
        last_mask[t] = known
        observed = mask[t] > 0
        seen_ts[observed] = ts[t]
        seen_val[observed] = values[t, observed]
    return SequenceInputs(values, mask, delta, last_values, last_mask, ts)


def array_inputs(values: np.ndarray, mask: np.ndarray, ts_ms: np.ndarray) -> SequenceInputs:
    """`sequence_inputs` for one patient given as arrays: values and mask [T, D], ts_ms [T].

    The columnar path (imported and simulated cohorts from readings.npz): no Python loop over
    readings, and the same numbers as `sequence_inputs` (a test checks both on every sample).
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
    cols = np.arange(N_FEATURES)[None, :]
    delta = np.where(known, np.minimum((ts[:, None] - ts[safe]) / MS_PER_HOUR, MAX_DELTA_HOURS), MAX_DELTA_HOURS).astype(np.float32)
    last_values = np.where(known, values[safe, cols], 0.0).astype(np.float32)
    return SequenceInputs(values, mask, delta, last_values, known.astype(np.float32), ts)
