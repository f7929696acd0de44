"""The naive baseline of the benchmarks (bench/naive.py) is what its name says: the scorer with
one model step per reading, and the same outputs."""

from __future__ import annotations

import numpy as np

from bench.naive import NaiveScorerProcessor
from inference.processor import ScorerProcessor, ScorerSettings
from inference.step import OnnxStep
from runtime.metrics import StreamMetrics, new_registry
from tests.support.equivalence import RISK_ABS_TOLERANCE
from tests.test_scorer import exported, make_readings, records, risks, run_in_batches, torch_model


class CountingStep:
    """A model step that counts its calls and the readings in each."""

    def __init__(self, inner: OnnxStep) -> None:
        self._inner = inner
        self.calls: list[int] = []

    def step(self, state, *args):  # noqa: ANN001, ANN002, ANN201
        self.calls.append(len(state))
        return self._inner.step(state, *args)

    def __getattr__(self, name: str):  # noqa: ANN204
        return getattr(self._inner, name)


def _counted(naive: bool) -> tuple[ScorerProcessor, CountingStep]:
    step = CountingStep(OnnxStep(exported("gru"), torch_model("gru").config))
    cls = NaiveScorerProcessor if naive else ScorerProcessor
    return cls(step, "gru-test", StreamMetrics(new_registry(), "score"), ScorerSettings(explain="off")), step


def test_the_naive_baseline_steps_once_per_reading_and_scores_like_the_scorer() -> None:
    readings = make_readings(patients=8, steps=12, seed=5)
    items = records(readings)
    naive, naive_steps = _counted(naive=True)
    scorer, scorer_steps = _counted(naive=False)
    got = risks(run_in_batches(naive, items, [64]))
    want = risks(run_in_batches(scorer, items, [64]))
    assert set(naive_steps.calls) == {1} and len(naive_steps.calls) == len(readings)
    assert max(scorer_steps.calls) > 1 and len(scorer_steps.calls) < len(readings) / 2
    assert got.keys() == want.keys() and len(got) == len(readings)
    np.testing.assert_allclose([got[k] for k in want], [want[k] for k in want], rtol=0, atol=RISK_ABS_TOLERANCE)
