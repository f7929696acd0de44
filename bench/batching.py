"""`python -m bench.batching [--quick] [--core-only]`: does a batch holding many readings per patient cost more?

A backlog after downtime, a store-and-forward burst or a small ward puts several readings of the
same patient into one poll. The scorer plans such a batch whole (inference/processor.py): model
inputs for every reading at once, the patients' state gathered and scattered once, one model
step per reading position (round), NEWS2, explanations and records once per batch. The question
is whether its rate per reading holds at 1, 5 and 30 readings per patient per batch. Two
measurements, one run:

- core: `ScorerProcessor.process` alone on batches of exactly `--batch` records built to hold k
  readings of each of `batch / k` patients (no Kafka): the scorer's own cost per reading. Beside
  it, as the baseline, the round-by-round batch it replaced (bench/rounds.py: every round built
  its own inputs, gathered and scattered its state, and did NEWS2, explanations and records on
  its own), on the same batches, repetitions interleaved; the median of the repetitions is
  reported, wall clock and CPU time. The input is frozen out of the garbage collector's view
  (`gc.freeze`) before timing: a service does not hold its whole input in memory, and scanning
  it on every collection would be charged to whichever step happened to allocate. Before
  timing, both paths are run on the same batches and their outputs compared record by record.
- end to end (skipped with --core-only): the same backlog shapes preloaded into `vitals` on one
  broker, drained by `wardwatch score` on each client and by the Quix Streams peer (per-message,
  RocksDB, exactly-once), one process each, read_committed; a poll of `--batch` records then
  holds about k readings per patient.

Writes bench/results/batching.json and batching.md with the machine and the command.
"""

from __future__ import annotations

import gc
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import peer_quix, scorer
from bench.common import PARTITIONS, broker, cohort_input, in_records, logger, machine_line, run_parser, run_record, write_results
from bench.throughput import run_preloaded
from inference.processor import ScorerProcessor
from runtime.kafka.client import CLIENTS
from runtime.records import InRecord

PER_PATIENT = (1, 5, 30)
# Readings in each end-to-end backlog, and the core's timed batches and interleaved repetitions.
SIZES = {
    "quick": {"readings": 60_000, "core_batches": 6, "repeats": 3},
    "full": {"readings": 150_000, "core_batches": 15, "repeats": 5},
}
PATHS = {"planned": "the scorer (batch planned whole)", "round_by_round": "baseline: round by round (bench/rounds.py)"}
CHECKED_BATCHES = 3  # batches both paths run before timing, outputs compared


log = logger("bench.batching")


def _processor(path: str, model: Any, version: str) -> ScorerProcessor:
    """The scorer core as the service builds it (default settings), or the baseline on the same settings."""
    from bench.rounds import RoundByRound
    from inference.service import ScoreConfig, build_scorer
    from runtime.metrics import StreamMetrics, new_registry

    processor = build_scorer(ScoreConfig(metrics_port=-1), StreamMetrics(new_registry(), "score"), model, version)
    if path == "round_by_round":
        processor = RoundByRound(model, version, StreamMetrics(new_registry(), "score"), processor.settings)
    for partition in range(PARTITIONS):
        processor.restore(partition, [])
    return processor


