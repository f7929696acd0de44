"""The state table: every patient's recurrent state in one dense, growable set of arrays.

Rows are patients; `rows` maps patient id to row. A batch of readings for many patients
becomes index arithmetic on these arrays and one batched model step, with no per-patient
Python objects on the hot path. Freed rows are reused.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from inference.explain import empty_refs
from inference.features import N_FEATURES, NEVER


class StateTable:
    """Hidden state, last event time and last observed inputs per patient.

    For explanations (inference/explain.py) also the last risk and the trend grid's reference
    values (`trend_refs`, [rows, horizons, slots, trended], NaN where none): 172 bytes a patient.
    """

    def __init__(self, state_size: int, capacity: int = 1024) -> None:
        self.state_size = state_size
        self.rows: dict[str, int] = {}
        self.ids: list[str | None] = []
        self._free: list[int] = []
        self.hidden = np.zeros((0, state_size), dtype=np.float32)  # the model's state, one row per patient
        self.last_values = np.zeros((0, N_FEATURES), dtype=np.float32)
        self.seen_ts = np.zeros((0, N_FEATURES), dtype=np.int64)
        self.last_ts = np.zeros(0, dtype=np.int64)
        self.last_offset = np.zeros(0, dtype=np.int64)
        self.partition = np.zeros(0, dtype=np.int32)
        self.spo2_scale = np.zeros(0, dtype=np.int8)
        self.last_risk = np.zeros(0, dtype=np.float32)
        self.trend_refs = empty_refs(0)
        self._grow(capacity)

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def capacity(self) -> int:
        return len(self.ids)

    def nbytes(self) -> int:
        """Bytes held by the arrays (the per-patient cost, without the id map)."""
        arrays = (self.hidden, self.last_values, self.seen_ts, self.last_ts, self.last_offset, self.partition, self.spo2_scale,
                  self.last_risk, self.trend_refs)
        return int(sum(a.nbytes for a in arrays))

    def row_of(self, patient_id: str, partition: int) -> int:
        """The patient's row, allocating a fresh (initial-state) one if new."""
        row = self.rows.get(patient_id)
        if row is not None:
            return row
        if not self._free:
            self._grow(max(1024, self.capacity))
        # Free rows are always clear (fresh from _grow, or cleared by remove): nothing to reset.
        row = self._free.pop()
        self.rows[patient_id] = row
        self.ids[row] = patient_id
        self.partition[row] = partition
        return row

    def reset(self, row: int) -> None:
        """Back to the initial state, keeping the row (a patient back after eviction time)."""
        partition = self.partition[row]
        self._clear(row)
        self.partition[row] = partition

    def remove(self, patient_ids: Iterable[str]) -> None:
        for patient_id in patient_ids:
            row = self.rows.pop(patient_id, None)
            if row is not None:
                self.ids[row] = None
                self._clear(row)
                self._free.append(row)

    def patients_in(self, partitions: Iterable[int]) -> list[str]:
        wanted = np.fromiter(partitions, dtype=np.int32)
        if not len(self.rows) or not wanted.size:
            return []
        live = np.fromiter(self.rows.values(), dtype=np.int64)
        hits = live[np.isin(self.partition[live], wanted)]
        return [self.ids[r] for r in hits.tolist()]

    def idle(self, partition: int, before_ts: int) -> list[str]:
        """Patients of `partition` whose last reading is older than `before_ts`."""
        if not self.rows:
            return []
        live = np.fromiter(self.rows.values(), dtype=np.int64)
        hits = live[(self.partition[live] == partition) & (self.last_ts[live] < before_ts)]
        return [self.ids[r] for r in hits.tolist()]

    def _clear(self, row: int) -> None:
        self.hidden[row] = 0.0
        self.last_values[row] = 0.0
        self.seen_ts[row] = NEVER
        self.last_ts[row] = NEVER
        self.last_offset[row] = NEVER
        self.partition[row] = NEVER
        self.spo2_scale[row] = 1
        self.last_risk[row] = 0.0
        self.trend_refs[row] = np.nan

    def _grow(self, extra: int) -> None:
        old = self.capacity
        new = old + extra
        self.hidden = np.concatenate([self.hidden, np.zeros((extra, self.state_size), dtype=np.float32)])
        self.last_values = np.concatenate([self.last_values, np.zeros((extra, N_FEATURES), dtype=np.float32)])
        self.seen_ts = np.concatenate([self.seen_ts, np.full((extra, N_FEATURES), NEVER, dtype=np.int64)])
        self.last_ts = np.concatenate([self.last_ts, np.full(extra, NEVER, dtype=np.int64)])
        self.last_offset = np.concatenate([self.last_offset, np.full(extra, NEVER, dtype=np.int64)])
        self.partition = np.concatenate([self.partition, np.full(extra, NEVER, dtype=np.int32)])
        self.spo2_scale = np.concatenate([self.spo2_scale, np.ones(extra, dtype=np.int8)])
        self.last_risk = np.concatenate([self.last_risk, np.zeros(extra, dtype=np.float32)])
        self.trend_refs = np.concatenate([self.trend_refs, empty_refs(extra)])
        self.ids.extend([None] * extra)
        # Pop from the end gives the lowest free row first: rows stay dense at the front.
        self._free.extend(range(new - 1, old - 1, -1))
