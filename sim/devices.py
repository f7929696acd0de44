"""Wearables: what of the true physiology a device reports, and what it gets wrong.

Reporting (docs/model.md, "The simulated ward"): HR, SpO2 and RR every slot (`interval_s`, default 60 s, the usual
IHE PCD-01 period; SensiumVitals reports every 2 min); temperature every `temp_interval_s`
(5 min); blood pressure from an automatic cuff hourly, at 4-hourly rounds, or never.

Loss, calibrated per patient to a target fraction drawn from a configured range (defaults are
Breteler 2020's wireless data loss, HR 6-27% and RR 13-34%; SpO2 and temperature ranges are
our assumption). A share of the HR loss is whole-device: long dropouts (patch off, off the
ward, battery: 1-3 h) and connectivity gaps of 2-60 min (Weenk 2017: connection failure was
70% of artefacts, all shorter than an hour); the rest is per sensor (probe/lead off) and, for
RR and SpO2, motion (impedance RR is motion-sensitive: BMJ Open 2015). Artefacts are values
that pass validation but are wrong: motion adds spurious HR, breaths and desaturations.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sim.physiology import DBP, HR, RR, SBP, SPO2, TEMP, episodes

# Reported ranges and resolution: wearables clip to what the sensor can read (inside the
# contract's accepted ranges) and report integers, temperature to 0.1 °C.
REPORTED = {HR: (25.0, 220.0), RR: (4.0, 60.0), SPO2: (60.0, 100.0), TEMP: (33.0, 42.5), SBP: (50.0, 250.0), DBP: (25.0, 150.0)}
FAST = (HR, RR, SPO2)
# Measurement noise (beat-to-beat variation, sensor error) per reading, VITALS order.
MEASUREMENT_SD = np.array([1.5, 1.0, 0.6, 0.05, 4.0, 3.0], dtype=np.float32)
SENSOR_EPISODE_MIN = {HR: (1.0, 15.0), RR: (1.0, 20.0), SPO2: (1.0, 30.0), TEMP: (5.0, 60.0)}


@dataclass(frozen=True)
class DeviceConfig:
    """Reporting intervals, loss ranges and delivery faults of the simulated wearables."""

    temp_interval_s: float = 300.0
    bp_schedule: tuple[tuple[float, float], ...] = ((3600.0, 0.4), (14400.0, 0.4), (0.0, 0.2))  # (interval_s or 0 = never, share)
    hr_loss: tuple[float, float] = (0.06, 0.27)  # Breteler 2020
    rr_loss: tuple[float, float] = (0.13, 0.34)  # Breteler 2020
    spo2_loss: tuple[float, float] = (0.08, 0.30)  # assumption: finger probes come off more than patches
    temp_loss: tuple[float, float] = (0.03, 0.15)  # assumption
    bp_failure: float = 0.05  # a cuff cycle that fails (motion, cuff off)
    device_share: float = 0.6  # of the HR loss, the share where the whole device is silent
    dropouts_per_day: float = 0.3
    dropout_h: tuple[float, float] = (1.0, 3.0)
    gap_min: tuple[float, float] = (2.0, 60.0)
    buffered_per_day: float = 1.0  # store-and-forward outages: delivered late in a burst, not lost
    buffered_min: tuple[float, float] = (5.0, 30.0)
    artefact_rate: float = 0.15  # per minute of moderate activity, per fast vital
    spike_rate: float = 0.002  # per minute at rest, per fast vital
    duplicate_rate: float = 0.005  # assumption: at-least-once retries after a lost acknowledgement
    reorder_rate: float = 0.003  # assumption: a reading held back 1-10 min, arriving after newer ones
    max_skew_s: float = 20.0  # device clock offset, uniform ±; plus ±20 ppm drift
    latency_ms: tuple[float, float] = (50.0, 1500.0)

    def __post_init__(self) -> None:
        for name in ("hr_loss", "rr_loss", "spo2_loss", "temp_loss"):
            lo, hi = getattr(self, name)
            if not 0.0 <= lo <= hi < 0.95:
                raise ValueError(f"{name}=({lo}, {hi}): expected 0 <= low <= high < 0.95")
        for name in ("bp_failure", "device_share", "artefact_rate", "spike_rate", "duplicate_rate", "reorder_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name}={getattr(self, name)}: expected 0-1")
        if self.temp_interval_s <= 0 or any(i < 0 or s < 0 for i, s in self.bp_schedule) or sum(s for _, s in self.bp_schedule) <= 0:
            raise ValueError(f"temp_interval_s={self.temp_interval_s}, bp_schedule={self.bp_schedule}: expected positive intervals and shares")


@dataclass(frozen=True)
class Measured:
    """What the devices report, before delivery: NaN where a vital is absent."""

    values: np.ndarray  # [V, N, T] float32
    scheduled: np.ndarray  # [V, N, T] bool: the device meant to report this vital in this slot
    down: np.ndarray  # [N, T] bool: whole device silent, nothing delivered
    buffered_until: np.ndarray  # [N, T] int: slot whose delivery carries this one (itself if live)
    artefact: np.ndarray  # [N, T] uint8: bit v set when vital v is an artefact
    skew_ms: np.ndarray  # [N] device clock offset at the start
    drift_ppm: np.ndarray  # [N]


def renewal_mask(rng: np.random.Generator, slots: int, frac: np.ndarray, length: tuple[float, float]) -> np.ndarray:
    """Alternating up/gap renewal process [N, T] whose long-run gap fraction is `frac` [N].

    Gap lengths are log-uniform in `length` (slots): many short gaps, some long ones.
    """
    n = len(frac)
    frac = np.clip(frac, 0.0, 0.9)
    lo, hi = max(length[0], 1.0), max(length[1], length[0], 1.0)
    mean_gap = (hi - lo) / np.log(hi / lo) if hi > lo else lo
    mean_up = mean_gap * (1.0 - frac) / np.maximum(frac, 1e-6)
    cycles = int(min(slots, np.ceil((slots / (mean_gap + mean_up)).max(initial=0.0) * 1.5 + 8)))
    gap = np.exp(rng.uniform(np.log(lo), np.log(hi), (n, cycles)))
    up = rng.exponential(1.0, (n, cycles)) * mean_up[:, None]
    up[:, 0] *= rng.random(n)  # start part-way through a cycle
    end = np.cumsum(up + gap, axis=1)
    start = (end - gap).astype(np.int64)
    end = end.astype(np.int64)
    live = (start < slots) & (frac[:, None] > 0)
    diff = np.zeros((n, slots + 1), dtype=np.int32)
    rows = np.broadcast_to(np.arange(n)[:, None], start.shape)
    np.add.at(diff, (rows[live], start[live]), 1)
    np.add.at(diff, (rows[live], np.minimum(end[live], slots)), -1)
    return np.cumsum(diff, axis=1)[:, :slots] > 0


def _loss_targets(rng: np.random.Generator, n: int, config: DeviceConfig) -> dict[int, np.ndarray]:
    # One device-quality draw per patient ties the vitals together: a poorly fitting patch loses
    # HR and RR alike.
    u = rng.random(n)
    targets = {}
    for vital, (lo, hi) in ((HR, config.hr_loss), (RR, config.rr_loss), (SPO2, config.spo2_loss), (TEMP, config.temp_loss)):
        q = u if vital == HR else np.clip(u + rng.normal(0.0, 0.15, n), 0.0, 1.0)
        targets[vital] = lo + q * (hi - lo)
    return targets


def _schedule(rng: np.random.Generator, n: int, slots: int, interval_s: float, config: DeviceConfig) -> np.ndarray:
    scheduled = np.zeros((6, n, slots), dtype=bool)
    scheduled[list(FAST)] = True
    t = np.arange(slots)[None, :]
    k_temp = max(1, int(round(config.temp_interval_s / interval_s)))
    scheduled[TEMP] = (t - rng.integers(0, k_temp, n)[:, None]) % k_temp == 0
    intervals = np.array([i for i, _ in config.bp_schedule])
    shares = np.array([s for _, s in config.bp_schedule], dtype=np.float64)
    k_bp = np.round(intervals[rng.choice(len(intervals), n, p=shares / shares.sum())] / interval_s).astype(np.int64)
    never = k_bp <= 0
    k_bp = np.maximum(k_bp, 1)
    scheduled[SBP] = ((t - rng.integers(0, 1 << 30, n)[:, None] % k_bp[:, None]) % k_bp[:, None] == 0) & ~never[:, None]
    scheduled[DBP] = scheduled[SBP]
    return scheduled


def measure(
    rng: np.random.Generator, truth: np.ndarray, activity: np.ndarray, interval_s: float, config: DeviceConfig
) -> Measured:
    """Sample, lose and corrupt the true vitals [V, N, T] as the configured wearables would."""
    _, n, slots = truth.shape
    per_min = 60.0 / interval_s
    per_day = interval_s / 86400.0
    scheduled = _schedule(rng, n, slots, interval_s, config)
    targets = _loss_targets(rng, n, config)

    # Whole-device silence: long dropouts, then connectivity gaps topping up to the device share.
    dropout = episodes(rng, slots, np.full(n, config.dropouts_per_day * per_day),
                       tuple(h * 60.0 * per_min for h in config.dropout_h), (1.0, 1.0)) > 0  # type: ignore[arg-type]
    long_frac = dropout.mean(axis=1)
    want = config.device_share * targets[HR]
    gaps = renewal_mask(rng, slots, np.clip((want - long_frac) / np.maximum(1.0 - long_frac, 0.05), 0.0, 0.9),
                        tuple(m * per_min for m in config.gap_min))  # type: ignore[arg-type]
    down = dropout | gaps
    w = down.mean(axis=1)

    present = scheduled & ~down[None]
    moving = activity > 0.3
    for vital, motion_p in ((HR, 0.0), (RR, 0.6), (SPO2, 0.3), (TEMP, 0.0)):
        motion = moving & (rng.random((n, slots)) < motion_p) if motion_p else np.zeros((n, slots), dtype=bool)
        m = (motion & ~down).sum(axis=1) / np.maximum((~down).sum(axis=1), 1)
        # Independent layers compose as 1 - (1-w)(1-m)(1-s) = target; solve for the sensor's own s.
        s = 1.0 - (1.0 - targets[vital]) / np.maximum((1.0 - w) * (1.0 - m), 1e-6)
        sensor = renewal_mask(rng, slots, np.clip(s, 0.0, 0.9), tuple(x * per_min for x in SENSOR_EPISODE_MIN[vital]))  # type: ignore[arg-type]
        present[vital] &= ~(sensor | motion)
    cuff_fails = rng.random((n, slots)) < config.bp_failure
    present[SBP] &= ~cuff_fails
    present[DBP] &= ~cuff_fails

    values = truth + rng.standard_normal(truth.shape, dtype=np.float32) * MEASUREMENT_SD[:, None, None]
    values[~present] = np.nan
    artefact = _artefacts(rng, values, activity, config)
    for vital, (lo, hi) in REPORTED.items():
        values[vital] = np.clip(values[vital], lo, hi)
        values[vital] = np.round(values[vital], 1 if vital == TEMP else 0)
    values[DBP] = np.minimum(values[DBP], values[SBP] - 10.0)

    buffered = episodes(rng, slots, np.full(n, config.buffered_per_day * per_day),
                        tuple(m * per_min for m in config.buffered_min), (1.0, 1.0)) > 0  # type: ignore[arg-type]
    buffered &= ~down
    # A buffered slot is delivered with the first live slot after its outage.
    index = np.where(buffered, slots, np.arange(slots)[None, :])
    buffered_until = np.minimum.accumulate(index[:, ::-1], axis=1)[:, ::-1]
    skew_ms = rng.uniform(-config.max_skew_s, config.max_skew_s, (n,)) * 1000.0
    drift_ppm = rng.uniform(-20.0, 20.0, (n,))
    return Measured(values, scheduled, down, buffered_until, artefact, skew_ms, drift_ppm)


def _artefacts(rng: np.random.Generator, values: np.ndarray, activity: np.ndarray, config: DeviceConfig) -> np.ndarray:
    """Corrupt present fast vitals in place (motion and spikes); returns the artefact bit mask."""
    _, n, slots = values.shape
    rate = np.where(activity > 0.25, config.artefact_rate, 0.0) + config.spike_rate
    bits = np.zeros((n, slots), dtype=np.uint8)
    for vital in FAST:
        hit = (rng.random((n, slots)) < rate) & ~np.isnan(values[vital])
        k = int(hit.sum())
        if vital == HR:
            # Motion counted as beats, or beats missed (halved rate).
            wrong = np.where(rng.random(k) < 0.8, values[vital][hit] + rng.uniform(15.0, 45.0, k), values[vital][hit] * 0.5)
        elif vital == RR:
            wrong = rng.uniform(28.0, 45.0, k)  # impedance pneumography counts movement as breaths
        else:
            wrong = values[vital][hit] - rng.uniform(5.0, 15.0, k)  # artefactual desaturation
        values[vital][hit] = wrong.astype(np.float32)
        bits[hit] |= np.uint8(1 << vital)
    return bits
