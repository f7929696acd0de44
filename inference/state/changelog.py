"""The `scorer.state` changelog: one compacted record per patient, written after each batch.

Value layout (little-endian), a few hundred bytes:
    magic b"WWS2" | u16 len + model version (UTF-8) | i64 input offset | i64 last event time |
    i8 SpO2 scale | f32[S] hidden state | f32[D] last values | i64[D] last-seen times |
    f32 last risk | f32[H*K*T] trend references (inference/explain.py; NaN where none)
The model version travels in the value (and a header), so restore can refuse state written
by another model instead of silently feeding it to this one. The explanation's part (last
risk, trend references) is in the row because the trends a resumed scorer writes must be the
ones an uninterrupted one would. A `WWS1` row (before explanations) still restores: its
patient's trends start afresh, nothing else changes.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

from inference.features import N_FEATURES
from inference.state.table import StateTable

MAGIC = b"WWS2"
MAGIC_V1 = b"WWS1"  # without the explanation's part
_REFS = 2 * 3 * 7  # horizons x slots x trended (inference.explain), checked against the table below
CONTENT_TYPE = b"application/x-wardwatch-state"
_FIXED = struct.Struct("<qqb")


class CorruptState(ValueError):
    """A changelog value that is not in this format."""


@dataclass(frozen=True, slots=True)
class StateRow:
    model_version: str
    input_offset: int
    last_ts: int
    spo2_scale: int
    hidden: np.ndarray
    last_values: np.ndarray
    seen_ts: np.ndarray
    last_risk: float = float("nan")
    trend_refs: np.ndarray | None = None  # None: a WWS1 row, no trend references


def encode_row(table: StateTable, row: int, model_version: str) -> bytes:
    assert table.trend_refs[row].size == _REFS
    version = model_version.encode()
    return b"".join(
        (
            MAGIC,
            struct.pack("<H", len(version)),
            version,
            _FIXED.pack(int(table.last_offset[row]), int(table.last_ts[row]), int(table.spo2_scale[row])),
            table.hidden[row].astype("<f4", copy=False).tobytes(),
            table.last_values[row].astype("<f4", copy=False).tobytes(),
            table.seen_ts[row].astype("<i8", copy=False).tobytes(),
            table.last_risk[row : row + 1].astype("<f4", copy=False).tobytes(),
            table.trend_refs[row].astype("<f4", copy=False).tobytes(),
        )
    )


def decode_row(value: bytes, state_size: int) -> StateRow:
    if value[:4] not in (MAGIC, MAGIC_V1):
        raise CorruptState("not a wardwatch state record (bad magic)")
    v1 = value[:4] == MAGIC_V1
    (n,) = struct.unpack_from("<H", value, 4)
    pos = 6 + n
    version = value[6:pos].decode()
    offset, last_ts, scale = _FIXED.unpack_from(value, pos)
    pos += _FIXED.size
    need = pos + 4 * state_size + 4 * N_FEATURES + 8 * N_FEATURES + (0 if v1 else 4 + 4 * _REFS)
    if len(value) != need:
        raise CorruptState(f"state record is {len(value)} bytes, expected {need} for state size {state_size}")
    hidden = np.frombuffer(value, dtype="<f4", count=state_size, offset=pos)
    pos += 4 * state_size
    last_values = np.frombuffer(value, dtype="<f4", count=N_FEATURES, offset=pos)
    pos += 4 * N_FEATURES
    seen_ts = np.frombuffer(value, dtype="<i8", count=N_FEATURES, offset=pos)
    if v1:
        return StateRow(version, offset, last_ts, scale, hidden, last_values, seen_ts)
    pos += 8 * N_FEATURES
    (last_risk,) = struct.unpack_from("<f", value, pos)
    refs = np.frombuffer(value, dtype="<f4", count=_REFS, offset=pos + 4)
    return StateRow(version, offset, last_ts, scale, hidden, last_values, seen_ts, last_risk, refs)


def peek_model_version(value: bytes) -> str:
    """The model version of a state record without decoding the arrays."""
    if value[:4] not in (MAGIC, MAGIC_V1):
        raise CorruptState("not a wardwatch state record (bad magic)")
    (n,) = struct.unpack_from("<H", value, 4)
    return value[6 : 6 + n].decode()
