"""`python -m bench.batching [--quick]`: does a batch holding many readings per patient cost more?

A backlog after downtime, a store-and-forward burst or a small ward puts several readings of the
same patient into one poll. The scorer steps such a batch in rounds (one model call per reading
position, every patient of the round at once), so the question is whether its rate per reading
holds at 1, 5 and 30 readings per patient per batch. Two measurements, one run:

- core: `ScorerProcessor.process` alone on batches of exactly `--batch` records built to hold k
  readings of each of `batch / k` patients (no Kafka): the scorer's own cost per reading;
- end to end: the same backlog shapes preloaded into `vitals` on one broker, drained by `wardwatch
  score` on each client and by the Quix Streams peer (per-message, RocksDB, exactly-once), one
  process each, read_committed; a poll of `--batch` records then holds about k readings per patient.

Writes bench/results/batching.json and batching.md with the machine and the command.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

from bench import peer_quix, scorer
from bench.common import PARTITIONS, broker, cohort_input, in_records, logger, run_parser, run_record
from bench.throughput import run_preloaded
from runtime.kafka.client import CLIENTS

PER_PATIENT = (1, 5, 30)
# Readings in each end-to-end backlog, and the core's timed batches.
SIZES = {"quick": {"readings": 60_000, "core_batches": 6}, "full": {"readings": 150_000, "core_batches": 15}}


log = logger("bench.batching")


def core_rate(per_patient: int, batch: int, batches: int, checkpoint: str) -> float:
    """Readings/s of `ScorerProcessor.process` on batches of `batch` records, `per_patient` each."""
    from inference.service import ScoreConfig, build_scorer, load_model
    from runtime.metrics import StreamMetrics, new_registry

    data = cohort_input(batch * (batches + 1), batch // per_patient, seed=11)
    # cohort_input is in event-time order, one reading per patient per minute: `per_patient`
    # consecutive minutes of every patient make one batch of `batch` records.
    records = in_records(data.records)
    model, version = load_model(checkpoint)
    processor = build_scorer(ScoreConfig(metrics_port=-1), StreamMetrics(new_registry(), "score"), model, version)
    for partition in range(PARTITIONS):
        processor.restore(partition, [])
    chunks = [records[i:i + batch] for i in range(0, len(records), batch)]
    processor.process(chunks[0])  # first sight of every patient: table growth, not steady state
    started = time.perf_counter()
    count = 0
    for chunk in chunks[1:]:
        processor.process(chunk)
        count += len(chunk)
    return count / (time.perf_counter() - started)


def main(argv: list[str] | None = None) -> int:
    parser = run_parser("bench.batching", __doc__, "smaller backlogs (a few minutes)", "model for the scorer and the peer")
    parser.add_argument("--batch", type=int, default=10_000, help="records per poll (the scorer's --max-poll-records)")
    args = parser.parse_args(argv)
    mode = "quick" if args.quick else "full"
    size = SIZES[mode]
    result: dict = run_record("bench.batching", mode, argv) | {
        "batch": args.batch,
        "core": {},
        "end_to_end": {},
    }
    for k in PER_PATIENT:
        rate = core_rate(k, args.batch, size["core_batches"], args.checkpoint)
        result["core"][str(k)] = round(rate, 1)
        log(f"core, {k} per patient per batch: {rate:,.0f} readings/s")
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
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / "batching.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.results / "batching.md").write_text(_markdown(result))
    shutil.rmtree(logdir, ignore_errors=True)
    log(f"wrote {args.results / 'batching.json'} and batching.md")
    return 0


def _markdown(r: dict) -> str:
    m = r["machine"]
    names = [f"scorer-{c}" for c in CLIENTS] + ["peer-quix"]
    lines = [
        "# Readings per patient per batch: 1, 5, 30",
        "",
        f"`{r['command']}` at {r['started_at']} UTC, {r['mode']} mode; {r['broker']}.",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, load average at start {m['load_average_at_start']}; "
        f"Python {m['python']}, onnxruntime {m['onnxruntime']}, confluent-kafka {m['confluent_kafka']}, quixstreams {m['quixstreams']}.",
        f"Batches of {r['batch']:,} records; k readings per patient per batch means {r['batch']:,} / k patients.",
        "",
        "## The scorer core alone (`ScorerProcessor.process`, no Kafka)",
        "",
        "| readings per patient per batch | readings/s | vs 1 per patient |",
        "|---:|---:|---:|",
    ]
    base = r["core"]["1"]
    lines += [f"| {k} | {v:,.0f} | {v / base:.2f} |" for k, v in r["core"].items()]
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
