"""The scorer's hot path under pyinstrument: where the time goes.

`python -m bench.hot_path [--quick]` (also part of `python -m bench`). Runs in-process:
- loop: the real StreamLoop + ScorerProcessor against the broker (poll, score, transaction),
  input preloaded, once on each Kafka client; stops when every output is committed. This is
  the end-to-end split. Only the loop's thread is sampled, not the clients' own threads.
- core: ScorerProcessor.process alone on pre-built InRecords in poll-sized batches (no Kafka):
  the split inside scoring.
Writes bench/results/profile.md (summary + both pyinstrument trees).
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

from pyinstrument import Profiler

from bench.clients import SIZES
from bench.common import Input, Observer, broker, cohort_input, create_topics, fresh_prefix, in_records, logger, preload, run_parser, run_record
from inference.service import ScoreConfig, build_scorer, load_model
from runtime.kafka.client import CLIENTS
from runtime.kafka.loop import StreamLoop
from runtime.metrics import StreamMetrics, new_registry
from runtime.service import tune_gc
from runtime.topics import RISK, VITALS, VITALS_DLQ

log = logger("bench.hot_path")

# Inclusive time of these functions (outermost call only) is the summary table.
LOOP_PARTS = {
    "poll": "poll (the client's fetch + record parsing)",
    "process": "ScorerProcessor.process (the core)",
    "_commit": "_commit (send outputs + offsets + commit transaction)",
    "send": "  of which Producer.send (per record)",
    "commit_transaction": "  of which commit_transaction (broker round trip)",
    "send_offsets_to_transaction": "  of which send_offsets_to_transaction",
}
CORE_PARTS = {
    "decode_reading": "decode_reading (JSON -> Reading)",
    "_plan": "_plan (late readings, fresh starts, rounds)",
    "_apply": "_apply (inputs, one batched step per round, NEWS2, explanations, records)",
    "step": "  of which the model step (ONNX Runtime)",
    "news2_batch": "  of which news2_batch",
    "_risk_json": "  of which _risk_json (risk record formatting)",
    "observe_many": "  of which prometheus observe_many (once per batch)",
    "dead_letter": "  of which dead_letter (late readings)",
    "encode_row": "encode_row (scorer.state rows)",
    "_evict_idle": "_evict_idle",
}


def _inclusive(root, names: set[str]) -> dict[str, float]:
    """Time spent inside each named function, counting only its outermost frames."""
    totals = {n: 0.0 for n in names}

    def walk(frame, active: frozenset[str]) -> None:
        name = frame.function
        if name in names and name not in active:
            totals[name] += frame.time
            active = active | {name}
        for child in frame.children:
            walk(child, active)

    walk(root, frozenset())
    return totals


def _table(title: str, root, parts: dict[str, str]) -> list[str]:
    total = root.time or 1.0
    times = _inclusive(root, set(parts))
    lines = [f"### {title} (total {total:.2f} s sampled)", "", "| where | seconds | % of total |", "|---|---:|---:|"]
    for name, label in parts.items():
        lines.append(f"| {label} | {times[name]:.2f} | {100 * times[name] / total:.1f}% |")
    return lines + [""]


def _flat_self(profiler: Profiler, top: int = 15) -> list[str]:
    """pyinstrument's flat view: the functions with the most self time (where the CPU is)."""
    flat = profiler.output_text(unicode=False, color=False, flat=True, time="percent_of_total")
    rows = [line for line in flat.splitlines() if line.strip() and line.lstrip()[0].isdigit()][:top]
    return ["Top self-time frames (% of the sampled total):", "", "```", *rows, "```", ""]


