"""Things defined once and used everywhere: the NEWS2 carry-forward age, the `late` reason,
the reading identity for de-duplication, the dead-letter topic in file mode."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path

import bench.peer_quix
import inference.dataset
from alerts.rules import load_rules
from alerts.service import AlertProcessor
from inference.news2 import NEWS2_MAX_AGE_MS
from inference.scorer import ScorerSettings
from inference.service import ScoreConfig
from ingest import Reading, ReadingId, Reason, reading_id
from ingest.service import IngestProcessor
from runtime.filemode import dlq_path, run_file
from runtime.metrics import StreamMetrics, new_registry
from runtime.records import InRecord, OutRecord, dead_letter, header
from runtime.topics import RISK, VITALS_DLQ

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
