"""Scenario 3, the naive baseline: the same scorer, but the model is stepped once per message.

Everything else is the real `ScorerProcessor` (decoding, state table, one changelog row per
patient per batch, the same transactional shell): only the cross-patient batching of the
recurrent step (and of NEWS2) is taken away, so the ratio isolates what batching buys.
"""

from __future__ import annotations

from inference.processor import ScorerProcessor
from runtime.records import OutRecord


class NaiveScorerProcessor(ScorerProcessor):
    """One model step (batch size 1) per reading."""

    stage = "bench-naive"

    def _round(self, items, changed: dict[str, int]) -> list[OutRecord]:  # type: ignore[override]
        out: list[OutRecord] = []
        for item in items:
            out.extend(super()._round([item], changed))
        return out
