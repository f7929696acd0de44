"""The scorer's batch as it was stepped before the batch plan: the baseline of bench/batching.py.

`RoundByRound` is `inference.processor.ScorerProcessor` with `process` as it was until the
scorer planned each batch whole: round k (the k-th reading of every patient) built its own model
inputs, gathered its patients' state from the state table and scattered it back, and computed
NEWS2 and records on its own. Kept here, unchanged, so that one run measures both; only the
explanations are the scorer's own `_explain`, fed the round's rows (the same arithmetic, and
`bench.batching.same_output` checks both paths write the same bytes).
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np

from ingest import Reading, Reason
from inference import explain
from inference.features import model_inputs, remember
from inference.news2_batch import news2_batch
from inference.processor import STAGE, ScorerProcessor
from inference.state.table import NEVER
from runtime.records import JSON_HEADERS, InRecord, OutRecord, dead_letter
from runtime.topics import RISK, VITALS_DLQ


class RoundByRound(ScorerProcessor):
    """The scorer core with the round-by-round batch (the path before the batch plan)."""

    def process(self, records: Sequence[InRecord]) -> list[OutRecord]:
        out, by_patient = self._by_patient(records)
        changed: dict[str, int] = {}  # patient id -> partition
        queues = list(by_patient.items())
        k = 0
        while queues:
            round_items = [(pid, items[k]) for pid, items in queues]
            out.extend(self._round_by_round(round_items, changed))
            k += 1
            queues = [(pid, items) for pid, items in queues if len(items) > k]
        return self._close_batch(out, changed)

    def _round_by_round(self, items: list[tuple[str, tuple[InRecord, Reading]]], changed: dict[str, int]) -> list[OutRecord]:
        """Apply one reading per patient, all patients in one model step."""
        table = self.table
        out: list[OutRecord] = []
        rows: list[int] = []
        applied: list[tuple[InRecord, Reading]] = []
        for patient_id, (record, reading) in items:
            row = table.row_of(patient_id, record.partition)
            last = int(table.last_ts[row])
            if last != NEVER and reading.ts_ms < last:
                self.metrics.reject(Reason.LATE.value)
                out.append(
                    dead_letter(
                        VITALS_DLQ, record, stage=STAGE, reason=Reason.LATE.value,
                        detail=f"ts_ms={reading.ts_ms} is {last - reading.ts_ms} ms older than the last applied reading",
                    )
                )
                continue
            if last != NEVER and reading.ts_ms - last > self.settings.idle_timeout_ms:
                table.reset(row)  # same outcome whether or not eviction already ran
            rows.append(row)
            applied.append((record, reading))
        if not rows:
            return out

        idx = np.asarray(rows, dtype=np.int64)
        readings = [reading for _record, reading in applied]
        seen = table.seen_ts[idx]
        x = model_inputs(readings, seen, table.last_values[idx])
        ts = x.ts_ms
        scales = np.fromiter((r.spo2_scale for r in readings), dtype=np.int8, count=len(readings))
        before = table.hidden[idx]  # a copy: the state before this reading, for the occlusion steps
        previous_ts = table.last_ts[idx]
        # The trend grid moves with event time, from the values as they stood before this reading.
        table.trend_refs[idx] = explain.rotate(
            table.trend_refs[idx], previous_ts, ts, x.last_values, seen, table.last_risk[idx], self.settings.news2_max_age_ms
        )
        started = time.perf_counter()
        state, risks = self.model.step(before, *x.step_args())
        table.hidden[idx] = state
        self.scorer_metrics.inference_seconds.observe(time.perf_counter() - started)
        table.last_risk[idx] = risks
        table.seen_ts[idx], table.last_values[idx] = remember(x, seen)
        table.last_ts[idx] = ts

        now_ms = self.clock() * 1000.0
        table.spo2_scale[idx] = scales
        # NEWS2 for the whole round at once, from each patient's values still fresh enough.
        fresh = table.seen_ts[idx] >= (ts - self.settings.news2_max_age_ms)[:, None]
        scores = news2_batch(table.last_values[idx], fresh, scales)
        totals = scores.total.tolist()
        single3 = scores.single3.tolist()
        parameter_scores = np.where(scores.present, scores.scores, -1).tolist()
        risk_values = risks.tolist()
        chosen = np.nonzero(self._selected(ts, previous_ts, risks, scores.total, scores.single3))[0]
        explained = self._explain(
            chosen, ts, risks, (before, *x.step_args()),
            _RoundRows(table.trend_refs, idx), _RoundRows(table.seen_ts, idx), _RoundRows(table.last_values, idx),
        )
        for i, (record, reading) in enumerate(applied):
            table.last_offset[rows[i]] = record.offset
            changed[reading.patient_id] = record.partition
            if reading.ts_ms > self.stream_time.get(record.partition, NEVER):
                self.stream_time[record.partition] = reading.ts_ms
            out.append(
                OutRecord(
                    topic=RISK,
                    key=record.key if record.key is not None else reading.patient_id.encode(),
                    value=self._risk_json(reading, risk_values[i], totals[i], single3[i], parameter_scores[i], explained.get(i)),
                    headers=JSON_HEADERS,
                    timestamp_ms=record.timestamp_ms,
                )
            )
            self.scorer_metrics.event_to_score.observe(max(0.0, (now_ms - record.timestamp_ms) / 1000.0))
        return out


class _RoundRows:
    """A state table column as `ScorerProcessor._explain` reads it, by position in the round: only
    the chosen readings' rows are gathered, as the round-by-round path did."""

    def __init__(self, column: np.ndarray, idx: np.ndarray) -> None:
        self.column, self.idx = column, idx

    def __getitem__(self, chosen: np.ndarray) -> np.ndarray:
        return self.column[self.idx[chosen]]
