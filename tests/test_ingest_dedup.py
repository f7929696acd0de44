"""De-duplication in the ingest stage's core: resends dead-lettered, restarts remembered."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.dedup import DedupSettings, DedupState, ReadingId
from ingest.processor import IngestProcessor
from runtime.metrics import StreamMetrics, new_registry
from runtime.records import InRecord, OutRecord, header
from runtime.topics import INGEST_STATE, VITALS, VITALS_DLQ, VITALS_RAW

NOW = 1_767_225_600_000


def raw(offset: int, seq: int, ts_ms: int, device: str = "D1") -> InRecord:
    body = {"patient_id": "P1", "device_id": device, "seq": seq, "ts_ms": ts_ms, "hr": 80}
    return InRecord(VITALS_RAW, 0, offset, b"P1", json.dumps(body).encode(), NOW)


def ingest(settings: DedupSettings = DedupSettings()) -> IngestProcessor:
    return IngestProcessor(StreamMetrics(new_registry(), "ingest"), clock=lambda: NOW / 1000, dedup=settings)


def topics(out: list[OutRecord], topic: str) -> list[OutRecord]:
    return [r for r in out if r.topic == topic]


def test_a_resent_reading_is_dead_lettered_as_duplicate_not_dropped() -> None:
    stage = ingest()
    out = stage.process([raw(0, 1, NOW - 1000), raw(1, 1, NOW - 1000), raw(2, 2, NOW - 500)])
    assert len(topics(out, VITALS)) == 2
    [dup] = topics(out, VITALS_DLQ)
    assert header(dup, "reason") == "duplicate" and header(dup, "source-offset") == "1"


def test_the_same_seq_at_another_time_is_a_device_that_restarted_and_is_accepted() -> None:
    out = ingest().process([raw(0, 1, NOW - 60_000), raw(1, 1, NOW - 1000)])
    assert len(topics(out, VITALS)) == 2 and not topics(out, VITALS_DLQ)


def test_the_window_survives_a_restart_through_the_changelog() -> None:
    first = ingest()
    out = first.process([raw(0, 1, NOW - 1000)])
    changelog = [(r.key, r.value) for r in topics(out, INGEST_STATE)]
    assert changelog and all(r.partition == 0 for r in topics(out, INGEST_STATE))
    restarted = ingest()
    restarted.restore(0, changelog)
    again = restarted.process([raw(5, 1, NOW - 1000)])
    assert [header(r, "reason") for r in topics(again, VITALS_DLQ)] == ["duplicate"]


def test_memory_is_bounded_by_the_window() -> None:
    stage = ingest(DedupSettings(window_ms=60_000, max_seqs=5, max_devices=100))
    stage.process([raw(i, i, NOW - 600_000 + i * 1000) for i in range(50)])
    assert stage.dedup.size() <= 5


def held(state: DedupState) -> int:
    """Seqs held, counted the long way."""
    return sum(len(w.seqs) for p in state._partitions.values() for w in p.devices.values())


@settings(max_examples=150, deadline=None)
@given(st.lists(st.one_of(
    st.tuples(st.just("see"), st.integers(0, 2), st.integers(0, 4), st.integers(0, 9), st.integers(0, 40)),
    st.tuples(st.just("drop"), st.integers(0, 2)),
    st.tuples(st.just("restart"), st.integers(0, 2)),
), max_size=120))
def test_the_size_kept_as_it_goes_is_the_seqs_held(steps: list[tuple]) -> None:
    # size() is read every batch, so it is kept up to date rather than counted over every device.
    state = DedupState(DedupSettings(window_ms=10_000, max_seqs=3, max_devices=2))
    written: dict[int, list[tuple[bytes, bytes | None]]] = {0: [], 1: [], 2: []}
    for step in steps:
        if step[0] == "see":
            _, partition, device, seq, ts = step
            state.seen(partition, ReadingId(f"P{device}", "D", seq, ts * 1000))
        elif step[0] == "drop":
            state.drop([step[1]])
        else:  # a restart of one partition from what its changelog holds so far
            state.restore(step[1], written[step[1]])
        for partition, key, value in state.changes():
            written[partition].append((key, value))
        assert state.size() == held(state)
