"""Scenario 3, the naive baseline: the same scorer, but the model is stepped once per message.

Everything else is the real `ScorerProcessor` (decoding, state table, NEWS2, one changelog row
per patient per batch, the same transactional shell): only the batching of the recurrent step
across patients is taken away, so the ratio isolates what batching buys.
"""

from __future__ import annotations

from dataclasses import replace

from inference.processor import ScorerProcessor


class NaiveScorerProcessor(ScorerProcessor):
    """One model step (batch size 1) per reading: every round of the batch's plan is split into
    rounds of one reading (a round holds at most one reading per patient, so the readings of a
    round do not depend on each other and the outputs are the same)."""

    stage = "bench-naive"

    def _plan(self, by_patient):  # type: ignore[no-untyped-def]  # noqa: ANN001, ANN202
        plan = super()._plan(by_patient)
        return replace(plan, rounds=[(i, i + 1) for a, b in plan.rounds for i in range(a, b)])
