"""The stateful scorer's core, without Kafka: state carried right, batching invisible."""

from __future__ import annotations

import json
import random
from functools import cache

import numpy as np
import pytest
import torch

from ingest import Reading, encode_reading
from inference.export import export_step
from inference.features import sequence_inputs
from inference.model import ModelConfig, RiskModel, untrained
from inference.processor import ScorerProcessor, ScorerSettings
from inference.state.changelog import decode_row
from inference.step import OnnxStep
from runtime.metrics import StreamMetrics, new_registry
from runtime.records import InRecord, OutRecord, header
from runtime.topics import RISK, SCORER_STATE, VITALS, VITALS_DLQ
from tests.support.equivalence import RISK_ABS_TOLERANCE, assert_same_risks

T0 = 1_767_225_600_000
MIN = 60_000


def make_readings(patients: int = 6, steps: int = 40, seed: int = 3) -> list[Reading]:
    """Irregular readings with gaps and missing vitals, interleaved across patients by time."""
    rng = random.Random(seed)
    readings = []
    for p in range(patients):
        ts = T0 + rng.randrange(0, 5 * MIN)
        for seq in range(steps):
            ts += rng.choice([MIN, MIN, 2 * MIN, 17 * MIN, 3 * 60 * MIN])
            readings.append(
                Reading(
                    patient_id=f"P{p}", device_id=f"D{p}", seq=seq, ts_ms=ts,
                    hr=rng.choice([None, round(rng.uniform(50, 140), 1)]),
                    rr=round(rng.uniform(8, 30), 1) if rng.random() < 0.7 else None,
                    spo2=round(rng.uniform(85, 100), 1) if rng.random() < 0.8 else None,
                    temp=round(rng.uniform(35, 40), 1) if seq % 5 == 0 else None,
                    sbp=round(rng.uniform(80, 180), 1) if seq % 9 == 0 else None,
                    dbp=round(rng.uniform(40, 100), 1) if seq % 9 == 0 else None,
                    on_oxygen=rng.choice([None, False, True]),
                    acvpu=rng.choice([None, "A", "A", "V"]),
                )
            )
    return sorted(readings, key=lambda r: r.ts_ms)


def records(readings: list[Reading], partitions: int = 3) -> list[InRecord]:
    return [
        InRecord(VITALS, int(r.patient_id[1:]) % partitions, i, r.patient_id.encode(), encode_reading(r), T0)
        for i, r in enumerate(readings)
    ]


@cache
def torch_model(cell: str) -> RiskModel:
    return untrained(seed=1, config=ModelConfig(cell=cell, hidden=16))


@cache
def exported(cell: str) -> bytes:
    return export_step(torch_model(cell), f"{cell}-test")


def new_scorer(cell: str = "gru", **settings: int) -> ScorerProcessor:
    """The scorer as the service runs it: the model's step exported to ONNX, on ONNX Runtime."""
    step = OnnxStep(exported(cell), torch_model(cell).config)
    return ScorerProcessor(step, f"{cell}-test", StreamMetrics(new_registry(), "score"), ScorerSettings(**settings))


def run_in_batches(scorer: ScorerProcessor, items: list[InRecord], sizes: list[int]) -> list[OutRecord]:
    out, i, k = [], 0, 0
    while i < len(items):
        size = sizes[k % len(sizes)]
        out.extend(scorer.process(items[i : i + size]))
        i += size
        k += 1
    return out


def risks(out: list[OutRecord]) -> dict[tuple[str, int], float]:
    return {(b["patient_id"], b["seq"]): b["risk"] for b in (json.loads(r.value) for r in out if r.topic == RISK)}


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_streaming_in_any_batching_equals_the_whole_sequence_at_once(cell: str) -> None:
    readings = make_readings()
    scorer = new_scorer(cell)
    streamed = risks(run_in_batches(scorer, records(readings), [1, 7, 64, 3]))

    model = torch_model(cell)  # the reference: PyTorch over the whole sequence
    for p in sorted({r.patient_id for r in readings}):
        mine = [r for r in readings if r.patient_id == p]
        x = sequence_inputs(mine)
        tensors = [torch.from_numpy(a).unsqueeze(0) for a in (x.values, x.mask, x.delta_hours, x.last_values, x.last_mask)]
        with torch.no_grad():
            logits, _ = model.forward_sequence(*tensors)
        expected = torch.sigmoid(logits[0]).numpy()
        got = np.array([streamed[(p, r.seq)] for r in mine])
        np.testing.assert_allclose(got, expected, rtol=0, atol=RISK_ABS_TOLERANCE)


def test_batch_boundaries_do_not_change_any_output() -> None:
    readings = make_readings(patients=5, steps=30, seed=9)
    one_by_one = risks(run_in_batches(new_scorer(), records(readings), [1]))
    all_at_once = risks(run_in_batches(new_scorer(), records(readings), [len(readings)]))
    assert_same_risks(one_by_one, all_at_once)


