"""Replay: a cohort directory into vitals.raw; the committed real sample through ingest and the
scorer on a real broker scores every valid row exactly once, and a bad line is dead-lettered."""

from __future__ import annotations

import json
import threading
from collections import Counter
from pathlib import Path

import pytest

from ingest.importers import import_physionet2012
from runtime.topics import RISK, SIM_EVENTS, VITALS, VITALS_DLQ, VITALS_RAW
from tests.support.kafka import create_topics, read_committed, spawn
from wardwatch.replay import cohort_span, records, replay_offset, run_replay

DATA = Path(__file__).parent / "data"


def test_offset_ends_the_replay_at_now() -> None:
    assert replay_offset(1000, 1000 + 3_600_000, 0, now_ms=10_000_000) + 1000 + 3_600_000 == 10_000_000
    # At speed 4 a one-hour span starts 45 min before now and, paced, ends at now + 0.
    assert replay_offset(0, 3_600_000, 4, now_ms=10_000_000) == 10_000_000 - 2_700_000


def test_records_shift_times_and_keep_bad_lines(tmp_path: Path) -> None:
    (tmp_path / "readings.jsonl").write_text('{"patient_id":"a","device_id":"d","seq":0,"ts_ms":5,"hr":80}\nnot json\n[1]\n')
    out = list(records(tmp_path, 100))
    assert out[0].key == b"a" and json.loads(out[0].value)["ts_ms"] == 105
    assert [(r.key, r.ts_ms, r.value) for r in out[1:]] == [(None, None, b"not json"), (None, None, b"[1]")]
    assert cohort_span(tmp_path) == (5, 5)


@pytest.mark.kafka
def test_replay_of_the_real_sample_scores_every_valid_row_once(kafka_bootstrap: str, topic_prefix: str, workdir: Path, tmp_path: Path) -> None:
    cohort = tmp_path / "p12"
    import_physionet2012(DATA / "physionet2012").write(cohort)
    valid = [json.loads(line) for line in (cohort / "readings.jsonl").read_text().splitlines()]
    with open(cohort / "readings.jsonl", "a") as f:  # a bad row in the file: dead-lettered like a bad record
        f.write('{"patient_id": "132539", "device_id": "import-132539", "seq": 99999, "ts_ms": 1, "hr": "fast"}\n')
    common = ["--bootstrap-servers", kafka_bootstrap, "--topic-prefix", topic_prefix, "--metrics-port", "0"]
    create_topics(kafka_bootstrap, topic_prefix)
    ingest = spawn("ingest", ["ingest", *common, "--max-age-ms", "0"], workdir)
    score = spawn("score", ["score", *common], workdir)
    try:
        sent = run_replay(cohort, kafka_bootstrap, speed=0, stop=threading.Event(), topic_prefix=topic_prefix)
        assert sent == len(valid) + 1
        risk = read_committed(kafka_bootstrap, topic_prefix + RISK, expect=len(valid), timeout_s=240)
        for service in (ingest, score):
            assert service.alive(), service.log()
    finally:
        for service in (ingest, score):
            service.stop()
    scored = Counter((r.json()["patient_id"], r.json()["seq"]) for r in risk)
    assert scored == Counter((r["patient_id"], r["seq"]) for r in valid), "every valid row has exactly one risk record"
    dlq = read_committed(kafka_bootstrap, topic_prefix + VITALS_DLQ)
    assert [r.headers["reason"].decode() for r in dlq] == ["wrong_type"]
    assert len(read_committed(kafka_bootstrap, topic_prefix + VITALS)) == len(valid)
    raw = read_committed(kafka_bootstrap, topic_prefix + VITALS_RAW)
    assert len(raw) == len(valid) + 1
    assert read_committed(kafka_bootstrap, topic_prefix + SIM_EVENTS, quiet_s=1) == []  # 2012 has outcomes, no events
