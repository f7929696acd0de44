"""Cohorts of simulated ward patients and their wearables, deterministic for a seed.

`generate(config)` builds the whole cohort as NumPy arrays, vectorised across patients:

1. physiology (`sim.physiology`): age-dependent baselines, circadian rhythm, Ornstein-Uhlenbeck
   noise, activity; fever raises HR and RR, activity raises HR, RR and BP;
2. deterioration (`sim.scenarios`): sepsis, respiratory failure, haemorrhage, opioid respiratory
   depression, each with an onset, a severity and an event time (the ground-truth label);
3. confounders (`sim.confounders`): COPD on NEWS2 scale 2, chronic tachycardia, transient fever,
   recovering patients, exercise;
4. care (`sim.care`): oxygen started on desaturation; ACVPU and oxygen charted by nurses;
5. devices (`sim.devices`, `sim.delivery`): reporting intervals, loss, artefacts, clock skew,
   duplicates and out-of-order delivery.

The result has three views: `cohort.columns` (`sim.columns.Columns`, one array per field in
delivery order: the fast path for training), `cohort.readings` (reading-contract dicts in
delivery order, built on first use) and `cohort.truth` (the noise-free-of-devices physiology
per slot, for tests and plots). Same seed and config give the same arrays, so the same bytes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from sim import care, confounders, delivery, devices, physiology, scenarios
from sim.columns import Columns
from sim.confounders import CONFOUNDERS, ConfounderRates
from sim.devices import DeviceConfig
from sim.physiology import DBP, HR, RR, SBP, SPO2, TEMP
from sim.scenarios import DEFAULT_MIX, SCENARIO_NAMES

DEFAULT_START_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z: fixed, so a seed gives the same bytes

# Physiological limits of the true state (a living ward patient), before any device clipping.
TRUTH_LIMITS = {HR: (25.0, 230.0), RR: (3.0, 70.0), SPO2: (55.0, 100.0), TEMP: (32.0, 43.0), SBP: (45.0, 260.0), DBP: (22.0, 160.0)}


@dataclass(frozen=True)
class CohortConfig:
    """What to simulate. The default deteriorating fraction (25%) is enriched for demos and
    training; real wards see about 0.02 deteriorations per patient-day (docs/model.md)."""

    patients: int = 40
    hours: float = 12.0
    seed: int = 0
    start_ms: int = DEFAULT_START_MS
    interval_s: float = 60.0
    deteriorating_fraction: float = 0.25
    scenario_mix: tuple[tuple[str, float], ...] = DEFAULT_MIX
    confounders: ConfounderRates = ConfounderRates()
    devices: DeviceConfig = DeviceConfig()

    def __post_init__(self) -> None:
        if self.patients < 1:
            raise ValueError(f"patients={self.patients}: expected at least 1")
        if self.hours <= 0:
            raise ValueError(f"hours={self.hours}: expected more than 0")
        if not 0.0 <= self.deteriorating_fraction <= 1.0:
            raise ValueError(f"deteriorating_fraction={self.deteriorating_fraction}: expected 0-1")
        if not 1.0 <= self.interval_s <= 3600.0:
            raise ValueError(f"interval_s={self.interval_s}: expected 1-3600 seconds")
        if self.slots < 1:
            raise ValueError(f"hours={self.hours} at interval_s={self.interval_s}: expected at least one reporting interval")

    @property
    def slots(self) -> int:
        """Reporting intervals in the stay."""
        return int(self.hours * 3600.0 / self.interval_s)

    @property
    def step_ms(self) -> int:
        return int(round(self.interval_s * 1000))


@dataclass(frozen=True)
class Event:
    """A ground-truth deterioration: when the rapid-response team would be called."""

    patient_id: str
    event_ts_ms: int
    scenario: str
    onset_ts_ms: int | None = None
    severity: float | None = None


@dataclass(frozen=True)
class Patient:
    patient_id: str
    device_id: str
    scenario: str  # "stable" or a deterioration scenario
    confounders: tuple[str, ...] = ()
    spo2_scale: int = 1
    age: int = 0


@dataclass(frozen=True)
class Truth:
    """The patient's real state per slot (true clock), before the devices; arrays [N, T]."""

    vitals: np.ndarray  # [V, N, T] float32 in VITALS order
    activity: np.ndarray  # 0-1
    acvpu: np.ndarray  # int8 index into ACVPU_LEVELS
    on_oxygen: np.ndarray  # bool
    measured: devices.Measured  # what the devices reported per slot, before delivery

    def slot_ms(self, config: CohortConfig) -> np.ndarray:
        """True time of every slot, [T]."""
        return config.start_ms + np.arange(self.vitals.shape[2], dtype=np.int64) * config.step_ms


