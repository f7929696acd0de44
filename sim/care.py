"""What the ward staff do: give oxygen, and chart oxygen and consciousness (ACVPU).

Wearables measure neither supplemental oxygen nor consciousness. Decision: both are
nurse-charted, at 4-hourly observation rounds (ward practice, docs/model.md) and whenever a
nurse notices a change (5-30 min after it). The bedside hub attaches the last charted values
to every reading it forwards, so `on_oxygen` and `acvpu` are present on every reading but lag
the patient by the charting delay, as in real charts.
"""

from __future__ import annotations

import numpy as np

SUSTAINED_MIN = 10.0  # a desaturation must last this long before a nurse starts oxygen


def oxygen(
    rng: np.random.Generator,
    spo2: np.ndarray,
    scale: np.ndarray,
    copd: np.ndarray,
    recovering_tau: np.ndarray,
    interval_s: float,
) -> np.ndarray:
    """True oxygen therapy [N, T] (bool); raises `spo2` [N, T] in place where oxygen starts.

    On oxygen from admission: half the COPD patients (controlled oxygen) and half the recovering
    ones (weaned as they recover), 4% of the others (post-operative). Started when SpO2 stays
    below target (92% on scale 1, 88% on scale 2) for 10 minutes, 5-20 minutes later.
    """
    n, slots = spo2.shape
    per_min = 60.0 / interval_s
    t = np.arange(slots)[None, :]
    recovering = recovering_tau > 0
    from_start = rng.random(n) < np.where(copd | recovering, 0.5, 0.04)
    weaned = np.where(recovering & from_start, 1.2 * recovering_tau, np.inf)
    on = from_start[:, None] & (t < weaned[:, None])

    target = np.where(scale == 2, 88.0, 92.0)[:, None]
    below = (spo2 < target) & ~on
    window = max(1, int(round(SUSTAINED_MIN * per_min)))
    run = np.cumsum(below, axis=1, dtype=np.int32)
    run[:, window:] -= run[:, :-window].copy()
    sustained = run >= window
    first = np.where(sustained.any(axis=1), sustained.argmax(axis=1), slots)
    start = first + (rng.uniform(5.0, 20.0, (n,)) * per_min).astype(np.int64)
    started = t >= start[:, None]
    # Oxygen lifts saturation by a few points within minutes; the disease keeps going underneath.
    # Scale-2 patients get controlled oxygen titrated to their 88-92% target, so a smaller lift.
    amount = np.where(scale == 2, rng.uniform(1.0, 2.5, n), rng.uniform(2.5, 5.0, n))
    lift = amount[:, None] * (1.0 - np.exp(-np.clip(t - start[:, None], 0, None) / (5.0 * per_min)))
    spo2 += np.where(started, lift, 0.0).astype(np.float32)
    return on | started


def chart(rng: np.random.Generator, truth: np.ndarray, interval_s: float, rounds_h: float = 4.0,
          delay_min: tuple[float, float] = (5.0, 30.0)) -> np.ndarray:
    """The charted value [N, T]: `truth` as of the last observation round or noticed change."""
    n, slots = truth.shape
    per_min = 60.0 / interval_s
    charted_at = np.zeros((n, slots), dtype=bool)
    charted_at[:, 0] = True  # admission observations
    period = max(1, int(round(rounds_h * 60.0 * per_min)))
    phase = rng.integers(0, period, (n,))
    charted_at |= (np.arange(slots)[None, :] - phase[:, None]) % period == 0
    rows, cols = np.nonzero(truth[:, 1:] != truth[:, :-1])
    noticed = cols + 1 + (rng.uniform(*delay_min, rows.size) * per_min).astype(np.int64)
    keep = noticed < slots
    charted_at[rows[keep], noticed[keep]] = True
    # Value at each slot: truth at the most recent charting time.
    last = np.maximum.accumulate(np.where(charted_at, np.arange(slots)[None, :], 0), axis=1)
    return np.take_along_axis(truth, last, axis=1)