def test_a_reading_older_than_the_last_applied_one_is_late_and_dead_lettered() -> None:
    scorer = new_scorer()
    base = Reading("P1", "D1", 1, T0 + 10 * MIN, hr=80)
    older = Reading("P1", "D1", 2, T0 + 5 * MIN, hr=81)
    same_time = Reading("P1", "D1", 3, T0 + 10 * MIN, hr=82)
    out = scorer.process(records([base, older, same_time]))
    late = [r for r in out if r.topic == VITALS_DLQ]
    assert [header(r, "reason") for r in late] == ["late"]
    assert json.loads(late[0].value)["seq"] == 2
    assert sorted(risks(out)) == [("P1", 1), ("P1", 3)]


def test_changed_rows_go_to_the_changelog_once_per_batch_on_the_input_partition() -> None:
    scorer = new_scorer()
    readings = make_readings(patients=4, steps=5)
    out = scorer.process(records(readings, partitions=2))
    state = [r for r in out if r.topic == SCORER_STATE]
    assert sorted(r.key for r in state) == [b"P0", b"P1", b"P2", b"P3"]
    for r in state:
        assert r.partition == int(r.key[1:]) % 2
        row = decode_row(r.value, scorer.table.state_size)
        assert row.model_version == "gru-test"
        assert row.last_ts == max(x.ts_ms for x in readings if x.patient_id.encode() == r.key)


def test_restore_from_the_changelog_continues_exactly_where_the_state_left_off() -> None:
    readings = make_readings(patients=4, steps=30, seed=5)
    items = records(readings, partitions=2)
    half = len(items) // 2
    uninterrupted = risks(run_in_batches(new_scorer(), items, [10]))

    first = new_scorer()
    out = run_in_batches(first, items[:half], [10])
    changelog = {p: [(r.key, r.value) for r in out if r.topic == SCORER_STATE and r.partition == p] for p in (0, 1)}
    second = new_scorer()
    for p, entries in changelog.items():
        second.restore(p, entries)
    resumed = risks(out) | risks(run_in_batches(second, items[half:], [10]))
    assert_same_risks(resumed, uninterrupted)


def test_restoring_a_changelog_in_slices_gives_the_state_of_restoring_it_whole() -> None:
    """The stream loop rebuilds a large partition a slice at a time (restore_in_slices): the
    last record per patient must win across slices, tombstones and corrupt records included."""
    readings = make_readings(patients=6, steps=12, seed=9)
    out = run_in_batches(new_scorer(), records(readings, partitions=1), [7])
    entries = [(r.key, r.value) for r in out if r.topic == SCORER_STATE]
    last = dict(entries)
    truncated = last[b"P2"][:-8]  # its model version reads, its row does not: corrupt
    entries += [(b"P1", None), (b"P2", truncated), (b"P7", None), (b"P3", last[b"P3"])]
    whole = new_scorer()
    whole.restore(0, entries)
    for size in (1, 4, 13):
        sliced = new_scorer()
        assert sliced.restore_in_slices
        for i in range(0, len(entries), size):
            sliced.restore(0, entries[i : i + size])
        sliced.restore(0, [])
        assert sorted(sliced.table.rows) == sorted(whole.table.rows)
        for pid, row in whole.table.rows.items():
            other = sliced.table.rows[pid]
            assert (sliced.table.hidden[other] == whole.table.hidden[row]).all()
            assert sliced.table.last_ts[other] == whole.table.last_ts[row]
        assert sliced.stream_time == whole.stream_time
    assert b"P2" not in {pid.encode() for pid in whole.table.rows} and whole.scorer_metrics.discarded.labels("score", "corrupt")._value.get() == 1


def test_state_from_another_model_version_is_discarded_not_reused() -> None:
    readings = make_readings(patients=3, steps=10)
    out = new_scorer().process(records(readings, partitions=1))
    entries = [(r.key, r.value) for r in out if r.topic == SCORER_STATE]
    other = new_scorer("lstm")  # another version string, another state size
    other.restore(0, entries)
    assert len(other.table) == 0
    assert other.scorer_metrics.discarded.labels("score", "model_version")._value.get() == 3


def test_idle_patients_are_evicted_with_a_tombstone_and_start_afresh() -> None:
    scorer = new_scorer(idle_timeout_ms=60 * MIN)
    first = Reading("P1", "D1", 1, T0, hr=120)
    other = Reading("P2", "D2", 1, T0 + 2 * 60 * MIN, hr=70)  # advances stream time past the timeout
    # One partition: stream time is per partition, advanced by any of its patients.
    out = scorer.process(records([first], 1)) + scorer.process(records([other], 1))
    tombstones = [r for r in out if r.topic == SCORER_STATE and r.value is None]
    assert [r.key for r in tombstones] == [b"P1"]
    assert "P1" not in scorer.table.rows

    back = Reading("P1", "D1", 2, T0 + 3 * 60 * MIN, hr=75)
    fresh = new_scorer(idle_timeout_ms=60 * MIN)
    assert_same_risks(risks(scorer.process(records([back], 1))), risks(fresh.process(records([back], 1))))


