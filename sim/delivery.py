"""From measured slots to delivered readings: device clocks, network, retries, reordering.

A reading carries the device's own clock (a fixed offset of up to ±`max_skew_s` plus ±20 ppm
drift, and sub-second jitter of when in the slot it was taken). Delivery happens on the true
clock: network latency, store-and-forward bursts after an outage, an occasional reading held
back for minutes (it arrives after newer ones: the scorer will call it late) and an occasional
second delivery of the same reading (same device and seq: at-least-once retries).
"""

from __future__ import annotations

import numpy as np

from sim.columns import Columns
from sim.devices import DeviceConfig, Measured


def deliver(
    rng: np.random.Generator,
    measured: Measured,
    on_oxygen: np.ndarray,
    acvpu: np.ndarray,
    spo2_scale: np.ndarray,
    start_ms: int,
    interval_s: float,
    config: DeviceConfig,
) -> Columns:
    """Every slot with at least one vital, as readings in delivery order (ties by patient, seq)."""
    values = measured.values
    has_value = ~np.isnan(values).all(axis=0) & ~measured.down
    rows, cols = np.nonzero(has_value)  # patient-major: each device's readings in order
    r = rows.size
    step_ms = int(round(interval_s * 1000))
    jitter = rng.integers(0, min(step_ms, 1000), r)
    taken = start_ms + cols.astype(np.int64) * step_ms + jitter  # true clock
    drift = (measured.drift_ppm[rows] * 1e-6 * (taken - start_ms)).astype(np.int64)
    ts_ms = taken + measured.skew_ms[rows].astype(np.int64) + drift

    carrier = measured.buffered_until[rows, cols]
    held = carrier != cols  # store-and-forward: arrives with the burst after the outage
    arrival = np.where(held, start_ms + carrier.astype(np.int64) * step_ms + 1000, taken)
    latency = rng.uniform(*config.latency_ms, r).astype(np.int64)
    deliver_ms = arrival + latency
    late = rng.random(r) < config.reorder_rate
    deliver_ms = deliver_ms + np.where(late, (rng.uniform(1.0, 10.0, r) * 60_000).astype(np.int64), 0)

    twice = np.flatnonzero(rng.random(r) < config.duplicate_rate)
    source = np.concatenate([np.arange(r), twice])
    deliver_all = np.concatenate([deliver_ms, deliver_ms[twice] + (rng.uniform(0.5, 90.0, twice.size) * 1000).astype(np.int64)])
    duplicate = np.concatenate([np.zeros(r, dtype=bool), np.ones(twice.size, dtype=bool)])
    order = np.lexsort((duplicate, cols[source], rows[source], deliver_all))
    pick = source[order]
    pr, pc = rows[pick], cols[pick]

    def vital(v: int, dtype: type) -> np.ndarray:
        return values[v][pr, pc].astype(dtype)

    return Columns(
        patient=pr.astype(np.int32),
        seq=pc.astype(np.int64),
        ts_ms=ts_ms[pick],
        hr=vital(0, np.float32), rr=vital(1, np.float32), spo2=vital(2, np.float32),
        temp=np.round(vital(3, np.float64), 1), sbp=vital(4, np.float32), dbp=vital(5, np.float32),
        on_oxygen=on_oxygen[pr, pc].astype(np.int8),
        acvpu=acvpu[pr, pc].astype(np.int8),
        spo2_scale=spo2_scale[pr].astype(np.int8),
        deliver_ms=deliver_all[order],
        duplicate=duplicate[order],
        artefact=measured.artefact[pr, pc],
    )
