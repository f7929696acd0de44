"""File mode: run a stage's core over a JSONL file, no Kafka (replays, datasets, core tests).

Each input line is one record value. The stage's main output goes to `output`, one JSON value
per line; records for the stage's dead-letter topic (`processor.dead_letter_topic`) go to
`output` + `.dlq.jsonl` with their reason; changelog records are not written (file mode starts
from empty state and keeps it in memory).
"""

from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass
from pathlib import Path

from runtime.metrics import StreamMetrics
from runtime.processor import Processor
from runtime.records import InRecord, OutRecord, header


@dataclass(frozen=True, slots=True)
class FileRunResult:
    records_in: int
    records_out: int
    rejected: int


def dlq_path(output: str | Path) -> Path:
    output = Path(output)
    return output.with_name(output.name.removesuffix(".jsonl") + ".dlq.jsonl")


def run_file(
    processor: Processor, input_path: str | Path, output_path: str | Path, metrics: StreamMetrics, batch_size: int = 2000
) -> FileRunResult:
    """Feed `input_path` through `processor` in batches; write outputs as JSONL."""
    stage = processor.stage
    topic = processor.input_topics[0]
    dead_letters = processor.dead_letter_topic
    n_in = n_out = n_dlq = 0
    now_ms = int(time.time() * 1000)
    with open(input_path, "rb") as src, open(output_path, "wb") as out, open(dlq_path(output_path), "wb") as dlq:
        batch: list[InRecord] = []
        offset = 0

        def flush() -> None:
            nonlocal n_out, n_dlq
            for record in processor.process(batch):
                if dead_letters is not None and record.topic == dead_letters:
                    dlq.write(_dlq_line(record))
                    n_dlq += 1
                elif record.topic == processor.changelog_topic or record.value is None:
                    continue
                else:
                    out.write(record.value + b"\n")
                    n_out += 1
                    metrics.records_out.labels(stage, record.topic).inc()
            batch.clear()

        for line in src:
            line = line.rstrip(b"\r\n")
            if not line.strip():
                offset += 1
                continue
            batch.append(InRecord(topic=topic, partition=0, offset=offset, key=None, value=line, timestamp_ms=now_ms))
            offset += 1
            n_in += 1
            metrics.records_in.labels(stage, topic).inc()
            if len(batch) >= batch_size:
                flush()
        if batch:
            flush()
    return FileRunResult(records_in=n_in, records_out=n_out, rejected=n_dlq)


def _dlq_line(record: OutRecord) -> bytes:
    entry: dict[str, object] = {name: header(record, name) for name in ("reason", "detail", "stage", "source-topic")}
    entry["source-offset"] = int(header(record, "source-offset") or -1)
    try:
        entry["value"] = record.value.decode("utf-8") if record.value is not None else None
    except UnicodeDecodeError:
        entry["value_base64"] = base64.b64encode(record.value or b"").decode()
    return json.dumps(entry, separators=(",", ":")).encode() + b"\n"
