"""The stateful scorer's core: a batch of `vitals` records in, `risk` and state records out.

Each patient's readings are applied in arrival (offset) order; one older than the patient's
last applied event time is late and goes to the dead-letter topic. Applying in arrival order,
not re-sorting inside a poll, keeps the output independent of how records happen to be
batched, which is what makes a crashed and restarted scorer produce exactly the stream an
uninterrupted one does.

A batch is applied in three parts, so that several readings of one patient in a batch (a
backlog after downtime, a store-and-forward burst, a small ward) cost no more per reading than
one reading each of many patients (bench/batching.py):

1. the plan, from event times alone: which readings are late, which start a patient afresh
   (silent longer than the idle timeout), and the rounds: round k holds the k-th reading of
   every patient in the batch;
2. the model inputs of every applied reading at once (they depend on the earlier readings, not
   on the model's state), then one batched model step per round on the batch's patients' state,
   gathered from the state table once and scattered back once;
3. NEWS2, explanations and the records for the whole batch at once, in round order.

The model step is whatever `StepRuntime` it is given: in the services, the checkpoint's
exported step on ONNX Runtime (inference/step.py); no PyTorch on this path.

Explanations (inference/explain.py): the readings the settings select get an `explain` field,
their input contributions computed in extra batched step calls, once per batch.
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
from inference.features import VITAL_COLUMNS, observed, remember, step_inputs
from inference.news2 import NEWS2_MAX_AGE_MS
from inference.news2_batch import news2_batch
from inference.records import TRENDED, VALUED, explanation_json, format_risk
from inference.state.changelog import CONTENT_TYPE, encode_row
from inference.state.recovery import restore_partition
from inference.state.table import NEVER, StateTable
from inference.step import StepRuntime
from runtime.metrics import FAST_BUCKETS, LATENCY_BUCKETS, StreamMetrics, observe_many
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


@dataclass(frozen=True, slots=True)
class _Plan:
    """A batch's readings sorted out before any model step (`ScorerProcessor._plan`).

    `order` is every decoded reading in output order (round by round; within a round the late
    readings, then the applied ones, each in order of the patient's first appearance), with its
    index among the applied readings, or -1 and the reason it is late. Applied readings are
    numbered in that order, so each round's are one slice, `rounds`; `pidx` gives each one's
    patient (an index into `rows`, the patients' state table rows), `reset` whether it starts
    its patient afresh, and `last_of` each patient's last applied reading (-1: none)."""

    order: list[tuple[InRecord, Reading, int, str]]
    applied: list[tuple[InRecord, Reading]]
    pidx: np.ndarray
    reset: np.ndarray
    rounds: list[tuple[int, int]]
    rows: np.ndarray
    last_of: np.ndarray


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
            "wardwatch_explain_duration_seconds", "The occlusion steps and trends of one batch", ["stage"], buckets=FAST_BUCKETS, registry=r
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
        out, by_patient = self._by_patient(records)
        changed: dict[str, int] = {}  # patient id -> partition
        if by_patient:
            out.extend(self._apply(self._plan(by_patient), changed))
        return self._close_batch(out, changed)

    def _by_patient(self, records: Sequence[InRecord]) -> tuple[list[OutRecord], dict[str, list[tuple[InRecord, Reading]]]]:
        """The batch's readings grouped by patient in arrival order, and the dead letters of the
        records that are not readings."""
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
        return out, by_patient

    def _close_batch(self, out: list[OutRecord], changed: dict[str, int]) -> list[OutRecord]:
        """`out` with the changelog row of every patient the batch changed, and the idle evicted."""
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

    def _plan(self, by_patient: dict[str, list[tuple[InRecord, Reading]]]) -> _Plan:
        """Which readings are applied, which are late, and the rounds, from event times alone."""
        table, idle_ms = self.table, self.settings.idle_timeout_ms
        queues = list(by_patient.values())
        rows = [table.row_of(patient_id, items[0][0].partition) for patient_id, items in by_patient.items()]
        last = table.last_ts[rows].tolist()  # per patient: the event time of the last applied reading
        order: list[tuple[InRecord, Reading, int, str]] = []
        applied: list[tuple[InRecord, Reading]] = []
        patient: list[int] = []
        reset: list[bool] = []
        rounds: list[tuple[int, int]] = []
        waiting = list(range(len(queues)))
        k = 0
        while waiting:
            start = len(applied)
            stepped: list[tuple[InRecord, Reading, int, str]] = []
            for p in waiting:
                record, reading = queues[p][k]
                ts, before = reading.ts_ms, last[p]
                if before != NEVER and ts < before:
                    order.append((record, reading, -1, f"ts_ms={ts} is {before - ts} ms older than the last applied reading"))
                    continue
                stepped.append((record, reading, len(applied), ""))
                applied.append((record, reading))
                patient.append(p)
                # Silent longer than the idle timeout: starts afresh, whether or not eviction already ran.
                reset.append(before != NEVER and ts - before > idle_ms)
                last[p] = ts
            order.extend(stepped)  # a round's late readings come first
            if len(applied) > start:
                rounds.append((start, len(applied)))
            k += 1
            waiting = [p for p in waiting if len(queues[p]) > k]
        pidx = np.asarray(patient, dtype=np.int64)
        last_of = np.full(len(queues), -1, dtype=np.int64)
        last_of[pidx] = np.arange(len(pidx))  # later readings overwrite earlier ones: each patient's last
        return _Plan(order, applied, pidx, np.asarray(reset, dtype=bool), rounds, np.asarray(rows, dtype=np.int64), last_of)

    def _seen_before(self, plan: _Plan, values: np.ndarray, mask: np.ndarray, ts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The last-seen state (seen_ts, seen_values) before each applied reading, all at once.

        Per patient it is that of the patient's earlier readings in this batch, else the state
        table's (the initial state after a reset): what `remember` after each reading would give.
        """
        n = len(ts)
        perm = np.argsort(plan.pidx, kind="stable")  # patient by patient, each in order
        owner = plan.pidx[perm]
        first = np.ones(n, dtype=bool)
        first[1:] = owner[1:] != owner[:-1]
        begins = first | plan.reset[perm]  # a run of readings that follow on from each other
        steps = np.arange(n)
        run_start = np.maximum.accumulate(np.where(begins, steps, 0))
        observed_at = np.maximum.accumulate(np.where(mask[perm] > 0, steps[:, None], -1), axis=0)
        source = np.vstack([np.full((1, mask.shape[1]), -1), observed_at[:-1]])  # the last reading before that saw each input
        known = source >= run_start[:, None]
        from_table = (first & ~plan.reset[perm])[run_start]
        rows = plan.rows[owner]
        initial_ts = np.where(from_table[:, None], self.table.seen_ts[rows], NEVER)
        initial_values = np.where(from_table[:, None], self.table.last_values[rows], np.float32(0.0))
        safe = np.maximum(source, 0)
        seen_ts = np.empty((n, mask.shape[1]), dtype=np.int64)
        seen_values = np.empty((n, mask.shape[1]), dtype=np.float32)
        seen_ts[perm] = np.where(known, ts[perm][safe], initial_ts)
        seen_values[perm] = np.where(known, values[perm][safe, np.arange(mask.shape[1])], initial_values)
        return seen_ts, seen_values

    def _apply(self, plan: _Plan, changed: dict[str, int]) -> list[OutRecord]:
        """Step every applied reading (one model call per round), then write the batch's records."""
        table, max_age = self.table, self.settings.news2_max_age_ms
        readings = [reading for _record, reading in plan.applied]
        n = len(readings)
        if not n:  # every reading late
            return self._records(plan, changed, [], [], [], [], {})
        values, mask = observed(readings)
        ts = np.fromiter((r.ts_ms for r in readings), dtype=np.int64, count=n)
        seen, seen_values = self._seen_before(plan, values, mask, ts)
        x = step_inputs(values, mask, ts, seen, seen_values)
        args = x.step_args()
        seen_now, values_now = remember(x, seen)

        # The batch's patients' state, gathered once; the rounds work on these, scattered back once.
        rows, pidx = plan.rows, plan.pidx
        hidden, refs = table.hidden[rows], table.trend_refs[rows]
        last_ts, last_risk = table.last_ts[rows], table.last_risk[rows]
        before = np.empty((n, hidden.shape[1]), dtype=np.float32)  # state before each reading, for the occlusion steps
        previous_ts = np.empty(n, dtype=np.int64)
        risks = np.empty(n, dtype=np.float32)
        refs_at = np.empty((n, *refs.shape[1:]), dtype=refs.dtype)
        for a, b in plan.rounds:
            p = pidx[a:b]
            fresh_start = plan.reset[a:b]
            if fresh_start.any():
                q = p[fresh_start]
                hidden[q], refs[q], last_ts[q], last_risk[q] = 0.0, np.nan, NEVER, 0.0
            state = hidden[p]
            before[a:b] = state
            previous_ts[a:b] = prev = last_ts[p]
            # The trend grid moves with event time, from the values as they stood before this reading.
            refs_at[a:b] = refs[p] = explain.rotate(refs[p], prev, ts[a:b], x.last_values[a:b], seen[a:b], last_risk[p], max_age)
            started = time.perf_counter()
            hidden[p], risk = self.model.step(state, *(arg[a:b] for arg in args))
            self.scorer_metrics.inference_seconds.observe(time.perf_counter() - started)
            risks[a:b] = last_risk[p] = risk
            last_ts[p] = ts[a:b]
        table.hidden[rows], table.trend_refs[rows], table.last_ts[rows], table.last_risk[rows] = hidden, refs, last_ts, last_risk
        has = plan.last_of >= 0
        final, last = rows[has], plan.last_of[has]
        scales = np.fromiter((r.spo2_scale for r in readings), dtype=np.int8, count=n)
        table.seen_ts[final], table.last_values[final], table.spo2_scale[final] = seen_now[last], values_now[last], scales[last]
        table.last_offset[final] = np.fromiter((record.offset for record, _ in plan.applied), dtype=np.int64, count=n)[last]

        # NEWS2 for the whole batch at once, from each patient's values still fresh enough.
        scores = news2_batch(values_now, seen_now >= (ts - max_age)[:, None], scales)
        totals = scores.total.tolist()
        single3 = scores.single3.tolist()
        parameter_scores = np.where(scores.present, scores.scores, -1).tolist()
        chosen = np.nonzero(self._selected(ts, previous_ts, risks, scores.total, scores.single3))[0]
        explained = self._explain(chosen, ts, risks, (before, *args), refs_at, seen_now, values_now)
        return self._records(plan, changed, risks.tolist(), totals, single3, parameter_scores, explained)

    def _records(
        self,
        plan: _Plan,
        changed: dict[str, int],
        risk_values: list[float],
        totals: list[int],
        single3: list[bool],
        parameter_scores: list[list[int]],
        explained: dict[int, str],
    ) -> list[OutRecord]:
        """The batch's risk records and late readings' dead letters, in `plan.order`."""
        out: list[OutRecord] = []
        now_ms = self.clock() * 1000.0
        scored_at: list[int] = []  # the Kafka timestamp of each scored reading's record
        for record, reading, j, late in plan.order:
            if j < 0:
                self.metrics.reject(Reason.LATE.value)
                out.append(dead_letter(VITALS_DLQ, record, stage=STAGE, reason=Reason.LATE.value, detail=late))
                continue
            changed[reading.patient_id] = record.partition
            if reading.ts_ms > self.stream_time.get(record.partition, NEVER):
                self.stream_time[record.partition] = reading.ts_ms
            out.append(
                OutRecord(
                    topic=RISK,
                    key=record.key if record.key is not None else reading.patient_id.encode(),
                    value=self._risk_json(reading, risk_values[j], totals[j], single3[j], parameter_scores[j], explained.get(j)),
                    headers=JSON_HEADERS,
                    timestamp_ms=record.timestamp_ms,
                )
            )
            scored_at.append(record.timestamp_ms)
        observe_many(self.scorer_metrics.event_to_score, np.maximum(0.0, (now_ms - np.array(scored_at, dtype=np.float64)) / 1000.0))
        return out

    def _risk_json(self, reading: Reading, risk: float, total: int, single3: bool, scores: list[int], explain_json: str | None) -> bytes:
        """The `risk` record (inference/records.py), formatted directly: this runs once per reading."""
        return format_risk(reading.patient_id, reading.ts_ms, reading.seq, risk, total, single3, scores, self._model_json, explain_json)

    def _selected(self, ts: np.ndarray, previous_ts: np.ndarray, risks: np.ndarray, totals: np.ndarray, single3: np.ndarray) -> np.ndarray:
        """Which readings of the batch get an explanation (ScorerSettings.explain)."""
        s = self.settings
        if s.explain == "all":
            return np.ones(len(ts), dtype=bool)
        if s.explain == "off":
            return np.zeros(len(ts), dtype=bool)
        new_slot = (previous_ts == NEVER) | (ts // s.explain_every_ms != previous_ts // s.explain_every_ms)
        return (risks >= s.explain_risk_at) | (totals >= s.explain_news2_at) | single3 | new_slot

    def _explain(
        self,
        chosen: np.ndarray,
        ts: np.ndarray,
        risks: np.ndarray,
        inputs: tuple[np.ndarray, ...],
        refs: np.ndarray,
        seen: np.ndarray,
        values: np.ndarray,
    ) -> dict[int, str]:
        """The `explain` JSON of each chosen reading, by its index among the batch's applied readings.

        `inputs` are each reading's step arguments (the state before it first); `refs` the trend
        grid, `seen` and `values` the last-seen state, each as it stood after that reading."""
        if not chosen.size:
            return {}
        started = time.perf_counter()
        max_age = self.settings.news2_max_age_ms
        before, step_values, mask, delta, last_values, last_mask = (a[chosen] for a in inputs)
        contribution = explain.contributions(self.model, before, step_values, mask, delta, last_values, last_mask, risks[chosen])
        at = ts[chosen]
        seen_now, values_now = seen[chosen], values[chosen]
        since, change = explain.trends(refs[chosen], at, values_now, seen_now, risks[chosen], max_age)
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
