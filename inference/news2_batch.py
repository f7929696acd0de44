"""NEWS2 for many patients at once (the scorer's hot path).

The chart's band tables come from `inference.news2`, the one place they are written; this
module applies them to arrays with the same rounding (half away from zero to whole numbers,
and to 0.1 °C for temperature). A test checks the two agree on every band edge and at random.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from inference import news2


def _table(bands: tuple[tuple[int, ...], tuple[int, ...]]) -> tuple[np.ndarray, np.ndarray]:
    return np.array(bands[0]), np.array(bands[1])


RR = _table(news2.RR_BANDS)
SPO2_SCALE1 = _table(news2.SPO2_SCALE1_BANDS)
SPO2_SCALE2_ON_O2 = _table(news2.SPO2_SCALE2_BANDS)
SBP = _table(news2.SBP_BANDS)
HR = _table(news2.HR_BANDS)
TEMP_TENTHS = _table(news2.TEMP_TENTHS_BANDS)

# Column order of the arrays this module takes (inference.features.FEATURES).
HR_, RR_, SPO2_, TEMP_, SBP_, _DBP, O2_, CONSCIOUSNESS_ = range(8)
PARAMETERS = news2.PARAMETERS


@dataclass(frozen=True, slots=True)
class News2Batch:
    total: np.ndarray  # [n] int
    single3: np.ndarray  # [n] bool
    scores: np.ndarray  # [n, 7] int, columns in PARAMETERS order
    present: np.ndarray  # [n, 7] bool


def _round_half_up(x: np.ndarray) -> np.ndarray:
    return np.where(x >= 0, np.floor(x + 0.5), -np.floor(-x + 0.5))


def _band(values: np.ndarray, table: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    edges, scores = table
    return scores[np.searchsorted(edges, values, side="left")]


def news2_batch(values: np.ndarray, present: np.ndarray, spo2_scale: np.ndarray) -> News2Batch:
    """NEWS2 of each row: `values` [n, 8] in feature order, `present` [n, 8] which count."""
    v = values.astype(np.float64)
    rounded = _round_half_up(v)
    on_o2 = present[:, O2_] & (v[:, O2_] > 0.5)
    spo2 = rounded[:, SPO2_]
    scale2 = spo2_scale == 2
    spo2_s1 = _band(spo2, SPO2_SCALE1)
    spo2_s2 = np.where(on_o2 | (spo2 < 88), _band(spo2, SPO2_SCALE2_ON_O2), 0)
    columns = np.stack(
        [
            _band(rounded[:, RR_], RR),
            np.where(scale2, spo2_s2, spo2_s1),
            np.where(on_o2, 2, 0),
            _band(rounded[:, SBP_], SBP),
            _band(rounded[:, HR_], HR),
            np.where(v[:, CONSCIOUSNESS_] > 0.5, 3, 0),
            _band(_round_half_up(v[:, TEMP_] * 10), TEMP_TENTHS),
        ],
        axis=1,
    )
    mask = present[:, [RR_, SPO2_, O2_, SBP_, HR_, CONSCIOUSNESS_, TEMP_]]
    scores = np.where(mask, columns, 0)
    return News2Batch(scores.sum(axis=1), (scores == 3).any(axis=1), scores, mask)
