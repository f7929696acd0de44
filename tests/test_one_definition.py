"""Things defined once and used everywhere: the NEWS2 carry-forward age, the `late` reason,
the reading identity for de-duplication, the dead-letter topic in file mode, the reading ->
model-input transformation (training, evaluation, the scorer and the Quix peer)."""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

import bench.peer_quix
import inference.dataset
from alerts.rules import load_rules
from alerts.processor import AlertProcessor
from inference.features import (
    FEATURE,
    FEATURES,
    MAX_DELTA_HOURS,
    N_FEATURES,
    NEVER,
    ModelInputs,
    array_inputs,
    model_inputs,
    observed_columns,
    remember,
    sequence_inputs,
)
from inference.news2 import NEWS2_MAX_AGE_MS
from inference.processor import ScorerProcessor, ScorerSettings
from inference.service import ScoreConfig
from ingest import ACVPU_LEVELS, VITALS, Reading, ReadingId, Reason, encode_reading, reading_id, unique_readings
from ingest.processor import IngestProcessor
from runtime.filemode import dlq_path, run_file
from runtime.metrics import StreamMetrics, new_registry
from runtime.records import InRecord, OutRecord, dead_letter, header
from runtime.topics import RISK, VITALS_DLQ
from runtime.topics import VITALS as VITALS_TOPIC

T0 = 1_767_225_600_000
MIN = 60_000


def test_news2_carry_forward_age_is_one_number_used_by_scorer_service_training_and_peer() -> None:
    assert NEWS2_MAX_AGE_MS == 4 * 3_600_000
    assert ScorerSettings().news2_max_age_ms == NEWS2_MAX_AGE_MS
    assert ScoreConfig().news2_max_age_ms == NEWS2_MAX_AGE_MS
    assert inference.dataset.carried_news2.__defaults__ == (NEWS2_MAX_AGE_MS,)
    assert bench.peer_quix.NEWS2_MAX_AGE_MS is NEWS2_MAX_AGE_MS


def test_the_alert_service_dead_letters_late_records_with_ingests_reason() -> None:
    alerts = AlertProcessor(load_rules(), StreamMetrics(new_registry(), "alerts"), clock=lambda: T0 / 1000)

    def risk(offset: int, minute: int) -> InRecord:
        value = {"patient_id": "P1", "ts_ms": T0 + minute * MIN, "risk": 0.1, "news2": 0, "news2_single3": False, "model": "m"}
        return InRecord(RISK, 0, offset, b"P1", json.dumps(value).encode(), T0)

    out = alerts.process([risk(0, 10), risk(1, 5)])
    assert [header(o, "reason") for o in out if o.topic == VITALS_DLQ] == [Reason.LATE.value]


def test_reading_identity_is_patient_device_seq_and_event_time() -> None:
    reading = Reading(patient_id="P1", device_id="D1", seq=7, ts_ms=T0, hr=80.0)
    assert reading_id(reading) == ReadingId("P1", "D1", 7, T0)
    assert reading_id(reading) == reading_id(Reading(patient_id="P1", device_id="D1", seq=7, ts_ms=T0, hr=95.0))
    assert reading_id(reading) != reading_id(Reading(patient_id="P2", device_id="D1", seq=7, ts_ms=T0))
    assert reading_id(reading) != reading_id(Reading(patient_id="P1", device_id="D1", seq=7, ts_ms=T0 + 1))


def test_training_keeps_exactly_what_ingest_keeps() -> None:
    raw = [
        {"patient_id": "P1", "device_id": "D1", "seq": 1, "ts_ms": T0, "hr": 80},
        {"patient_id": "P1", "device_id": "D1", "seq": 1, "ts_ms": T0, "hr": 80},  # a resend
        {"patient_id": "P1", "device_id": "D1", "seq": 1, "ts_ms": T0 + MIN, "hr": 81},  # counter restarted
        {"patient_id": "P2", "device_id": "D1", "seq": 1, "ts_ms": T0, "hr": 70},  # device moved to P2
    ]
    ingest = IngestProcessor(StreamMetrics(new_registry(), "ingest"), clock=lambda: T0 / 1000 + 60)
    records = [InRecord("vitals.raw", 0, i, None, json.dumps(r).encode(), T0) for i, r in enumerate(raw)]
    accepted = [json.loads(o.value) for o in ingest.process(records) if o.topic == "vitals" and o.value]
    applied = inference.dataset.applied_readings(raw)
    assert [(r["patient_id"], r["ts_ms"]) for r in accepted] == [("P1", T0), ("P1", T0 + MIN), ("P2", T0)]
    assert [(r.patient_id, r.ts_ms) for p in ("P1", "P2") for r in applied[p]] == [(r["patient_id"], r["ts_ms"]) for r in accepted]


