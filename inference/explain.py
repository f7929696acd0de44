"""Why a risk score is what it is: per-input contributions by occlusion, and each vital's trend.

Contributions (docs/model.md, "Explanations"). For each input group (`GROUPS`: HR, RR, SpO2,
temperature, blood pressure, oxygen, consciousness) the current step is run again from the
patient's state before this reading, with that group's current and carried-forward values
replaced by a normal adult value (`REFERENCE`: every one scores 0 on NEWS2). The group's
contribution is the risk now minus the risk with the group at normal: positive when the
patient's value pushes the risk up. All groups of all explained readings of a batch go to the
model in extra batched step calls (chunks of `CHUNK` rows), so the method needs forward steps only and runs on any
exported checkpoint, on ONNX Runtime, without PyTorch. A group with no value now and none
carried forward contributes exactly 0 and costs no step row.

Trends. Each vital's change over the last hour and the last four hours, and the risk's, from
a small per-patient grid of reference values kept in the state table: for each horizon H, the
value each vital had (its last observation, if no older than the NEWS2 carry-forward age) at
the last three boundaries of a grid of H/2 of event time. A reading at time t is compared with
the value at the boundary two cells back, which lies more than H and at most 1.5 H before t; the record
says when (`since_ms`). A vital's change is reported only when it was observed again after that
boundary (a value carried forward is not a new measurement) and is itself still fresh.
"""

from __future__ import annotations

from typing import Final

import numpy as np

from inference.features import FEATURE, N_FEATURES, NEVER, VITAL_COLUMNS
from inference.records import DOMINANT, HORIZONS, INPUT_GROUPS, TRENDED
from inference.step import StepRuntime

# Input groups (their names are the record contract's), in the order contributions are computed
# and reported: name -> feature columns (inference/features.py; blood pressure is sbp and dbp).
_GROUP_FEATURES: Final = (("hr",), ("rr",), ("spo2",), ("temp",), ("sbp", "dbp"), ("on_oxygen",), ("consciousness",))
GROUPS: Final = tuple(zip(INPUT_GROUPS, (tuple(FEATURE[f] for f in fs) for fs in _GROUP_FEATURES)))
GROUP_NAMES: Final = tuple(name for name, _ in GROUPS)
N_GROUPS: Final = len(GROUPS)
# A normal adult (NEWS2 0 in every parameter), in FEATURES order: the "input removed" baseline.
_NORMAL: Final = {"hr": 75.0, "rr": 16.0, "spo2": 97.0, "temp": 37.0, "sbp": 125.0, "dbp": 75.0, "on_oxygen": 0.0, "consciousness": 0.0}
REFERENCE: Final = np.array([_NORMAL[name] for name in FEATURE], dtype=np.float32)
TOP: Final = 3  # contributions a record carries, largest magnitude first
CHUNK: Final = 1024  # rows per occlusion step call
CONTRIBUTION_DECIMALS: Final = 4  # finer than DOMINANT by far; the risk contract's 1e-5 is below it

# Trends: horizons, the grid slots kept per horizon, and what is trended (the numeric vitals, then risk).
HORIZONS_MS: Final = (3_600_000, 4 * 3_600_000)
HORIZON_LABELS: Final = HORIZONS
SLOTS: Final = 3  # boundaries b_c, b_(c-1), b_(c-2) of the current grid cell c
TREND_NAMES: Final = TRENDED  # the six numeric vitals (FEATURES order), then risk
N_TREND: Final = len(TREND_NAMES)
_TREND_VITALS: Final = slice(0, N_TREND - 1)  # in the trend arrays: the numeric vitals, then risk last
TREND_RISK: Final = N_TREND - 1

_COLUMNS = np.zeros((N_GROUPS, N_FEATURES), dtype=bool)
for _g, (_name, _cols) in enumerate(GROUPS):
    _COLUMNS[_g, list(_cols)] = True


def contributions(
    step: StepRuntime,
    state: np.ndarray,
    values: np.ndarray,
    mask: np.ndarray,
    delta: np.ndarray,
    last_values: np.ndarray,
    last_mask: np.ndarray,
    risk: np.ndarray,
) -> np.ndarray:
    """Each group's contribution to `risk` [n] for each of n readings: [n, N_GROUPS], float64.

    The arguments are what the step that produced `risk` was given (state before the reading).
    One step call for every (reading, group) pair that has something to replace.
    """
    n = len(risk)
    out = np.zeros((n, N_GROUPS), dtype=np.float64)
    if n == 0:
        return out
    known = (mask > 0) | (last_mask > 0)  # [n, D]
    has = (known[:, None, :] & _COLUMNS[None]).any(axis=2)  # [n, G]
    rows, groups = np.nonzero(has)
    if rows.size == 0:
        return out
    replace = _COLUMNS[groups]  # [k, D]
    v = np.where(replace & (mask[rows] > 0), REFERENCE, values[rows]).astype(np.float32)
    lv = np.where(replace & (last_mask[rows] > 0), REFERENCE, last_values[rows]).astype(np.float32)
    st, m, d, lm = state[rows], mask[rows], delta[rows], last_mask[rows]
    # In chunks: one ONNX Runtime call on many thousand rows costs far more per row than a few
    # calls of about a thousand (measured: 14,000 rows 60x the time of 2,000, not 7x).
    occluded = np.concatenate([
        step.step(st[i : i + CHUNK], v[i : i + CHUNK], m[i : i + CHUNK], d[i : i + CHUNK], lv[i : i + CHUNK], lm[i : i + CHUNK])[1]
        for i in range(0, len(rows), CHUNK)
    ])
    out[rows, groups] = risk[rows].astype(np.float64) - occluded.astype(np.float64)
    return out


