"""Cohorts of simulated patients and their wearables, deterministic for a seed.

`generate` returns readings in delivery order (what devices send) plus the ground-truth
deterioration events. This is the thin first version: stable patients wander around their
baseline; deteriorating ones drift towards shock over the hours before their event.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

DEFAULT_START_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z: fixed, so a seed gives the same bytes


@dataclass(frozen=True)
class CohortConfig:
    patients: int = 40
    hours: float = 12.0
    seed: int = 0
    start_ms: int = DEFAULT_START_MS
    interval_s: float = 60.0
    deteriorating_fraction: float = 0.25

    def __post_init__(self) -> None:
        if self.patients < 1:
            raise ValueError(f"patients={self.patients}: expected at least 1")
        if self.hours <= 0:
            raise ValueError(f"hours={self.hours}: expected more than 0")
        if not 0.0 <= self.deteriorating_fraction <= 1.0:
            raise ValueError(f"deteriorating_fraction={self.deteriorating_fraction}: expected 0-1")


@dataclass(frozen=True)
class Event:
    patient_id: str
    event_ts_ms: int
    scenario: str


@dataclass(frozen=True)
class Patient:
    patient_id: str
    device_id: str
    scenario: str  # "stable" or a deterioration scenario
    confounders: tuple[str, ...] = ()
    spo2_scale: int = 1


@dataclass
class Cohort:
    config: CohortConfig
    patients: list[Patient]
    readings: list[dict[str, object]]
    events: list[Event] = field(default_factory=list)


def patient_id(i: int) -> str:
    return f"P{i:05d}"


def generate(config: CohortConfig) -> Cohort:
    rng = np.random.default_rng(config.seed)
    n_steps = int(config.hours * 3600 / config.interval_s)
    step_ms = int(config.interval_s * 1000)
    patients: list[Patient] = []
    events: list[Event] = []
    series: list[dict[str, np.ndarray]] = []
    for i in range(config.patients):
        deteriorates = rng.random() < config.deteriorating_fraction
        pid = patient_id(i)
        patients.append(Patient(pid, f"D{i:05d}", "sepsis" if deteriorates else "stable"))
        base = {"hr": rng.normal(75, 8), "rr": rng.normal(15, 1.5), "spo2": rng.normal(97, 1), "temp": rng.normal(36.8, 0.3),
                "sbp": rng.normal(125, 10), "dbp": rng.normal(75, 7)}
        noise = {k: rng.normal(0, s, n_steps).cumsum() * 0.05 + rng.normal(0, s, n_steps) for k, s in
                 (("hr", 2), ("rr", 0.8), ("spo2", 0.5), ("temp", 0.05), ("sbp", 3), ("dbp", 2))}
        values = {k: base[k] + noise[k] for k in base}
        if deteriorates:
            event_step = int(rng.uniform(0.5, 0.95) * n_steps)
            onset = max(0, event_step - int(rng.uniform(3, 6) * 3600 / config.interval_s))
            ramp = np.clip((np.arange(n_steps) - onset) / max(1, event_step - onset), 0, None)
            values["hr"] = values["hr"] + 45 * ramp
            values["rr"] = values["rr"] + 12 * ramp
            values["spo2"] = values["spo2"] - 6 * ramp
            values["temp"] = values["temp"] + 1.8 * ramp
            values["sbp"] = values["sbp"] - 35 * ramp
            events.append(Event(pid, config.start_ms + event_step * step_ms, "sepsis"))
        series.append(values)
    readings: list[dict[str, object]] = []
    for t in range(n_steps):
        for i, p in enumerate(patients):
            v = series[i]
            reading: dict[str, object] = {
                "patient_id": p.patient_id, "device_id": p.device_id, "seq": t,
                "ts_ms": config.start_ms + t * step_ms + i * 7,
                "hr": round(float(np.clip(v["hr"][t], 20, 300)), 1),
                "rr": round(float(np.clip(v["rr"][t], 2, 80)), 1),
                "spo2": round(float(np.clip(v["spo2"][t], 50, 100)), 1),
                "temp": round(float(np.clip(v["temp"][t], 25, 45)), 1) if t % 5 == 0 else None,
                "sbp": round(float(np.clip(v["sbp"][t], 40, 300)), 1) if t % 15 == 0 else None,
                "dbp": round(float(np.clip(v["dbp"][t], 20, 200)), 1) if t % 15 == 0 else None,
                "on_oxygen": False, "acvpu": "A", "spo2_scale": p.spo2_scale,
            }
            readings.append(reading)
    return Cohort(config, patients, readings, events)
