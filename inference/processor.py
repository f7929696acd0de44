"""The stateful scorer's core: a batch of `vitals` records in, `risk` and state records out.

A batch is applied in rounds: round k steps the k-th reading of every patient in the batch
together, in one batched model call, so many patients cost one model step and several
readings of one patient are applied in order. Each patient's readings are applied in
arrival (offset) order; one older than the patient's last applied event time is late and
goes to the dead-letter topic. Applying in arrival order, not re-sorting inside a poll, keeps
the output independent of how records happen to be batched, which is what makes a crashed
and restarted scorer produce exactly the stream an uninterrupted one does.

The model step is whatever `StepRuntime` it is given: in the services, the checkpoint's
exported step on ONNX Runtime (inference/step.py); no PyTorch on this path.

Explanations (inference/explain.py): the readings the settings select get an `explain` field,
their input contributions computed in one extra batched step call per round.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from prometheus_client import Counter, Gauge, Histogram

from ingest import Reading, Reason, decode_reading
from inference import explain
from inference.features import VITAL_COLUMNS, model_inputs, remember
from inference.news2 import NEWS2_MAX_AGE_MS
from inference.news2_batch import news2_batch
from inference.records import TRENDED, VALUED, explanation_json, format_risk
from inference.state.changelog import CONTENT_TYPE, encode_row
from inference.state.recovery import restore_partition
from inference.state.table import NEVER, StateTable
from inference.step import StepRuntime
from runtime.metrics import FAST_BUCKETS, LATENCY_BUCKETS, StreamMetrics
from runtime.records import JSON_HEADERS, SCHEMA_VERSION, InRecord, OutRecord, dead_letter, tombstone
from runtime.topics import RISK, SCORER_STATE, VITALS_DLQ
from runtime.topics import VITALS as VITALS_TOPIC

log = logging.getLogger(__name__)

STAGE = "score"
EVICTION_CHECK_MS = 60_000
IDLE_TIMEOUT_MS = 24 * 3_600_000  # a patient silent this long starts afresh (discharged): state evicted, next reading starts anew
EXPLAIN_POLICIES = ("selected", "all", "off")


@dataclass(frozen=True, slots=True)
class ScorerSettings:
    idle_timeout_ms: int = IDLE_TIMEOUT_MS
    news2_max_age_ms: int = NEWS2_MAX_AGE_MS  # carried-forward values older than this do not count
    # Which readings get an explanation: "selected" (below), "all", or "off".
    explain: str = "selected"
    # "selected": risk at or above this (the default rules' lowest model level at which an alert
    # can be open: model_risk clears below 0.4), NEWS2 at or above explain_news2_at or a single
    # 3, or the patient's first reading in each explain_every_ms of event time (every card has
    # a recent explanation).
    explain_risk_at: float = 0.4
    explain_news2_at: int = 4
    explain_every_ms: int = 900_000


class ScorerMetrics:
    def __init__(self, stream: StreamMetrics) -> None:
        r = stream.registry
        self.inference_seconds = Histogram(
            "wardwatch_inference_duration_seconds", "One batched model step", ["stage"], buckets=FAST_BUCKETS, registry=r
        ).labels(STAGE)
        self.event_to_score = Histogram(
            "wardwatch_event_to_score_seconds",
            "From a reading's arrival in vitals.raw to its risk score",
            ["stage"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        ).labels(STAGE)
        self.active_patients = Gauge("wardwatch_active_patients", "Patients with state in this process", ["stage"], registry=r).labels(STAGE)
        self.evictions = Counter("wardwatch_evictions", "Idle patients evicted", ["stage"], registry=r).labels(STAGE)
        self.discarded = Counter(
            "wardwatch_state_discarded", "Restored state rows not reused", ["stage", "reason"], registry=r
        )
        self.explained = Counter("wardwatch_explained", "Risk records written with an explanation", ["stage"], registry=r).labels(STAGE)
        self.explain_seconds = Histogram(
            "wardwatch_explain_duration_seconds", "The occlusion step and trends of one round", ["stage"], buckets=FAST_BUCKETS, registry=r
        ).labels(STAGE)


class ScorerProcessor:
    """Scores every reading with the recurrent model and NEWS2, keeping per-patient state."""

    stage = STAGE
    input_topics = (VITALS_TOPIC,)
    output_topics = (RISK, SCORER_STATE, VITALS_DLQ)
    changelog_topic = SCORER_STATE
    dead_letter_topic = VITALS_DLQ

    def __init__(
        self,
        model: StepRuntime,
        model_version: str,
        metrics: StreamMetrics,
        settings: ScorerSettings = ScorerSettings(),
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.model = model
        self.model_version = model_version
        self.metrics = metrics
        self.scorer_metrics = ScorerMetrics(metrics)
        self.settings = settings
        self.clock = clock
        self.table = StateTable(model.state_size)
        self.stream_time: dict[int, int] = {}
        self._last_eviction: dict[int, int] = {}
        self._model_json = json.dumps(model_version)
        self._state_headers = [("content-type", CONTENT_TYPE), ("schema-version", SCHEMA_VERSION), ("model", model_version.encode())]

    # -- state lifecycle -------------------------------------------------------------------
    # A large partition's state is rebuilt a slice at a time between polls (runtime/processor.py).
    restore_in_slices = True

    def restore(self, partition: int, changelog: Iterable[tuple[bytes, bytes | None]]) -> None:
        result = restore_partition(self.table, partition, changelog, self.model_version)
        if result.discarded_other_model:
            self.scorer_metrics.discarded.labels(STAGE, "model_version").inc(result.discarded_other_model)
        if result.corrupt:
            self.scorer_metrics.discarded.labels(STAGE, "corrupt").inc(result.corrupt)
        rows = [self.table.rows[p] for p in self.table.patients_in([partition])]
        self.stream_time[partition] = int(self.table.last_ts[rows].max()) if rows else NEVER
        self.scorer_metrics.active_patients.set(len(self.table))

    def drop(self, partitions: Iterable[int]) -> None:
        partitions = list(partitions)
        self.table.remove(self.table.patients_in(partitions))
        for p in partitions:
            self.stream_time.pop(p, None)
            self._last_eviction.pop(p, None)
        self.scorer_metrics.active_patients.set(len(self.table))

    # -- the batch -------------------------------------------------------------------------
    def process(self, records: Sequence[InRecord]) -> list[OutRecord]:
        out: list[OutRecord] = []
        by_patient: dict[str, list[tuple[InRecord, Reading]]] = {}
        for record in records:
            try:
                reading = decode_reading(record.value)  # type: ignore[arg-type]
            except (ValueError, TypeError) as exc:
                self.metrics.reject(Reason.UNDECODABLE.value)
                out.append(dead_letter(VITALS_DLQ, record, stage=STAGE, reason=Reason.UNDECODABLE.value, detail=f"not a reading: {exc}"))
                continue
            by_patient.setdefault(reading.patient_id, []).append((record, reading))

        changed: dict[str, int] = {}  # patient id -> partition
        queues = list(by_patient.items())
        k = 0
        while queues:
            round_items = [(pid, items[k]) for pid, items in queues]
            out.extend(self._round(round_items, changed))
            k += 1
            queues = [(pid, items) for pid, items in queues if len(items) > k]

        for patient_id, partition in changed.items():
            row = self.table.rows[patient_id]
            out.append(
                OutRecord(
                    topic=SCORER_STATE,
                    key=patient_id.encode(),
                    value=encode_row(self.table, row, self.model_version),
                    headers=self._state_headers,
                    partition=partition,
                )
            )
        out.extend(self._evict_idle({p for p in changed.values()}))
        self.scorer_metrics.active_patients.set(len(self.table))
        return out

    def _round(self, items: list[tuple[str, tuple[InRecord, Reading]]], changed: dict[str, int]) -> list[OutRecord]:
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
        explained = self._explain(
            idx, ts, previous_ts, risks, scores.total, scores.single3, (before, *x.step_args())
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

    def _risk_json(self, reading: Reading, risk: float, total: int, single3: bool, scores: list[int], explain_json: str | None) -> bytes:
        """The `risk` record (inference/records.py), formatted directly: this runs once per reading."""
        return format_risk(reading.patient_id, reading.ts_ms, reading.seq, risk, total, single3, scores, self._model_json, explain_json)

    def _selected(self, ts: np.ndarray, previous_ts: np.ndarray, risks: np.ndarray, totals: np.ndarray, single3: np.ndarray) -> np.ndarray:
        """Which readings of the round get an explanation (ScorerSettings.explain)."""
        s = self.settings
        if s.explain == "all":
            return np.ones(len(ts), dtype=bool)
        if s.explain == "off":
            return np.zeros(len(ts), dtype=bool)
        new_slot = (previous_ts == NEVER) | (ts // s.explain_every_ms != previous_ts // s.explain_every_ms)
        return (risks >= s.explain_risk_at) | (totals >= s.explain_news2_at) | single3 | new_slot

    def _explain(
        self,
        idx: np.ndarray,
        ts: np.ndarray,
        previous_ts: np.ndarray,
        risks: np.ndarray,
        totals: np.ndarray,
        single3: np.ndarray,
        inputs: tuple[np.ndarray, ...],
    ) -> dict[int, str]:
        """The `explain` JSON of each selected reading of the round, by its index in the round."""
        chosen = np.nonzero(self._selected(ts, previous_ts, risks, totals, single3))[0]
        if not chosen.size:
            return {}
        started = time.perf_counter()
        table, max_age = self.table, self.settings.news2_max_age_ms
        before, values, mask, delta, last_values, last_mask = (a[chosen] for a in inputs)
        contribution = explain.contributions(self.model, before, values, mask, delta, last_values, last_mask, risks[chosen])
        rows, at = idx[chosen], ts[chosen]
        seen_now, values_now = table.seen_ts[rows], table.last_values[rows]
        since, change = explain.trends(table.trend_refs[rows], at, values_now, seen_now, risks[chosen], max_age)
        vital_seen = seen_now[:, VITAL_COLUMNS]
        fresh = (vital_seen != NEVER) & (vital_seen >= (at - max_age)[:, None])
        # Per reading only lists and dicts from here: numpy did the arithmetic, json writes the text.
        shown = np.where(fresh, np.round(values_now[:, VITAL_COLUMNS].astype(np.float64), 1), np.nan).tolist()
        rounded = np.round(change, 1)
        rounded[:, :, explain.TREND_RISK] = np.round(change[:, :, explain.TREND_RISK], explain.CONTRIBUTION_DECIMALS)
        by_name = rounded.transpose(0, 2, 1).tolist()  # [n, trended, horizons]
        order = np.argsort(-np.abs(contribution), axis=1, kind="stable")[:, : explain.TOP]
        top_values = np.round(np.take_along_axis(contribution, order, axis=1), explain.CONTRIBUTION_DECIMALS).tolist()
        order_lists, since_lists = order.tolist(), since.tolist()
        names, groups = TRENDED, explain.GROUP_NAMES
        out: dict[int, str] = {}
        for k, i in enumerate(chosen.tolist()):
            top = [(groups[g], c) for g, c in zip(order_lists[k], top_values[k]) if c != 0.0]
            values_k = {name: (None if v != v else v) for name, v in zip(VALUED, shown[k])}
            trend = {}
            for name, pair in zip(names, by_name[k]):
                a, b = pair
                if a == a or b == b:  # not both NaN
                    trend[name] = (None if a != a else a, None if b != b else b)
            out[i] = explanation_json(top, values_k, since_lists[k], trend)
        self.scorer_metrics.explained.inc(len(out))
        self.scorer_metrics.explain_seconds.observe(time.perf_counter() - started)
        return out

    def _evict_idle(self, partitions: set[int]) -> list[OutRecord]:
        out: list[OutRecord] = []
        for partition in partitions:
            now = self.stream_time.get(partition, NEVER)
            if now - self._last_eviction.get(partition, NEVER) < EVICTION_CHECK_MS:
                continue
            self._last_eviction[partition] = now
            idle = self.table.idle(partition, now - self.settings.idle_timeout_ms)
            if idle:
                self.table.remove(idle)
                self.scorer_metrics.evictions.inc(len(idle))
                out.extend(tombstone(SCORER_STATE, patient_id, partition) for patient_id in idle)
        return out