def test_dropping_partitions_forgets_only_their_patients() -> None:
    scorer = new_scorer()
    scorer.process(records(make_readings(patients=6, steps=2), partitions=3))
    scorer.drop([0])
    assert sorted(scorer.table.rows) == ["P1", "P2", "P4", "P5"]


def test_news2_uses_carried_forward_values_until_they_are_too_old() -> None:
    scorer = new_scorer(news2_max_age_ms=60 * MIN)
    sick = Reading("P1", "D1", 1, T0, rr=30, sbp=85)  # RR>=25: 3, SBP<=90: 3
    later = Reading("P1", "D1", 2, T0 + 30 * MIN, hr=70)
    much_later = Reading("P1", "D1", 3, T0 + 120 * MIN, hr=70)
    out = scorer.process(records([sick, later, much_later]))
    scores = [json.loads(r.value)["news2"] for r in out if r.topic == RISK]
    assert scores == [6, 6, 0]


def test_several_readings_per_patient_in_a_batch_score_as_one_reading_per_batch() -> None:
    """A backlog: batches of 1, 5 and 30 readings of each patient, with late readings and patients
    starting afresh after a long silence, give the same records as one reading per batch."""
    patients = 6
    by_patient = [[r for r in make_readings(patients, 60, seed=5) if r.patient_id == f"P{p}"] for p in range(patients)]
    rng = random.Random(8)
    for mine in by_patient:  # a few readings arrive after a later one of the same patient: late
        for i in rng.sample(range(len(mine) - 1), 6):
            mine[i], mine[i + 1] = mine[i + 1], mine[i]
    arrival = [mine[i] for i in range(60) for mine in by_patient]  # round robin: k * patients records hold k of each
    items = records(arrival, partitions=patients)  # a partition each: no patient is evicted while its readings still come

    def outcome(per_patient: int) -> tuple[dict[tuple[str, int], float], list[tuple[object, ...]], list[tuple[object, ...]]]:
        # idle timeout 2 h: the 3 h gaps of make_readings start patients afresh mid-batch
        out = run_in_batches(new_scorer(idle_timeout_ms=120 * MIN, explain="all"), items, [per_patient * patients])
        scored = [json.loads(r.value) for r in out if r.topic == RISK]
        exact = [(b["patient_id"], b["seq"], b["news2"], b["news2_scores"], b["explain"]["values"], b["explain"]["trend"]["since_ms"])
                 for b in scored]
        late = [(r.key, json.loads(r.value)["seq"], header(r, "reason"), header(r, "detail")) for r in out if r.topic == VITALS_DLQ]
        return risks(out), sorted(exact), late

    one_risks, one_exact, one_late = outcome(1)
    assert len(one_late) >= 10 and all(reason == "late" for _k, _s, reason, _d in one_late)
    assert len(one_risks) == len(arrival) - len(one_late)
    gaps = sum(b.ts_ms - a.ts_ms > 120 * MIN for mine in by_patient for a, b in zip(mine, mine[1:]))
    assert gaps >= 10  # patients do start afresh
    for per_patient in (5, 30):
        got_risks, got_exact, got_late = outcome(per_patient)
        assert_same_risks(got_risks, one_risks)
        assert got_exact == one_exact
        assert sorted(got_late) == sorted(one_late)


def test_a_patient_back_after_the_idle_timeout_starts_afresh_within_one_batch() -> None:
    first = Reading("P1", "D1", 1, T0, hr=130, rr=26, spo2=91.0)
    second = Reading("P1", "D1", 2, T0 + 30 * MIN, hr=125, rr=24, spo2=92.0, temp=38.5)
    back = Reading("P1", "D1", 3, T0 + 4 * 60 * MIN, hr=75, spo2=97.0)
    later = Reading("P1", "D1", 4, T0 + 5 * 60 * MIN, hr=72, rr=15)
    in_one_batch = new_scorer(idle_timeout_ms=60 * MIN, explain="all").process(records([first, second, back, later], 1))
    fresh = new_scorer(idle_timeout_ms=60 * MIN, explain="all").process(records([back, later], 1))

    def scored(out: list[OutRecord]) -> list[dict]:
        return [json.loads(r.value) for r in out if r.topic == RISK and json.loads(r.value)["seq"] >= 3]

    got, expected = scored(in_one_batch), scored(fresh)
    assert_same_risks({(a["patient_id"], a["seq"]): a["risk"] for a in got}, {(b["patient_id"], b["seq"]): b["risk"] for b in expected})
    for a, b in zip(got, expected, strict=True):
        assert (a["news2"], a["news2_scores"], a["explain"]["values"], a["explain"]["trend"]) == (
            b["news2"], b["news2_scores"], b["explain"]["values"], b["explain"]["trend"])
        assert [name for name, _ in a["explain"]["top"]] == [name for name, _ in b["explain"]["top"]]