@dataclass
class Cohort:
    config: CohortConfig
    patients: list[Patient]
    columns: Columns
    events: list[Event] = field(default_factory=list)
    truth: Truth | None = None

    @cached_property
    def readings(self) -> list[dict[str, object]]:
        """Reading-contract dicts in delivery order (absent vitals None), built on first use."""
        return self.columns.to_readings([p.patient_id for p in self.patients], [p.device_id for p in self.patients])


def patient_id(i: int) -> str:
    return f"P{i:05d}"


def device_id(i: int) -> str:
    return f"D{i:05d}"


def generate(config: CohortConfig) -> Cohort:
    """Simulate the cohort; the same config (seed included) gives the same cohort."""
    # One independent stream per concern, so changing how one layer draws leaves the others alone.
    rng_patients, rng_courses, rng_activity, rng_noise, rng_confounders, rng_care, rng_devices, rng_network = (
        np.random.default_rng(s) for s in np.random.SeedSequence(config.seed).spawn(8)
    )
    n, slots, interval = config.patients, config.slots, config.interval_s

    base = physiology.draw_baselines(rng_patients, n)
    flags = confounders.draw_flags(rng_patients, n, config.confounders)
    confounders.adjust_baselines(rng_patients, flags, base)
    courses = scenarios.draw_courses(rng_courses, n, slots, interval, config.deteriorating_fraction, config.scenario_mix)
    hours = physiology.hour_of_day(slots, interval)  # stays start at midnight ward time
    activity = physiology.activity(rng_activity, hours, interval, flags["exercise"])

    drive = np.zeros((6, n, slots), dtype=np.float32)  # departures from the patient's usual state
    acvpu = np.zeros((n, slots), dtype=np.int8)
    scenarios.apply(courses, drive, acvpu, slots, interval, rng_courses)
    recovering_tau = confounders.add_drives(rng_confounders, flags, drive, interval)

    vitals = physiology.ou_noise(rng_noise, n, slots, interval, base.noise_scale)
    vitals += base.values[:, :, None]
    vitals += physiology.CIRCADIAN_AMP.astype(np.float32)[:, None, None] * physiology.circadian(hours, base.circadian_shift_h)[None]
    vitals += physiology.ACTIVITY_GAIN.astype(np.float32)[:, None, None] * activity[None]
    vitals[SPO2] -= np.where(flags["copd"][:, None], 3.0, 0.0).astype(np.float32) * activity  # exertional desaturation
    vitals += drive
    fever = np.maximum(drive[TEMP], 0.0)
    vitals[HR] += physiology.HR_PER_DEGREE * fever
    vitals[RR] += physiology.RR_PER_DEGREE * fever
    del drive, fever

    scale = np.where(flags["copd"], 2, 1)
    on_oxygen = care.oxygen(rng_care, vitals[SPO2], scale, flags["copd"], recovering_tau, interval)
    for vital, (lo, hi) in TRUTH_LIMITS.items():
        np.clip(vitals[vital], lo, hi, out=vitals[vital])
    vitals[DBP] = np.minimum(vitals[DBP], vitals[SBP] - 15.0)
    charted_oxygen = care.chart(rng_care, on_oxygen.astype(np.int8), interval, delay_min=(0.0, 10.0))
    charted_acvpu = care.chart(rng_care, acvpu, interval)

    measured = devices.measure(rng_devices, vitals, activity, interval, config.devices)
    columns = delivery.deliver(rng_network, measured, charted_oxygen, charted_acvpu, scale, config.start_ms, interval, config.devices)

    names = [tuple(c for c in CONFOUNDERS if flags[c][i]) for i in range(n)]
    patients = [
        Patient(patient_id(i), device_id(i), SCENARIO_NAMES[s] if s >= 0 else "stable", names[i], int(scale[i]), int(base.age[i]))
        for i, s in enumerate(courses.scenario.tolist())
    ]
    events = [
        Event(patient_id(i), config.start_ms + int(courses.event_slot[i]) * config.step_ms, SCENARIO_NAMES[courses.scenario[i]],
              config.start_ms + int(courses.onset_slot[i]) * config.step_ms, round(float(courses.severity[i]), 3))
        for i in np.flatnonzero(courses.deteriorating).tolist()
    ]
    truth = Truth(vitals, activity, acvpu, on_oxygen, measured)
    return Cohort(config, patients, columns, events, truth)
