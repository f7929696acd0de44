"""runtime.metrics.observe_many: the same histogram as one observe() per value."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
import pytest
from prometheus_client import CollectorRegistry, Histogram

from runtime.metrics import LATENCY_BUCKETS, observe_many

# Every bucket bound exactly (the edge observe() puts in the bucket itself), and around them.
VALUES = st.lists(st.one_of(st.sampled_from(LATENCY_BUCKETS), st.floats(0.0, 60.0, allow_nan=False)), max_size=200)


def _samples(observe: object, values: list[float]) -> dict[tuple[str, str], float]:
    registry = CollectorRegistry()
    histogram = Histogram("h_seconds", "test", ["stage"], buckets=LATENCY_BUCKETS, registry=registry).labels("score")
    observe(histogram, values)  # type: ignore[operator]
    return {(s.name, s.labels.get("le", "")): s.value for m in registry.collect() for s in m.samples if not s.name.endswith("_created")}


def _one_by_one(histogram: Histogram, values: list[float]) -> None:
    for v in values:
        histogram.observe(v)


@given(VALUES)
def test_observe_many_counts_every_value_in_the_bucket_observe_would(values: list[float]) -> None:
    one_by_one = _samples(_one_by_one, values)
    many = _samples(lambda h, v: observe_many(h, np.array(v, dtype=np.float64)), values)
    assert many.keys() == one_by_one.keys()
    for key, value in one_by_one.items():
        assert many[key] == (pytest.approx(value) if key[0] == "h_seconds_sum" else value), key


def test_observe_many_of_nothing_leaves_the_histogram_alone() -> None:
    assert _samples(lambda h, v: observe_many(h, np.array(v)), []) == _samples(_one_by_one, [])
