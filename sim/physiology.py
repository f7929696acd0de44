"""Stable physiology, vectorised across patients: baselines, circadian rhythm, noise, activity.

Every array is shaped [patients, slots]; a slot is one device reporting interval on the true
(ward) clock. Vitals are carried in one float32 block `[V, N, T]` in `ingest.contract.VITALS`
order so the scenario, confounder and device layers can add to it in place.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ingest.contract import VITALS

HR, RR, SPO2, TEMP, SBP, DBP = range(len(VITALS))

# Liebermeister's rule: heart rate rises about 10 beats/min per °C of fever; breathing about 2/min.
HR_PER_DEGREE = 10.0
RR_PER_DEGREE = 2.0

# Autocorrelated physiological variation (Ornstein-Uhlenbeck): time constant (minutes) and
# stationary SD per vital. Chosen so that a stable patient's HR wanders ±5-8/min over an hour,
# as ward trend charts do. (Beat-to-beat and measurement noise is the device's: sim.devices.)
OU_TAU_MIN = np.array([30.0, 40.0, 20.0, 90.0, 60.0, 60.0])
OU_SD = np.array([3.5, 1.2, 0.7, 0.12, 6.0, 4.0])

# Circadian amplitude (half peak-to-trough); peak late afternoon, trough about 04:00. Systolic
# pressure dips ~10% at night, core temperature swings ~0.5 °C, HR ~10/min.
CIRCADIAN_AMP = np.array([5.0, 0.8, 0.3, 0.25, 7.0, 5.0])
CIRCADIAN_PEAK_H = 16.0

# What full activity (walking, physiotherapy; activity = 1) adds to each vital.
ACTIVITY_GAIN = np.array([30.0, 8.0, -1.0, 0.1, 12.0, 5.0])


@dataclass(frozen=True)
class Baselines:
    """Per-patient resting values at activity 0, circadian mean; arrays shaped [N]."""

    age: np.ndarray
    values: np.ndarray  # [V, N] in VITALS order
    circadian_shift_h: np.ndarray
    noise_scale: np.ndarray  # [V, N] multiplies OU and white noise (AF makes HR irregular)


def draw_baselines(rng: np.random.Generator, n: int) -> Baselines:
    """Adult ward patients: age-dependent blood pressure, individual resting values."""
    age = np.clip(rng.normal(64.0, 17.0, n), 18.0, 98.0)
    hr = 78.0 - 0.05 * (age - 60.0) + rng.normal(0.0, 8.0, n)
    rr = np.clip(rng.normal(15.5, 1.8, n), 11.5, 20.0)
    spo2 = np.clip(97.8 - 0.03 * (age - 40.0) + rng.normal(0.0, 0.8, n), 94.5, 99.5)
    temp = rng.normal(36.7, 0.22, n)
    # Systolic pressure climbs with age and pulse pressure widens (arterial stiffening).
    sbp = 108.0 + 0.42 * (age - 20.0) + rng.normal(0.0, 11.0, n)
    pulse_pressure = np.clip(38.0 + 0.35 * (age - 40.0) + rng.normal(0.0, 6.0, n), 25.0, 80.0)
    dbp = sbp - pulse_pressure
    values = np.stack([hr, rr, spo2, temp, sbp, dbp]).astype(np.float32)
    return Baselines(age, values, rng.normal(0.0, 1.0, n), np.ones((len(VITALS), n), dtype=np.float32))


def hour_of_day(slots: int, interval_s: float, admit_hour: float = 0.0) -> np.ndarray:
    """Ward clock hour of every slot, shape [T]; the stay starts at `admit_hour`.

    The body clock is tied to the stay, not to `start_ms`, so a live replay anchored to "now"
    gives the same vitals for a seed as an offline cohort: only the timestamps move.
    """
    return (admit_hour + np.arange(slots) * interval_s / 3600.0) % 24.0


def circadian(hours: np.ndarray, shift_h: np.ndarray) -> np.ndarray:
    """cos wave peaking at CIRCADIAN_PEAK_H + shift, shape [N, T]; times amplitude per vital."""
    phase = 2.0 * np.pi * (hours[None, :] - CIRCADIAN_PEAK_H - shift_h[:, None]) / 24.0
    return np.cos(phase).astype(np.float32)


def ou_noise(rng: np.random.Generator, n: int, slots: int, interval_s: float, scale: np.ndarray) -> np.ndarray:
    """Ornstein-Uhlenbeck noise per vital, shape [V, N, T], float32.

    The recursion runs over time with all patients and vitals as one vector, so the loop is
    T short NumPy steps whatever the cohort size.
    """
    v = len(VITALS)
    phi = np.exp(-interval_s / 60.0 / OU_TAU_MIN).astype(np.float32)[:, None]
    innovation = (OU_SD * np.sqrt(1.0 - phi[:, 0] ** 2)).astype(np.float32)[:, None]
    eps = rng.standard_normal((slots, v, n), dtype=np.float32)
    eps *= innovation
    out = np.empty((slots, v, n), dtype=np.float32)
    x = rng.standard_normal((v, n), dtype=np.float32) * OU_SD.astype(np.float32)[:, None]
    for t in range(slots):
        x = phi * x + eps[t]
        out[t] = x
    out = np.ascontiguousarray(out.transpose(1, 2, 0))  # [V, N, T]
    out *= scale[:, :, None]
    return out


def episodes(
    rng: np.random.Generator,
    slots: int,
    rate_per_slot: np.ndarray,
    length: tuple[float, float],
    level: tuple[float, float],
    accept: np.ndarray | None = None,
) -> np.ndarray:
    """Sum of rectangular episodes (Poisson starts, uniform length and level), shape [N, T].

    `accept` [T] thins starts by time of day (people walk by day and sleep at night).
    """
    n = len(rate_per_slot)
    counts = rng.poisson(rate_per_slot * slots)
    k = int(counts.max(initial=0))
    out = np.zeros((n, slots + 1), dtype=np.float32)
    if k == 0:
        return out[:, :slots]
    start = rng.integers(0, slots, (n, k))
    dur = np.maximum(1, rng.uniform(length[0], length[1], (n, k))).astype(np.int64)
    lvl = rng.uniform(level[0], level[1], (n, k)).astype(np.float32)
    keep = np.arange(k)[None, :] < counts[:, None]
    if accept is not None:
        keep &= rng.random((n, k)) < accept[start]
    rows = np.broadcast_to(np.arange(n)[:, None], (n, k))[keep]
    s, e, lv = start[keep], np.minimum(start[keep] + dur[keep], slots), lvl[keep]
    np.add.at(out, (rows, s), lv)
    np.add.at(out, (rows, e), -lv)
    return np.cumsum(out, axis=1)[:, :slots]


def daytime(hours: np.ndarray) -> np.ndarray:
    """1 between 07:00 and 22:00, 0.1 at night: patients move by day, rarely at night."""
    return np.where((hours >= 7.0) & (hours < 22.0), 1.0, 0.1)


def activity(rng: np.random.Generator, hours: np.ndarray, interval_s: float, exercise: np.ndarray) -> np.ndarray:
    """Activity level 0-1 per slot, shape [N, T]: posture changes and short walks for all,
    physiotherapy/walking sessions for the `exercise` confounder patients."""
    n, slots = len(exercise), len(hours)
    per_hour = interval_s / 3600.0  # hourly rates -> per-slot rates
    per_min = 60.0 / interval_s  # minutes -> slots
    accept = daytime(hours)
    # Posture changes, toilet trips: ~0.5 an hour by day, 2-10 minutes, light to moderate.
    base = episodes(rng, slots, np.full(n, 0.5 * per_hour), (2 * per_min, 10 * per_min), (0.15, 0.5), accept)
    # Exercise/physiotherapy: ~3 sessions in the 15 waking hours, 10-30 minutes, moderate to hard.
    rate = np.where(exercise, 3.0 / 15.0 * per_hour, 0.0)
    sessions = episodes(rng, slots, rate, (10 * per_min, 30 * per_min), (0.6, 1.0), accept)
    return np.clip(base + sessions, 0.0, 1.0)
