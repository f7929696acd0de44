"""Restore: rebuild a partition's rows from its `scorer.state` changelog records.

Policy for state written by another model version: discard and re-warm. Those patients start
from the initial state with their next reading, exactly as new patients do; the count is
reported (metric and log), never silent. Refusing to start would stop monitoring the ward
for the sake of a few minutes of warm-up.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from inference.state.changelog import CorruptState, decode_row, peek_model_version
from inference.state.table import StateTable

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RestoreResult:
    restored: int
    deleted: int
    discarded_other_model: int
    corrupt: int


def restore_partition(
    table: StateTable, partition: int, changelog: Iterable[tuple[bytes, bytes | None]], model_version: str
) -> RestoreResult:
    """Apply changelog records (oldest first; last one per patient wins) to `table`. Applying
    consecutive slices of a changelog one after another gives the same table as applying it whole."""
    latest: dict[str, bytes | None] = {}
    for key, value in changelog:
        latest[key.decode()] = value
    restored = deleted = other = corrupt = 0
    for patient_id, value in latest.items():
        if value is None:
            table.remove([patient_id])
            deleted += 1
            continue
        try:
            if peek_model_version(value) != model_version:
                table.remove([patient_id])
                other += 1
                continue
            row_state = decode_row(value, table.state_size)
        except (CorruptState, UnicodeDecodeError) as exc:
            log.warning("corrupt state record skipped partition=%d error=%s", partition, exc)
            # As if this were the only record: a row an earlier slice restored is not kept.
            table.remove([patient_id])
            corrupt += 1
            continue
        row = table.row_of(patient_id, partition)
        table.hidden[row] = row_state.hidden
        table.last_values[row] = row_state.last_values
        table.seen_ts[row] = row_state.seen_ts
        table.last_ts[row] = row_state.last_ts
        table.last_offset[row] = row_state.input_offset
        table.spo2_scale[row] = row_state.spo2_scale
        table.last_risk[row] = row_state.last_risk
        if row_state.trend_refs is not None:
            table.trend_refs[row] = row_state.trend_refs.reshape(table.trend_refs.shape[1:])
        else:
            table.trend_refs[row] = np.nan
        table.partition[row] = partition
        restored += 1
    if other:
        log.warning(
            "state from another model discarded partition=%d rows=%d model=%s: those patients re-warm from their next reading",
            partition, other, model_version,
        )
    return RestoreResult(restored, deleted, other, corrupt)