def test_training_deduplication_of_a_simulated_cohort_is_unchanged() -> None:
    """On simulator cohorts (duplicates are resends of the same reading) the shared identity
    keeps exactly what the former (device_id, seq) rule kept."""
    _, cohort = inference.dataset.make_cohort(patients=12, hours=6.0, seed=11)
    readings = list(cohort.readings)
    seen: set[tuple[object, object]] = set()
    former: dict[str, list[tuple[object, object]]] = {}
    duplicates = 0
    for obj in readings:
        key = (obj["device_id"], obj["seq"])
        if key in seen:
            duplicates += 1
            continue
        seen.add(key)
        applied = former.setdefault(str(obj["patient_id"]), [])
        if applied and obj["ts_ms"] < applied[-1][1]:  # type: ignore[operator]
            continue
        applied.append((obj["seq"], obj["ts_ms"]))
    assert duplicates > 0  # the cohort does exercise de-duplication
    now = {p: [(r.seq, r.ts_ms) for r in rs] for p, rs in inference.dataset.applied_readings(readings).items()}
    assert now == former


class _Echo:
    """A stage whose dead-letter topic is not `vitals.dlq`: odd lines are rejected."""

    stage = "echo"
    input_topics = ("echo.in",)
    output_topics = ("echo.out", "echo.rejects")
    changelog_topic = None
    dead_letter_topic = "echo.rejects"

    def restore(self, partition: int, changelog: Iterable[tuple[bytes, bytes | None]]) -> None:
        pass

    def drop(self, partitions: Iterable[int]) -> None:
        pass

    def process(self, records: Sequence[InRecord]) -> list[OutRecord]:
        return [
            dead_letter(self.dead_letter_topic, r, stage=self.stage, reason="odd", detail="odd offset")
            if r.offset % 2 else OutRecord("echo.out", None, r.value)
            for r in records
        ]


def test_file_mode_takes_the_dead_letter_topic_from_the_stage(tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps({"n": n}) + "\n" for n in range(5)))
    output = tmp_path / "out.jsonl"
    result = run_file(_Echo(), source, output, StreamMetrics(new_registry(), "echo"))
    assert (result.records_in, result.records_out, result.rejected) == (5, 3, 2)
    assert [json.loads(line)["n"] for line in output.read_text().splitlines()] == [0, 2, 4]
    rejects = [json.loads(line) for line in dlq_path(output).read_text().splitlines()]
    assert [(r["reason"], r["source-offset"], json.loads(r["value"])["n"]) for r in rejects] == [("odd", 1, 1), ("odd", 3, 3)]


def test_file_mode_still_dead_letters_ingest_rejects(tmp_path: Path) -> None:
    source = tmp_path / "raw.jsonl"
    good = {"patient_id": "P1", "device_id": "D1", "seq": 1, "ts_ms": 1000, "hr": 80}
    source.write_text("\n".join([json.dumps(good), "not json", json.dumps(good)]) + "\n")
    output = tmp_path / "vitals.jsonl"
    stage = IngestProcessor(StreamMetrics(new_registry(), "ingest"), clock=lambda: 2.0)
    assert stage.dead_letter_topic == VITALS_DLQ
    result = run_file(stage, source, output, StreamMetrics(new_registry(), "ingest"))
    assert (result.records_in, result.records_out, result.rejected) == (3, 1, 2)
    reasons = [json.loads(line)["reason"] for line in dlq_path(output).read_text().splitlines()]
    assert reasons == [Reason.UNDECODABLE.value, Reason.DUPLICATE.value]


# -- the feature transformation: training, evaluation, the scorer and the peer agree -----------
class _RecordingStep:
    """A model step that keeps every input row it is given and answers, as the risk, a code
    naming that row (k / 1000 for the k-th row), so that each risk record says which inputs
    the scorer built for it."""

    runtime = "recording"
    state_size = 3

    def __init__(self) -> None:
        self.rows: list[tuple[np.ndarray, ...]] = []

    def step(self, state, values, mask, delta, last_values, last_mask):  # type: ignore[no-untyped-def]
        first = len(self.rows)
        self.rows.extend(zip(values.copy(), mask.copy(), delta.copy(), last_values.copy(), last_mask.copy()))
        risks = (np.arange(first, len(self.rows), dtype=np.float64) + 1) / 1000
        return state + 1, risks.astype(np.float32)

    def row_of(self, risk: float) -> tuple[np.ndarray, ...]:
        return self.rows[round(risk * 1000) - 1]