def top(contribution: np.ndarray, k: int = TOP) -> list[tuple[str, float]]:
    """The k largest contributions of one reading by magnitude, rounded, zeros left out."""
    order = sorted(range(N_GROUPS), key=lambda g: (-abs(contribution[g]), g))
    out: list[tuple[str, float]] = []
    for g in order[:k]:
        value = round(float(contribution[g]), CONTRIBUTION_DECIMALS)
        if value != 0.0:
            out.append((GROUP_NAMES[g], value))
    return out


def dominant(top_contributions: list[tuple[str, float]] | tuple[tuple[str, float], ...]) -> str | None:
    """The input whose contribution is dominant (|contribution| >= DOMINANT), else None."""
    if top_contributions and abs(top_contributions[0][1]) >= DOMINANT:
        return top_contributions[0][0]
    return None


# -- trends ---------------------------------------------------------------------------------------
def _cell(ts: np.ndarray, width: int) -> np.ndarray:
    """Grid cell of event times: cell c is (c * width, (c + 1) * width], so a value observed exactly
    at a boundary is part of what stood at that boundary."""
    return (ts - 1) // width


def empty_refs(n: int) -> np.ndarray:
    """No reference values yet: [n, horizons, SLOTS, N_TREND] of NaN."""
    return np.full((n, len(HORIZONS_MS), SLOTS, N_TREND), np.nan, dtype=np.float32)


def rotate(
    refs: np.ndarray,
    last_ts: np.ndarray,
    ts: np.ndarray,
    last_values: np.ndarray,
    seen_ts: np.ndarray,
    last_risk: np.ndarray,
    max_age_ms: int,
) -> np.ndarray:
    """The grid references after moving from `last_ts` to `ts` (call before applying the reading).

    `last_values`, `seen_ts` and `last_risk` are the patient's values before this reading: the
    values as they stood at every grid boundary crossed since the last reading.
    """
    out = refs.copy()
    n = len(ts)
    if n == 0:
        return out
    new = last_ts == NEVER
    vital_seen = seen_ts[:, VITAL_COLUMNS]
    for h, horizon in enumerate(HORIZONS_MS):
        width = horizon // 2
        cell = _cell(ts, width)
        old_cell = np.where(new, cell, _cell(last_ts, width))
        moved = cell - old_cell  # >= 0: late readings never get here
        if not moved.any():
            continue
        for j in range(SLOTS):
            boundary = (cell - j) * width
            crossed = j < moved  # boundary lies after the last reading: its value is the carried one
            fresh = (vital_seen != NEVER) & (vital_seen >= (boundary - max_age_ms)[:, None])
            carried = np.empty((n, N_TREND), dtype=np.float32)
            carried[:, _TREND_VITALS] = np.where(fresh, last_values[:, VITAL_COLUMNS], np.nan)
            risk_fresh = ~new & (last_ts >= boundary - max_age_ms)
            carried[:, TREND_RISK] = np.where(risk_fresh, last_risk, np.nan)
            shifted = np.full((n, N_TREND), np.nan, dtype=np.float32)
            source = j - moved
            ok = (source >= 0) & (source < SLOTS)
            shifted[ok] = refs[np.nonzero(ok)[0], h, source[ok]]
            out[:, h, j] = np.where(crossed[:, None], carried, shifted)
    return out


def trends(
    refs: np.ndarray, ts: np.ndarray, last_values: np.ndarray, seen_ts: np.ndarray, risk: np.ndarray, max_age_ms: int
) -> tuple[np.ndarray, np.ndarray]:
    """Each trended quantity's change per horizon after applying the readings at `ts`.

    Returns (since_ms [n, horizons] int64, change [n, horizons, N_TREND] float64, NaN where none).
    """
    n = len(ts)
    since = np.empty((n, len(HORIZONS_MS)), dtype=np.int64)
    change = np.full((n, len(HORIZONS_MS), N_TREND), np.nan, dtype=np.float64)
    vital_seen = seen_ts[:, VITAL_COLUMNS]
    current = np.empty((n, N_TREND), dtype=np.float64)
    current[:, _TREND_VITALS] = last_values[:, VITAL_COLUMNS]
    current[:, TREND_RISK] = risk
    for h, horizon in enumerate(HORIZONS_MS):
        width = horizon // 2
        boundary = (_cell(ts, width) - (SLOTS - 1)) * width
        since[:, h] = boundary
        observed = np.ones((n, N_TREND), dtype=bool)
        observed[:, _TREND_VITALS] = (vital_seen != NEVER) & (vital_seen > boundary[:, None]) & (vital_seen >= (ts - max_age_ms)[:, None])
        reference = refs[:, h, SLOTS - 1].astype(np.float64)
        change[:, h] = np.where(observed & ~np.isnan(reference), current - reference, np.nan)
    return since, change
