"""The local broker's configuration (pure: the file it writes, no broker started)."""

from __future__ import annotations

from pathlib import Path

from wardwatch.broker import LocalBroker

KAFKA_DEFAULT_INDEX_BYTES = 10 * 1024 * 1024
INDEX_INTERVAL_BYTES = 4096  # Kafka's default index.interval.bytes: one index entry per this much log
TIME_INDEX_ENTRY_BYTES = 12


def _properties(path: Path) -> dict[str, str]:
    lines = [line for line in path.read_text().splitlines() if line and not line.startswith("#")]
    return dict(line.split("=", 1) for line in lines)


def test_segment_indexes_hold_a_full_segment_without_kafkas_10_mib_preallocation(tmp_path: Path) -> None:
    broker = LocalBroker(port=19092, home=tmp_path, insecure_plaintext=True)
    broker.dir.mkdir(parents=True, exist_ok=True)
    props = _properties(broker._write_config())
    segment, index = int(props["log.segment.bytes"]), int(props["log.index.size.max.bytes"])
    # Smaller than Kafka's default (whose first write stalls a fresh partition's appends), yet a
    # segment still rolls by size, not because its time index filled up first.
    assert index < KAFKA_DEFAULT_INDEX_BYTES
    assert segment // INDEX_INTERVAL_BYTES * TIME_INDEX_ENTRY_BYTES <= index
    assert "index.interval.bytes" not in props and "log.index.interval.bytes" not in props