def _raw_readings(patients: int = 5, steps: int = 45, seed: int = 4) -> list[dict[str, object]]:
    """Irregular readings in arrival order: missing inputs, every ACVPU level, inputs unseen for
    more than a day (the delta cap) and now and then one that arrives late."""
    rng = random.Random(seed)
    out: list[dict[str, object]] = []
    for p in range(patients):
        ts = T0 + rng.randrange(0, 5 * MIN)
        for seq in range(steps):
            ts += rng.choice([MIN, 2 * MIN, 17 * MIN, 60 * MIN, 3 * 60 * MIN])
            at = ts - 30 * MIN if seq % 13 == 12 else ts  # late: older than the reading before it
            obj: dict[str, object] = {"patient_id": f"P{p}", "device_id": f"D{p}", "seq": seq, "ts_ms": at}
            obj |= {"hr": round(rng.uniform(40, 150), 1)} if rng.random() < 0.8 else {}
            obj |= {"rr": round(rng.uniform(8, 32), 1)} if rng.random() < 0.6 else {}
            obj |= {"spo2": round(rng.uniform(84, 100), 1)} if rng.random() < 0.7 else {}
            obj |= {"temp": round(rng.uniform(35, 40), 2)} if seq % 6 == 0 else {}
            obj |= {"sbp": round(rng.uniform(80, 190), 1), "dbp": round(rng.uniform(40, 100), 1)} if seq % 40 == 3 else {}
            obj |= {"on_oxygen": rng.choice([False, True])} if rng.random() < 0.5 else {}
            obj |= {"acvpu": rng.choice(ACVPU_LEVELS)} if rng.random() < 0.4 else {}
            out.append(obj)
    rng.shuffle(out)  # patients interleaved; each patient's own readings stay in their order
    return sorted(out, key=lambda o: (o["seq"], o["patient_id"]))


def _columns(readings: Sequence[Reading]) -> dict[str, np.ndarray]:
    """The readings as readings.npz holds them (as sim/columns.py and the importers write it)."""
    cols = {name: np.array([np.nan if getattr(r, name) is None else getattr(r, name) for r in readings]) for name in VITALS}
    cols["on_oxygen"] = np.array([-1 if r.on_oxygen is None else int(r.on_oxygen) for r in readings], dtype=np.int8)
    cols["acvpu"] = np.array([-1 if r.acvpu is None else ACVPU_LEVELS.index(r.acvpu) for r in readings], dtype=np.int8)
    return cols


def _same_row(got: tuple[np.ndarray, ...], expected: ModelInputs, t: int) -> None:
    names = ("values", "mask", "delta_hours", "last_values", "last_mask")
    for name, a in zip(names, got):
        np.testing.assert_array_equal(a, getattr(expected, name)[t], err_msg=f"{name} at reading {t}")


def test_training_features_equal_serving_features_reading_by_reading() -> None:
    raw = _raw_readings()
    training = inference.dataset.applied_readings(raw)  # what training and evaluation featurise
    model = _RecordingStep()
    scorer = ScorerProcessor(model, "recording", StreamMetrics(new_registry(), "score"), ScorerSettings(explain="off"))
    # The scorer and the peer read the `vitals` topic: readings as ingest validated and normalised them.
    values = [encode_reading(r) for r in unique_readings(raw)]
    records = [InRecord(VITALS_TOPIC, int(str(o["patient_id"])[1:]) % 2, i, None, v, T0) for i, (o, v) in enumerate(zip(raw, values))]
    out: list[OutRecord] = []
    start, sizes = 0, [1, 7, 3, 64]
    while start < len(records):  # poll-sized batches of any size
        size = sizes[start % len(sizes)]
        out.extend(scorer.process(records[start : start + size]))
        start += size
    served = {(r["patient_id"], r["seq"]): model.row_of(r["risk"]) for r in (json.loads(o.value) for o in out if o.topic == RISK)}
    assert sorted(served) == sorted((p, r.seq) for p, rs in training.items() for r in rs)  # the same readings applied

    peer_model = _RecordingStep()
    peer = bench.peer_quix.make_score(peer_model, "recording")
    stores: dict[str, _Store] = {}
    peered = {}
    for v in values:
        o = json.loads(v)
        result = peer(o, stores.setdefault(str(o["patient_id"]), _Store()))
        if not result.get("late"):
            peered[(result["patient_id"], result["seq"])] = peer_model.row_of(result["risk"])

    capped = 0
    for patient_id, readings in training.items():
        expected = sequence_inputs(readings)
        columnar = array_inputs(*observed_columns(_columns(readings)), expected.ts_ms)
        capped += int((expected.delta_hours == MAX_DELTA_HOURS).sum() - (expected.last_mask == 0).sum())
        for t, reading in enumerate(readings):
            _same_row(served[(patient_id, reading.seq)], expected, t)
            _same_row(peered[(patient_id, reading.seq)], expected, t)
            _same_row(tuple(getattr(columnar, n)[t] for n in ("values", "mask", "delta_hours", "last_values", "last_mask")), expected, t)
        consciousness = expected.values[:, FEATURE["consciousness"]][expected.mask[:, FEATURE["consciousness"]] > 0]
        assert set(consciousness.tolist()) <= {0.0, 1.0}
    assert capped > 0  # some input went unseen past the cap while the patient was still scored


