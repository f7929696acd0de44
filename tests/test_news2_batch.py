"""The scorer's array NEWS2 agrees with the one-reading NEWS2 everywhere that matters."""

from __future__ import annotations

import itertools

import numpy as np

from inference.news2 import news2
from inference.news2_batch import PARAMETERS, news2_batch


def scalar(row: np.ndarray, present: np.ndarray, scale: int):  # noqa: ANN201
    def get(j: int) -> float | None:
        return float(row[j]) if present[j] else None

    return news2(
        hr=get(0), rr=get(1), spo2=get(2), temp=get(3), sbp=get(4),
        on_oxygen=bool(row[6] > 0.5) if present[6] else None,
        acvpu=("V" if row[7] > 0.5 else "A") if present[7] else None,
        spo2_scale=scale,
    )


def check(values: np.ndarray, present: np.ndarray, scales: np.ndarray) -> None:
    batch = news2_batch(values, present, scales)
    for i in range(len(values)):
        one = scalar(values[i], present[i], int(scales[i]))
        assert batch.total[i] == one.total, (values[i], present[i], scales[i])
        assert batch.single3[i] == one.single3
        assert {p: int(s) for p, s, m in zip(PARAMETERS, batch.scores[i], batch.present[i]) if m} == one.scores


def test_every_band_edge_on_both_spo2_scales() -> None:
    edges = {
        0: [39.5, 40, 40.4, 40.5, 41, 50, 50.5, 51, 90, 91, 110, 111, 130, 131],  # hr
        1: [8, 8.5, 9, 11, 12, 20, 20.5, 21, 24, 25],  # rr
        2: [83, 84, 85, 86, 87, 88, 91, 92, 93, 94, 95, 96, 97, 100],  # spo2
        3: [34.9, 35.0, 35.04, 35.05, 35.1, 36.0, 36.1, 38.0, 38.1, 39.0, 39.1],  # temp
        4: [90, 91, 100, 101, 110, 111, 219, 219.5, 220],  # sbp
    }
    rows = []
    for column, values in edges.items():
        for value, o2, scale, alert in itertools.product(values, (0.0, 1.0), (1, 2), (0.0, 1.0)):
            row = np.array([70, 15, 97, 37.0, 120, 80, o2, alert], dtype=np.float32)
            row[column] = value
            rows.append((row, scale))
    values = np.stack([r for r, _ in rows])
    check(values, np.ones_like(values, dtype=bool), np.array([s for _, s in rows]))


def test_random_values_and_missing_parameters() -> None:
    rng = np.random.default_rng(0)
    n = 3000
    values = np.stack([
        rng.uniform(20, 200, n), rng.uniform(2, 45, n), rng.uniform(70, 100, n), rng.uniform(33, 41, n),
        rng.uniform(60, 240, n), rng.uniform(30, 120, n), rng.integers(0, 2, n), rng.integers(0, 2, n),
    ], axis=1).astype(np.float32)
    present = rng.random((n, 8)) < 0.8
    check(values, present, rng.integers(1, 3, n))
