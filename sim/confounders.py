"""Confounders: patients whose vitals look abnormal, or change, without deteriorating.

They are what makes fixed thresholds alarm wrongly (docs/alerts.md: most monitor alarms are
non-actionable) and what a learned model has to see past. A patient may have several, and a
deteriorating patient may have them too (a COPD patient can still get sepsis).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from sim.physiology import HR, RR, SBP, SPO2, TEMP, Baselines


@dataclass(frozen=True)
class ConfounderRates:
    """Fraction of patients with each confounder (independent draws)."""

    copd: float = 0.08  # chronic hypoxaemia, prescribed SpO2 target 88-92%, NEWS2 scale 2
    chronic_tachycardia: float = 0.06  # e.g. rate-controlled AF, thyrotoxicosis: HR 100-118 at rest
    transient_fever: float = 0.10  # a fever that peaks and resolves (post-op, transfusion, drug)
    recovering: float = 0.12  # admitted unwell, vitals normalising over the stay
    exercise: float = 0.25  # mobilising: walks and physiotherapy raise HR/RR for 10-30 min

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"confounder rate {f.name}={value}: expected 0-1")


CONFOUNDERS: tuple[str, ...] = tuple(f.name for f in fields(ConfounderRates))


def draw_flags(rng: np.random.Generator, n: int, rates: ConfounderRates) -> dict[str, np.ndarray]:
    """One boolean array [N] per confounder, in CONFOUNDERS order."""
    return {name: rng.random(n) < getattr(rates, name) for name in CONFOUNDERS}


def adjust_baselines(rng: np.random.Generator, flags: dict[str, np.ndarray], base: Baselines) -> None:
    """Chronic conditions move the resting values themselves (in place)."""
    n = base.values.shape[1]
    copd = flags["copd"]
    # Target 88-92% (BTS oxygen guideline); COPD breathes faster and a little tachycardic.
    base.values[SPO2] = np.where(copd, rng.uniform(88.5, 91.5, n), base.values[SPO2])
    base.values[RR] = np.where(copd, base.values[RR] + rng.uniform(2.0, 5.0, n), base.values[RR])
    base.values[HR] = np.where(copd, base.values[HR] + 5.0, base.values[HR])
    tachy = flags["chronic_tachycardia"]
    base.values[HR] = np.where(tachy, rng.uniform(100.0, 118.0, n), base.values[HR])
    # Irregular rhythm: HR wanders more (wearable HR is unreliable in AF, docs/model.md).
    base.noise_scale[HR] = np.where(tachy, 1.8, 1.0)


def add_drives(
    rng: np.random.Generator, flags: dict[str, np.ndarray], drive: np.ndarray, interval_s: float
) -> np.ndarray:
    """Transient fever and recovery trajectories added to `drive` [V, N, T] in place.

    Returns each recovering patient's recovery time constant in slots ([N], 0 for others), for
    weaning oxygen.
    """
    _, n, slots = drive.shape
    per_hour = 3600.0 / interval_s
    t = np.arange(slots, dtype=np.float32)[None, :]

    rows = np.flatnonzero(flags["transient_fever"])
    if rows.size:
        # Rise 1-2 h, plateau 1-4 h, defervescence 1-3 h; squeezed to fit short stays, so it resolves.
        rise, plateau, fall = (rng.uniform(a, b, rows.size) * per_hour for a, b in ((1, 2), (1, 4), (1, 3)))
        total = rise + plateau + fall
        squeeze = np.minimum(1.0, 0.85 * slots / total)
        rise, plateau, fall, total = rise * squeeze, plateau * squeeze, fall * squeeze, total * squeeze
        start = rng.uniform(0.0, 1.0, rows.size) * np.maximum(slots - total, 0.0)
        peak = rng.uniform(1.0, 2.0, rows.size)
        x = t - start[:, None]
        shape = np.clip(np.minimum(x / rise[:, None], (total[:, None] - x) / fall[:, None]), 0.0, 1.0)
        drive[TEMP, rows] += (peak[:, None] * shape).astype(np.float32)

    tau = np.zeros(n)
    rows = np.flatnonzero(flags["recovering"])
    if rows.size:
        tau[rows] = rng.uniform(4.0, 16.0, rows.size) * per_hour
        fade = np.exp(-t / tau[rows, None]).astype(np.float32)
        for vital, (lo, hi) in ((HR, (15.0, 30.0)), (RR, (3.0, 6.0)), (TEMP, (0.3, 1.0)), (SPO2, (-3.0, -1.0)), (SBP, (-12.0, -5.0))):
            drive[vital, rows] += rng.uniform(lo, hi, rows.size).astype(np.float32)[:, None] * fade
    return tau