def core_batches(per_patient: int, batch: int, batches: int) -> list[list[InRecord]]:
    """`batches + 1` batches of `batch` records, `per_patient` readings of each of `batch / per_patient` patients."""
    data = cohort_input(batch * (batches + 1), batch // per_patient, seed=11)
    # cohort_input is in event-time order, one reading per patient per minute: `per_patient`
    # consecutive minutes of every patient make one batch of `batch` records.
    records = in_records(data.records)
    return [records[i:i + batch] for i in range(0, len(records), batch)]


def same_output(chunks: list[list[InRecord]], model: Any, version: str) -> bool:
    """Whether both paths write the same records, byte for byte, for the first batches."""
    planned, rounds = _processor("planned", model, version), _processor("round_by_round", model, version)
    return all(planned.process(chunk) == rounds.process(chunk) for chunk in chunks[:CHECKED_BATCHES])


def core_run(path: str, chunks: list[list[InRecord]], model: Any, version: str) -> dict[str, float]:
    """One timed run: readings/s of `process` (wall clock and CPU time) over all batches but the first."""
    processor = _processor(path, model, version)
    processor.process(chunks[0])  # first sight of every patient: table growth, not steady state
    count = sum(len(chunk) for chunk in chunks[1:])
    explained = processor.scorer_metrics.explained._value.get()
    gc.collect()
    gc.freeze()
    try:
        wall, cpu = time.perf_counter(), time.process_time()
        for chunk in chunks[1:]:
            processor.process(chunk)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    finally:
        gc.unfreeze()
    explained = processor.scorer_metrics.explained._value.get() - explained
    return {"readings_per_s": count / wall, "cpu_readings_per_s": count / cpu, "explained": explained}


def core(batch: int, batches: int, repeats: int, checkpoint: str) -> dict[str, dict[str, Any]]:
    """Both paths at every readings-per-patient shape, repetitions interleaved; medians."""
    from inference.service import load_model

    model, version = load_model(checkpoint)
    shapes = {k: core_batches(k, batch, batches) for k in PER_PATIENT}
    out: dict[str, dict[str, Any]] = {}
    for k, chunks in shapes.items():
        same = same_output(chunks, model, version)
        out[str(k)] = {"patients": batch // k, "same_output": same}
        log(f"core, batch {batch}, {k} per patient per batch: the two paths' outputs are {'identical' if same else 'DIFFERENT'}")
    runs: dict[tuple[int, str], list[dict[str, float]]] = {}
    for _ in range(repeats):
        for k, chunks in shapes.items():
            for path in PATHS:
                runs.setdefault((k, path), []).append(core_run(path, chunks, model, version))
    for (k, path), results in runs.items():
        timed = sum(len(chunk) for chunk in shapes[k][1:])
        row = {
            "readings_per_s": round(statistics.median(r["readings_per_s"] for r in results), 1),
            "cpu_readings_per_s": round(statistics.median(r["cpu_readings_per_s"] for r in results), 1),
            "runs_readings_per_s": [round(r["readings_per_s"], 1) for r in results],
            "explained_fraction": round(results[0]["explained"] / timed, 4),
        }
        out[str(k)][path] = row
        log(f"core, batch {batch}, {k} per patient per batch, {path}: {row['readings_per_s']:,.0f} readings/s (median of {repeats}), "
            f"{row['cpu_readings_per_s']:,.0f} per CPU second")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = run_parser("bench.batching", __doc__, "smaller backlogs (a few minutes)", "model for the scorer and the peer")
    parser.add_argument("--batch", type=int, default=10_000, help="records per poll (the scorer's --max-poll-records)")
    parser.add_argument("--core-only", action="store_true", help="the scorer core alone: no broker, no end-to-end runs")
    parser.add_argument("--small-batch", type=int, default=1_000,
                        help="the core also at this batch size (a poll when input trickles in: few patients per round)")
    args = parser.parse_args(argv)
    mode = "quick" if args.quick else "full"
    size = SIZES[mode]
    result: dict = run_record("bench.batching", mode, argv) | {
        "batch": args.batch,
        "small_batch": args.small_batch,
        "core": {},
        "end_to_end": {},
    }
    result["repeats"] = size["repeats"]
    # As many readings per timed run at either batch size: more, smaller batches.
    result["core"] = {str(b): core(b, size["core_batches"] * args.batch // b, size["repeats"], args.checkpoint)
                      for b in (args.batch, args.small_batch)}
    if args.core_only:
        _write(args.results, result)
        return 0
    logdir = Path(tempfile.mkdtemp(prefix="wardwatch-bench-batching-"))
    with broker() as (bootstrap, description):
        result["broker"] = description
        for k in PER_PATIENT:
            patients = args.batch // k
            data = cohort_input(size["readings"], patients, seed=13)
            runs = {f"scorer-{client}": [*scorer.command(bootstrap, args.checkpoint), "--kafka-client", client,
                                         "--max-poll-records", str(args.batch)] for client in CLIENTS}
            runs["peer-quix"] = peer_quix.command(bootstrap, args.checkpoint)
            row: dict[str, object] = {"patients": patients, "readings": len(data.records)}
            for name, command in runs.items():
                t = run_preloaded(bootstrap, f"{name}-k{k}", data, command, logdir, time_cap_s=300)
                row[name] = t.as_dict()
                log(f"{name}, {k} per patient per batch ({patients:,} patients): {t.readings_per_s:,.0f} readings/s")
            result["end_to_end"][str(k)] = row
    _write(args.results, result)
    shutil.rmtree(logdir, ignore_errors=True)
    return 0


def _write(results: Path, result: dict) -> None:
    write_results(results, "batching", result, _markdown(result))
    log(f"wrote {results / 'batching.json'} and batching.md")


def _ratio(a: dict, b: dict) -> str:
    """a / b, wall clock and (in brackets) per CPU second."""
    return f"{a['readings_per_s'] / b['readings_per_s']:.2f} ({a['cpu_readings_per_s'] / b['cpu_readings_per_s']:.2f})"


def _markdown(r: dict) -> str:
    m = r["machine"]
    names = [f"scorer-{c}" for c in CLIENTS] + ["peer-quix"]
    lines = [
        "# Readings per patient per batch: 1, 5, 30",
        "",
        f"`{r['command']}` at {r['started_at']} UTC, {r['mode']} mode; {r.get('broker', 'no broker (--core-only)')}.",
        f"Machine: {machine_line(m)}; "
        f"Python {m['python']}, onnxruntime {m['onnxruntime']}, confluent-kafka {m['confluent_kafka']}, quixstreams {m['quixstreams']}.",
        f"Batches of {r['batch']:,} records (the core also {r['small_batch']:,}); k readings per patient per batch means batch / k patients.",
        "",
        "## The scorer core alone (`ScorerProcessor.process`, no Kafka)",
        "",
        f"Readings/s: median of {r['repeats']} interleaved repetitions, wall clock, and in brackets per CPU second "
        "(the better measure when the machine is shared: the load average above). "
        "Planned: the scorer as it is now; round by round: the batch it replaced (bench/rounds.py), on the same batches. "
        "Explained: the share of readings the default selection explains (the data differs with the shape: "
        "many patients over minutes, or few over hours).",
    ]
    for batch, core in r["core"].items():
        base = core["1"]
        lines += [
            "",
            f"Batches of {int(batch):,} records:",
            "",
            "| readings per patient per batch | patients | planned readings/s | vs 1 per patient | round by round readings/s "
            "| vs 1 per patient | planned / round by round | explained | outputs identical |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|:---|",
        ]
        for k, row in core.items():
            new, old = row["planned"], row["round_by_round"]
            lines.append(
                f"| {k} | {row['patients']:,} | {new['readings_per_s']:,.0f} ({new['cpu_readings_per_s']:,.0f}) "
                f"| {_ratio(new, base['planned'])} | {old['readings_per_s']:,.0f} ({old['cpu_readings_per_s']:,.0f}) "
                f"| {_ratio(old, base['round_by_round'])} | {_ratio(new, old)} | {new['explained_fraction']:.0%} "
                f"| {'yes' if row['same_output'] else 'NO'} |"
            )
    if not r["end_to_end"]:
        return "\n".join([*lines, "", "End to end: not run (`--core-only`)."]) + "\n"
    lines += [
        "",
        "## End to end: preloaded backlog, one process, transactional, read_committed",
        "",
        "| per patient | patients | readings | " + " | ".join(f"{n} /s" for n in names) + " | scorer (fastest client) / peer |",
        "|---:|---:|---:|" + "---:|" * (len(names) + 1),
    ]
    for k, row in r["end_to_end"].items():
        rates = [row[n]["readings_per_s"] for n in names]
        best = max(rates[:-1])
        ratio = f"{best / rates[-1]:.2f}" if rates[-1] else "-"
        capped = any(row[n]["time_capped"] for n in names)
        lines.append(f"| {k} | {row['patients']:,} | {row['readings']:,} | " + " | ".join(f"{x:,.0f}" for x in rates)
                     + f" | {ratio}{' (a run hit its time cap)' if capped else ''} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
