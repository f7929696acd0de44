"""Deterioration scenarios: what changes, how fast, and when the rapid-response team is called.

Each deteriorating patient gets one scenario, an onset, an event time (the ground-truth label:
the moment a rapid-response team would be called) and a severity. Between onset and event the
scenario's progress r rises 0 → 1; each vital moves by `delta · severity · r**exponent`, so
some signs lead (fever and tachycardia in sepsis) and others fall late (blood pressure holds
until compensation fails in haemorrhage). After the event the team treats the patient and the
changes decay with the scenario's treatment time constant (naloxone acts in minutes, fluids
and antibiotics over hours), so live streams do not end in a cliff.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sim.physiology import DBP, HR, RR, SBP, SPO2, TEMP

# ACVPU codes, in ingest.contract.ACVPU_LEVELS order: worse is larger.
A, C, V, P, U = range(5)


@dataclass(frozen=True)
class Effect:
    """One vital's change at the event (before severity), and how late in the course it bites.

    With probability `alt_prob` a patient gets `alt_delta` instead (sepsis: hypothermia).
    """

    vital: int
    delta: float
    exponent: float = 1.0
    alt_delta: float = 0.0
    alt_prob: float = 0.0


@dataclass(frozen=True)
class Confusion:
    """With `probability`, consciousness drops to `level` once progress reaches `threshold`."""

    level: int
    threshold: float
    probability: float


@dataclass(frozen=True)
class Scenario:
    name: str
    duration_h: tuple[float, float]  # onset to event: how fast it unfolds
    treatment_tau_h: tuple[float, float]  # decay after the team arrives
    effects: tuple[Effect, ...]
    confusion: tuple[Confusion, ...] = ()


# Temperature deltas feed the fever coupling (HR +10/°C), so HR deltas here are what remains.
SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        "sepsis", (4.0, 12.0), (3.0, 8.0),
        (Effect(TEMP, 1.9, 0.7, alt_delta=-1.1, alt_prob=0.2), Effect(HR, 24.0, 1.2), Effect(RR, 8.0, 1.3),
         Effect(SBP, -30.0, 2.0), Effect(DBP, -18.0, 2.0), Effect(SPO2, -2.5, 1.5)),
        (Confusion(C, 0.75, 0.4),),
    ),
    Scenario(
        "respiratory_failure", (3.0, 10.0), (2.0, 6.0),
        (Effect(SPO2, -11.0, 1.2), Effect(RR, 13.0, 1.2), Effect(HR, 20.0, 1.3), Effect(SBP, 6.0, 1.0),
         Effect(TEMP, 0.8, 1.0, alt_delta=0.0, alt_prob=0.5)),
        (Confusion(C, 0.85, 0.3),),
    ),
    Scenario(
        "haemorrhage", (1.0, 4.0), (1.0, 3.0),
        (Effect(HR, 42.0, 1.1), Effect(SBP, -40.0, 2.5), Effect(DBP, -22.0, 2.2), Effect(RR, 7.0, 1.5),
         Effect(SPO2, -1.5, 2.0), Effect(TEMP, -0.4, 1.0)),
        (Confusion(C, 0.9, 0.3),),
    ),
    Scenario(
        "opioid", (1.5, 5.0), (0.2, 0.6),
        (Effect(RR, -8.0, 1.3), Effect(SPO2, -8.0, 1.6), Effect(HR, -10.0, 1.0), Effect(SBP, -14.0, 1.2),
         Effect(DBP, -8.0, 1.2)),
        (Confusion(V, 0.5, 1.0), Confusion(P, 0.92, 0.25)),
    ),
)
SCENARIO_NAMES: tuple[str, ...] = tuple(s.name for s in SCENARIOS)
DEFAULT_MIX: tuple[tuple[str, float], ...] = (
    ("sepsis", 0.35), ("respiratory_failure", 0.25), ("haemorrhage", 0.2), ("opioid", 0.2),
)
SEVERITY = (0.6, 1.25)
TREATMENT_LAG_H = 0.5  # the team arrives and treatment starts to work about half an hour after the call


@dataclass(frozen=True)
class Courses:
    """Per-patient course, arrays shaped [N]; -1 for stable patients."""

    scenario: np.ndarray  # index into SCENARIOS
    onset_slot: np.ndarray
    event_slot: np.ndarray
    severity: np.ndarray

    @property
    def deteriorating(self) -> np.ndarray:
        return self.scenario >= 0


def draw_courses(
    rng: np.random.Generator, n: int, slots: int, interval_s: float, fraction: float, mix: tuple[tuple[str, float], ...]
) -> Courses:
    """Who deteriorates, with what, and when; at least an hour of baseline precedes every onset."""
    names = [name for name, _ in mix]
    unknown = sorted(set(names) - set(SCENARIO_NAMES))
    if unknown:
        raise ValueError(f"scenario_mix names {unknown}: expected some of {', '.join(SCENARIO_NAMES)}")
    weights = np.array([w for _, w in mix], dtype=np.float64)
    if weights.sum() <= 0 or (weights < 0).any():
        raise ValueError(f"scenario_mix weights {weights.tolist()}: expected non-negative with a positive sum")
    per_hour = 3600.0 / interval_s
    deteriorates = rng.random(n) < fraction
    picked = rng.choice(len(names), size=n, p=weights / weights.sum())
    codes = np.array([SCENARIO_NAMES.index(x) for x in names])
    scenario = np.where(deteriorates, codes[picked], -1)
    lo = np.array([SCENARIOS[max(s, 0)].duration_h[0] for s in scenario])
    hi = np.array([SCENARIOS[max(s, 0)].duration_h[1] for s in scenario])
    duration_h = rng.uniform(lo, hi)
    stay_h = slots / per_hour
    latest_h = 0.95 * stay_h
    baseline_h = min(1.0, 0.3 * latest_h)
    duration_h = np.minimum(duration_h, latest_h - baseline_h)  # short stays squeeze the course
    # min(): baseline_h + (latest_h - baseline_h) can round one ulp above latest_h, which uniform() rejects.
    event_h = rng.uniform(np.minimum(baseline_h + duration_h, latest_h), latest_h)
    event_slot = np.where(deteriorates, (event_h * per_hour).astype(np.int64), -1)
    onset_slot = np.where(deteriorates, ((event_h - duration_h) * per_hour).astype(np.int64), -1)
    severity = np.where(deteriorates, rng.uniform(*SEVERITY, n), 0.0)
    return Courses(scenario, onset_slot, event_slot, severity)


def progress(courses: Courses, rows: np.ndarray, slots: int, interval_s: float, rng: np.random.Generator) -> np.ndarray:
    """Progress [len(rows), T]: 0 before onset, r in 0-1 up to the event, then decaying with treatment."""
    t = np.arange(slots, dtype=np.float32)[None, :]
    onset = courses.onset_slot[rows, None].astype(np.float32)
    event = courses.event_slot[rows, None].astype(np.float32)
    r = np.clip((t - onset) / np.maximum(event - onset, 1.0), 0.0, 1.0)
    per_hour = 3600.0 / interval_s
    tau = np.array([rng.uniform(*SCENARIOS[courses.scenario[i]].treatment_tau_h) for i in rows]) * per_hour
    after = np.clip(t - event - TREATMENT_LAG_H * per_hour, 0.0, None)
    decay = np.exp(-after / tau[:, None].astype(np.float32))
    return np.where(t <= event, r, decay).astype(np.float32)


def apply(
    courses: Courses, drive: np.ndarray, acvpu: np.ndarray, slots: int, interval_s: float, rng: np.random.Generator
) -> None:
    """Add every deteriorating patient's scenario to `drive` [V, N, T] and `acvpu` [N, T] in place."""
    for index, scenario in enumerate(SCENARIOS):
        rows = np.flatnonzero(courses.scenario == index)
        if rows.size == 0:
            continue
        pr = progress(courses, rows, slots, interval_s, rng)
        before = np.arange(slots)[None, :] <= courses.event_slot[rows, None]
        sev = courses.severity[rows].astype(np.float32)
        for effect in scenario.effects:
            # Patient-to-patient variation in each sign on top of the overall severity.
            delta = effect.delta * rng.uniform(0.8, 1.2, rows.size)
            if effect.alt_prob > 0:
                delta = np.where(rng.random(rows.size) < effect.alt_prob, effect.alt_delta, delta)
            shaped = np.where(before, pr ** effect.exponent, pr)  # the shape is the onset's; treatment decays all alike
            drive[effect.vital, rows] += (delta * sev).astype(np.float32)[:, None] * shaped
        for rule in scenario.confusion:
            hit = rng.random(rows.size) < rule.probability
            level = np.where(hit[:, None] & (pr >= rule.threshold), rule.level, A).astype(np.int8)
            acvpu[rows] = np.maximum(acvpu[rows], level)