class _Store:
    """The part of a Quix Streams State the peer uses."""

    def __init__(self) -> None:
        self.saved: dict[str, object] = {}

    def get(self, key: str) -> object:
        return self.saved.get(key)

    def set(self, key: str, value: object) -> None:
        self.saved[key] = value


def test_a_reading_becomes_named_inputs() -> None:
    reading = Reading("P1", "D1", 1, T0, hr=88.0, spo2=93.0, on_oxygen=True, acvpu="V")
    x = model_inputs([reading], np.full((1, N_FEATURES), NEVER), np.zeros((1, N_FEATURES), np.float32))
    given = {name: float(x.values[0, FEATURE[name]]) for name in FEATURES if x.mask[0, FEATURE[name]] > 0}
    assert given == {"hr": 88.0, "spo2": 93.0, "on_oxygen": 1.0, "consciousness": 1.0}
    assert x.last_mask.sum() == 0 and (x.delta_hours == MAX_DELTA_HOURS).all()
    seen_ts, seen_values = remember(x, np.full((1, N_FEATURES), NEVER))
    later = Reading("P1", "D1", 2, T0 + 90 * MIN, hr=90.0, acvpu="A")
    y = model_inputs([later], seen_ts, seen_values)
    assert float(y.values[0, FEATURE["consciousness"]]) == 0.0 and y.mask[0, FEATURE["consciousness"]] == 1.0
    assert float(y.delta_hours[0, FEATURE["hr"]]) == 1.5 and float(y.last_values[0, FEATURE["spo2"]]) == 93.0
    assert y.last_mask[0, FEATURE["rr"]] == 0 and y.delta_hours[0, FEATURE["rr"]] == MAX_DELTA_HOURS


def test_the_ward_views_control_commands_are_what_the_alert_service_reads() -> None:
    """`alerts.control` has one codec: what the ward view encodes, the alert service parses back unchanged."""
    from alerts.messages import Acknowledge, Snooze, encode_command, parse_command

    for command in (
        Acknowledge(patient_id="P00001", alert_id="a1", ts_ms=1_767_225_600_000, by="nurse-7"),
        Acknowledge(patient_id="P00002", alert_id="a2", ts_ms=0),
        Snooze(patient_id="P00003", until_ts_ms=1_767_229_200_000, ts_ms=1_767_225_600_000, by="dr-1"),
    ):
        assert parse_command(encode_command(command)) == command


def test_alert_events_decode_to_what_the_alert_service_wrote() -> None:
    """`alerts` has one codec: the ward view reads events with the decoder beside `AlertEvent`."""
    import json

    import pytest

    from alerts.messages import AlertEvent, MessageError, decode_alert

    for event in (
        AlertEvent("a1", "P1", 2_000, "raised", "urgent", "model_risk", "risk 0.64", 2_000, explain={"risk": 0.64, "top": [["rr", 0.3]]}),
        AlertEvent("a1", "P1", 3_000, "acknowledged", "urgent", "model_risk", "risk 0.64", 2_000, acknowledged=True, by="nurse-7"),
        AlertEvent("a1", "P1", 4_000, "resolved", "urgent", "model_risk", "cleared", 2_000, acknowledged=True),
    ):
        assert decode_alert(json.dumps(event.to_dict()).encode()) == event
    bad = {**AlertEvent("a1", "P1", 1, "raised", "urgent", "r", "x", 1).to_dict(), "status": "exploded"}
    with pytest.raises(MessageError, match="status"):
        decode_alert(json.dumps(bad))
