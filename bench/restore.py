"""Restore without stalling the group: how long the poll loop stops, and how much of the other
partitions it scores, while one partition restores N patients' state.

`python -m bench.restore [--patients 100000 1000000] [--client kafka-python] [--checkpoint untrained]`

One local broker (bench.common.broker, TLS + SCRAM). For each N: fresh topics; N scorer state
rows (the real encoder) on `scorer.state` partition 0; a backlog of readings on input partitions
1-5 (other patients). Then the production StreamLoop + ScorerProcessor runs in this process and
is assigned all six partitions: partition 0 restores N rows while 1-5 have work waiting.

Measured over the restore window (assignment to partition 0 resumed):
- the longest loop step (the longest time between two polls: before this change, the whole
  restore ran inside the rebalance callback, so the poll loop stopped for the whole window);
- the readings of partitions 1-5 scored and committed in the window, and their rate;
- the restore's own work (reading and rebuilding, a slice per step) and its longest slice.
The loop is subclassed only to time its steps and note when the restore ends.
Writes bench/results/restore.json and .md.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import threading
import time
from collections import deque
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from bench.common import PARTITIONS, broker, create_topics, fresh_prefix, machine, machine_line, write_results
from inference.service import ScoreConfig, build_scorer, load_model
from inference.state.changelog import CONTENT_TYPE, encode_row
from inference.state.table import StateTable
from ingest.contract import Reading, encode_reading
from runtime.kafka.changelog import ChangelogRestore
from runtime.kafka.client import KafkaClientError, TopicPartition
from runtime.kafka.loop import StreamLoop
from runtime.metrics import StreamMetrics, new_registry
from runtime.records import InRecord, OutRecord
from runtime.topics import SCORER_STATE, VITALS

RESULTS = Path(__file__).resolve().parent / "results"
RESTORED = 0  # the partition with the large changelog


def _producer(bootstrap: str):  # noqa: ANN202
    from confluent_kafka import Producer

    from runtime.kafka import security

    return Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "enable.idempotence": True,
                     "queue.buffering.max.messages": 1_000_000, **security.current_properties()})


def _produce(producer, topic: str, partition: int, key: bytes, value: bytes, headers: list | None = None) -> None:  # noqa: ANN001
    while True:
        try:
            producer.produce(topic, key=key, value=value, partition=partition, headers=headers)
            return
        except BufferError:
            producer.poll(0.05)


def write_state(bootstrap: str, topic: str, patients: int, checkpoint: str) -> float:
    """N plausible state rows on partition RESTORED; returns seconds."""
    model, version = load_model(checkpoint)
    rng = np.random.default_rng(0)
    started = time.perf_counter()
    producer = _producer(bootstrap)
    chunk = 50_000
    for start in range(0, patients, chunk):
        n = min(chunk, patients - start)
        table = StateTable(model.state_size, capacity=n)
        ids = [f"R{start + i:07d}" for i in range(n)]
        rows = [table.row_of(pid, RESTORED) for pid in ids]
        table.hidden[rows] = rng.standard_normal((n, model.state_size), dtype=np.float32)
        table.last_values[rows] = rng.uniform(30, 120, (n, table.last_values.shape[1])).astype(np.float32)
        table.seen_ts[rows] = 1_767_225_600_000
        table.last_ts[rows] = 1_767_225_600_000
        table.spo2_scale[rows] = 1
        for pid, row in zip(ids, rows):
            _produce(producer, topic, RESTORED, pid.encode(), encode_row(table, row, version), [("content-type", CONTENT_TYPE)])
        producer.poll(0)
    if producer.flush(120):
        raise RuntimeError("state rows undelivered after 120 s")
    return time.perf_counter() - started


def write_backlog(bootstrap: str, topic: str, readings: int, patients: int) -> None:
    """`readings` readings of `patients` patients, one a minute each, spread over partitions 1-5."""
    producer = _producer(bootstrap)
    rng = np.random.default_rng(1)
    t0 = 1_767_225_600_000
    per = max(1, readings // patients)
    for k in range(per):
        for i in range(patients):
            partition = 1 + i % (PARTITIONS - 1)
            pid = f"B{i:06d}"
            reading = Reading(patient_id=pid, device_id=f"{pid}-mon", seq=k, ts_ms=t0 + 60_000 * (k + 1),
                              hr=round(float(rng.normal(80, 10)), 1), rr=round(float(rng.normal(16, 3)), 1),
                              spo2=round(float(min(100, rng.normal(96, 2))), 1), sbp=round(float(rng.normal(120, 12)), 1),
                              temp=round(float(rng.normal(37, 0.4)), 1), on_oxygen=False, acvpu="A")
            _produce(producer, topic, partition, pid.encode(), encode_reading(reading))
        producer.poll(0)
    if producer.flush(120):
        raise RuntimeError("backlog undelivered after 120 s")


class TimedLoop(StreamLoop):
    """The production loop, timing each step and noting when partition RESTORED is resumed."""

    def __init__(self, *args, **kwargs) -> None:  # noqa: ANN002, ANN003
        super().__init__(*args, **kwargs)
        self.steps: list[tuple[float, float]] = []  # (start, seconds)
        self.assigned_at: float | None = None
        self.restored_at: float | None = None
        self.rebuild_s = 0.0
        self.restore_work: list[tuple[float, float]] = []  # (start, seconds) of each step's restore work
        self.scored: list[tuple[float, int]] = []  # (commit time, readings of partitions != RESTORED)
        self._sent: deque[int] = deque()  # readings of partitions != RESTORED in each transaction not yet committed
        self._batch_others = 0  # readings of partitions != RESTORED in the batch being processed

    def assigned(self, tps: list[TopicPartition]) -> None:
        if self.assigned_at is None:
            self.assigned_at = time.perf_counter()
        super().assigned(tps)

    def _step(self) -> None:
        started = time.perf_counter()
        super()._step()
        self.steps.append((started, time.perf_counter() - started))

    def _advance_restores(self) -> None:
        started = time.perf_counter()
        super()._advance_restores()
        self.restore_work.append((started, time.perf_counter() - started))

    def _finish_restore(self, partition: int, restore: ChangelogRestore) -> None:
        started = time.perf_counter()
        super()._finish_restore(partition, restore)
        if partition == RESTORED:
            self.restored_at = time.perf_counter()
            self.rebuild_s = self.restored_at - started

    def _send(self, outputs: list[OutRecord]) -> None:
        super()._send(outputs)
        self._sent.append(self._batch_others)

    def _committed(self, records_out: dict[str, int], started: float) -> None:
        super()._committed(records_out, started)
        self.scored.append((time.perf_counter(), self._sent.popleft()))

    def _failed(self, exc: KafkaClientError, records: int) -> None:
        self._sent.clear()
        super()._failed(exc, records)


class CountingScorer:
    """The scorer, counting the readings of partitions other than RESTORED in each batch."""

    def __init__(self, inner, loop_ref: list[TimedLoop]) -> None:  # noqa: ANN001
        self._inner = inner
        self._loop = loop_ref

    def __getattr__(self, name: str):  # noqa: ANN204
        return getattr(self._inner, name)

    def process(self, records: Sequence[InRecord]) -> list[OutRecord]:
        self._loop[0]._batch_others = sum(1 for r in records if r.partition != RESTORED)
        return self._inner.process(records)


def measure(bootstrap: str, patients: int, backlog: int, checkpoint: str, client: str) -> dict[str, object]:
    prefix = fresh_prefix(f"restore{patients}")
    create_topics(bootstrap, prefix)
    write_s = write_state(bootstrap, prefix + SCORER_STATE, patients, checkpoint)
    write_backlog(bootstrap, prefix + VITALS, backlog, 2_000)
    config = ScoreConfig(bootstrap_servers=bootstrap, topic_prefix=prefix, instance_id="restore-bench", metrics_port=-1,
                         kafka_client=client)
    model, version = load_model(checkpoint)
    metrics = StreamMetrics(new_registry(), "score")
    ref: list[TimedLoop] = []
    processor = CountingScorer(build_scorer(config, metrics, model, version), ref)
    stop = threading.Event()
    loop = TimedLoop(processor, config, metrics, stop)  # type: ignore[arg-type]
    ref.append(loop)
    runner = threading.Thread(target=loop.run, daemon=True)
    runner.start()
    deadline = time.monotonic() + 900
    while loop.restored_at is None and time.monotonic() < deadline and runner.is_alive():
        time.sleep(0.2)
    time.sleep(1.0)
    stop.set()
    runner.join(60)
    if loop.restored_at is None or loop.assigned_at is None:
        raise RuntimeError(f"the restore of {patients} rows did not finish")
    start, end = loop.assigned_at, loop.restored_at
    window = [seconds for at, seconds in loop.steps if start <= at <= end]
    # A step that began before the end and ran past it still counts (the rebuild's step).
    longest = max(window, default=0.0)
    work = [seconds for at, seconds in loop.restore_work if start <= at <= end]
    scored = sum(n for at, n in loop.scored if start <= at <= end)
    aborted = metrics.transactions.labels("score", "aborted")._value.get()
    return {
        "patients": patients,
        "client": client,
        "write_state_s": round(write_s, 2),
        "restore_window_s": round(end - start, 3),
        "rebuild_state_s": round(loop.rebuild_s, 3),
        "steps_in_window": len(window),
        "longest_step_s": round(longest, 3),
        "p99_step_s": round(float(np.percentile(window, 99)), 3) if window else 0.0,
        "longest_restore_slice_s": round(max(work, default=0.0), 3),
        "restore_work_s": round(sum(work), 3),
        "other_readings_scored_in_window": scored,
        "other_readings_per_s_in_window": round(scored / (end - start), 1) if end > start else 0.0,
        "aborted_transactions": aborted,
    }


def report(result: dict) -> str:
    m = result["machine"]
    lines = [
        "# Restore without stalling the group", "",
        f"- command: `{result['command']}`",
        f"- when: {result['started_at']} UTC, took {result['took_s']} s",
        f"- machine: {machine_line(m)} (a shared machine: other work was running)",
        f"- broker: {result['broker']}; model: {result['model']}",
        f"- scenario: one scorer (the production StreamLoop) assigned all {PARTITIONS} partitions; partition {RESTORED} restores "
        f"N state rows from `scorer.state` while {result['backlog']:,} readings of 2,000 other patients wait on partitions 1-5.",
        "",
        "| client | patients restored | restore window s | longest restore work between two polls s | last rebuild call s "
        "| longest time between two polls s | steps in window | other partitions: readings scored in window | readings/s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in result["runs"]:
        lines.append(f"| {r['client']} | {r['patients']:,} | {r['restore_window_s']} | {r['longest_restore_slice_s']} | "
                     f"{r['rebuild_state_s']} | {r['longest_step_s']} | {r['steps_in_window']} | "
                     f"{r['other_readings_scored_in_window']:,} | {r['other_readings_per_s_in_window']:,} |")
    lines += [
        "",
        "Before this change the restore ran inside the rebalance callback: the poll loop stopped for the whole restore "
        "window, and no other partition was scored in it (bench/results/latest.md, state scale: 19 s for 1,000,000 "
        "patients). Now the partition in restore is paused and its changelog read a slice at a time between polls "
        "(0.1 s, or as long as the last batch of the other partitions took; one fetch's parsing can overrun it). "
        "The scorer rebuilds the state a slice at a time as it is read (`restore_in_slices`), so the restore work "
        "between two polls is one slice of reading and rebuilding. The longest time between two polls also holds the "
        "scoring and the "
        "transaction of one poll of the other partitions (`--max-poll-records`, default 10,000).",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.restore", description=__doc__)
    parser.add_argument("--patients", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--backlog", type=int, default=200_000, help="readings waiting on the other partitions")
    parser.add_argument("--client", nargs="+", default=["kafka-python"])
    parser.add_argument("--checkpoint", default="untrained")
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    started = time.monotonic()
    result: dict = {
        "command": "python -m bench.restore" + "".join(f" {a}" for a in (sys.argv[1:] if argv is None else argv)),
        "started_at": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M:%S"),
        "machine": machine(),
        "model": load_model(args.checkpoint)[1],
        "backlog": args.backlog,
        "runs": [],
    }
    with broker() as (bootstrap, description):
        result["broker"] = description
        for client in args.client:
            for n in args.patients:
                run = measure(bootstrap, n, args.backlog, args.checkpoint, client)
                print(json.dumps(run), file=sys.stderr, flush=True)
                result["runs"].append(run)
    result["took_s"] = round(time.monotonic() - started)
    write_results(args.results, "restore", result, report(result))
    print(report(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