def profile_loop(bootstrap: str, data: Input, checkpoint: str, client: str) -> Profiler:
    prefix = fresh_prefix(f"profile-{client}")
    create_topics(bootstrap, prefix)
    preload(bootstrap, prefix + VITALS, data.records)
    config = ScoreConfig(bootstrap_servers=bootstrap, topic_prefix=prefix, instance_id="profile", metrics_port=-1,
                         kafka_client=client)
    model, version = load_model(checkpoint)
    metrics = StreamMetrics(new_registry(), "score")
    processor = build_scorer(config, metrics, model, version)
    stop = threading.Event()
    observer = Observer(bootstrap, [prefix + RISK, prefix + VITALS_DLQ])

    def until_done() -> None:
        observer.wait_for(len(data.records), 300)
        stop.set()

    watcher = threading.Thread(target=until_done, daemon=True)
    watcher.start()
    tune_gc()
    profiler = Profiler(interval=0.001)
    profiler.start()
    try:
        StreamLoop(processor, config, metrics, stop).run()
    finally:
        profiler.stop()
        observer.close()
    return profiler


def profile_core(data: Input, checkpoint: str, batch: int = 2000) -> tuple[Profiler, float]:
    model, version = load_model(checkpoint)
    metrics = StreamMetrics(new_registry(), "score")
    processor = build_scorer(ScoreConfig(metrics_port=-1), metrics, model, version)
    records = in_records(data.records, int(time.time() * 1000))
    tune_gc()
    profiler = Profiler(interval=0.0005)
    started = time.perf_counter()
    profiler.start()
    for i in range(0, len(records), batch):
        processor.process(records[i : i + batch])
    profiler.stop()
    return profiler, len(records) / (time.perf_counter() - started)


def write(path: Path, loops: dict[str, Profiler], core: Profiler, core_rate: float, command: str) -> dict[str, object]:
    """profile.md: the loop on each client (`loops`, by client name) and the core alone."""
    core_root = core.last_session.root_frame()
    core_times = _inclusive(core_root, set(CORE_PARTS))
    lines = [
        "# Scorer hot-path profile (pyinstrument)", "", f"Command: `{command}`", "",
        "Profiled in-process; only the loop's thread is sampled (the Kafka clients' own threads are not).", "",
    ]
    loop_share: dict[str, dict[str, float]] = {}
    for client, loop in loops.items():
        root = loop.last_session.root_frame()
        times = _inclusive(root, set(LOOP_PARTS))
        lines += [*_table(f"StreamLoop + ScorerProcessor against the broker, {client}", root, LOOP_PARTS), *_flat_self(loop)]
        loop_share[client] = {k: round(v / (root.time or 1.0), 3) for k, v in times.items()}
    lines += [
        *_table(f"ScorerProcessor.process alone ({core_rate:,.0f} readings/s under the profiler)", core_root, CORE_PARTS),
        *_flat_self(core),
    ]
    for client, loop in loops.items():
        lines += [f"## pyinstrument: loop, {client}", "", "```", loop.output_text(unicode=False, color=False), "```", ""]
    lines += ["## pyinstrument: core", "", "```", core.output_text(unicode=False, color=False), "```", ""]
    path.write_text("\n".join(lines))
    ct = core_root.time or 1.0
    return {
        "loop_share": loop_share,
        "core_share": {k: round(v / ct, 3) for k, v in core_times.items()},
        "core_readings_per_s_under_profiler": round(core_rate, 1),
    }


def main(argv: list[str] | None = None) -> int:
    args = run_parser("bench.hot_path", __doc__, "smaller input", "model for the scorer ('untrained' works)").parse_args(argv)
    mode = "quick" if args.quick else "full"
    data = cohort_input(*SIZES[mode])
    record = run_record("bench.hot_path", mode, argv)
    with broker() as (bootstrap, _description):
        loops = {client: profile_loop(bootstrap, data, args.checkpoint, client) for client in CLIENTS}
    core, core_rate = profile_core(data, args.checkpoint)
    args.results.mkdir(parents=True, exist_ok=True)
    write(args.results / "profile.md", loops, core, core_rate, record["command"])
    log(f"wrote {args.results / 'profile.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
