"""Scenario 6: memory per patient and restore time from the changelog, by number of patients.

The parent writes N state rows with the real encoder (`inference.state.changelog.encode_row`)
into a fresh `scorer.state` topic (6 partitions, keyed by patient id, default partitioner). A
fresh child process (`python -m bench.state_scale --restore ...`, so RSS is not polluted by
the writer) then does what StreamLoop.restore does for all 6 partitions: `read_changelog`
(kafka-python, read_committed) then `restore_partition`, timing each, and reports the
StateTable's bytes and its own RSS growth.
"""

from __future__ import annotations

import argparse
import gc
import json
import subprocess
import sys
import time

import numpy as np

from bench.common import PARTITIONS, PYTHON, REPO, create_topics, env, fresh_prefix, preload
from inference.service import load_model
from inference.state.changelog import CONTENT_TYPE, encode_row
from inference.state.table import StateTable
from runtime.topics import SCORER_STATE


def write_changelog(bootstrap: str, topic: str, patients: int, checkpoint: str) -> float:
    """N rows of plausible state (random hidden, recent values) produced to `topic`; returns seconds."""
    model, version = load_model(checkpoint)
    rng = np.random.default_rng(0)
    chunk = 50_000
    seconds = 0.0
    for start in range(0, patients, chunk):
        n = min(chunk, patients - start)
        table = StateTable(model.state_size, capacity=n)
        ids = [f"P{start + i:07d}" for i in range(n)]
        rows = [table.row_of(pid, 0) for pid in ids]
        table.hidden[rows] = rng.standard_normal((n, model.state_size), dtype=np.float32)
        table.last_values[rows] = rng.uniform(30, 120, (n, table.last_values.shape[1])).astype(np.float32)
        table.seen_ts[rows] = 1_767_225_600_000
        table.last_ts[rows] = 1_767_225_600_000
        table.last_offset[rows] = np.arange(n)
        table.spo2_scale[rows] = 1
        records = [(pid.encode(), encode_row(table, row, version)) for pid, row in zip(ids, rows)]
        seconds += preload(bootstrap, topic, records, headers=[("content-type", CONTENT_TYPE)])
    return seconds


def measure(bootstrap: str, patients: int, checkpoint: str) -> dict[str, object]:
    prefix = fresh_prefix(f"state{patients}")
    create_topics(bootstrap, prefix, (SCORER_STATE,))
    write_s = write_changelog(bootstrap, prefix + SCORER_STATE, patients, checkpoint)
    out = subprocess.run(
        [PYTHON, "-m", "bench.state_scale", "--restore", "--bootstrap-servers", bootstrap,
         "--topic", prefix + SCORER_STATE, "--patients", str(patients), "--checkpoint", checkpoint],
        cwd=REPO, env=env(), capture_output=True, text=True, timeout=900,
    )
    if out.returncode != 0:
        raise RuntimeError(f"restore of {patients} patients failed: {out.stderr.strip()[-500:]}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["write_changelog_s"] = round(write_s, 2)
    return result


def _restore_child(bootstrap: str, topic: str, patients: int, checkpoint: str) -> dict[str, object]:
    import psutil

    from inference.state.recovery import restore_partition
    from runtime.kafka.changelog import read_changelog

    model, version = load_model(checkpoint)
    process = psutil.Process()
    gc.collect()
    rss0 = process.memory_info().rss
    table = StateTable(model.state_size)
    started = time.perf_counter()
    by_partition: dict[int, list[tuple[bytes, bytes | None]]] = {p: [] for p in range(PARTITIONS)}
    for partition, key, value in read_changelog(bootstrap, topic, list(range(PARTITIONS)), client_id="bench-restore"):
        by_partition[partition].append((key, value))
    read_s = time.perf_counter() - started
    rss_peak = process.memory_info().rss
    started = time.perf_counter()
    restored = 0
    for partition, entries in by_partition.items():
        restored += restore_partition(table, partition, entries, version).restored
    restore_s = time.perf_counter() - started
    del by_partition, entries
    gc.collect()
    rss1 = process.memory_info().rss
    if restored != patients:
        raise RuntimeError(f"restored {restored} rows, wrote {patients}")
    return {
        "patients": patients,
        "state_size_floats": model.state_size,
        "table_bytes_per_patient": round(table.nbytes() / patients, 1),
        "table_capacity_rows": table.capacity,
        "rss_delta_bytes_per_patient": round((rss1 - rss0) / patients, 1),
        "rss_peak_during_restore_mib": round((rss_peak - rss0) / 2**20, 1),
        "read_changelog_s": round(read_s, 3),
        "restore_partition_s": round(restore_s, 3),
        "restore_total_s": round(read_s + restore_s, 3),
        "rows_per_s": round(patients / (read_s + restore_s), 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.state_scale")
    parser.add_argument("--restore", action="store_true", help="the child: restore and report JSON")
    parser.add_argument("--bootstrap-servers", required=True)
    parser.add_argument("--topic")
    parser.add_argument("--patients", type=int, required=True)
    parser.add_argument("--checkpoint", default="default")
    args = parser.parse_args(argv)
    if args.restore:
        print(json.dumps(_restore_child(args.bootstrap_servers, args.topic, args.patients, args.checkpoint)))
    else:
        print(json.dumps(measure(args.bootstrap_servers, args.patients, args.checkpoint)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
