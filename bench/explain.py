"""What explanations cost: the scorer with and without them, in the same run.

`python -m bench.explain [--readings 60000] [--patients 2000] [--checkpoint default] [--repeats 3]`

- service: `wardwatch score` as deployed (one process, the bench broker, the input preloaded)
  with `--explain off`, `selected` (the default) and `all`, runs interleaved and the median
  kept, so load from other work on a shared machine hits each alike;
- core: `ScorerProcessor.process` on the same input in 2000-record polls (no Kafka), each
  policy, with the share of readings explained and the seconds in the occlusion step.
Writes bench/results/explain.json and .md. `python -m bench` runs the service pair too.
"""

from __future__ import annotations

import argparse
import datetime
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench.common import broker, cohort_input, machine, machine_line
from bench.runtime import in_records
from bench.scorer import CHECKPOINT, command
from bench.throughput import run_preloaded
from inference.processor import EXPLAIN_POLICIES, ScorerProcessor, ScorerSettings
from inference.service import load_model
from runtime.metrics import StreamMetrics, new_registry

RESULTS = Path(__file__).resolve().parent / "results"
POLL = 2000


def service(bootstrap: str, data, checkpoint: str, logdir: Path, repeats: int = 1, cap_s: float = 300) -> dict[str, dict]:  # noqa: ANN001
    """Readings/s of the scorer service under each explanation policy; runs interleaved, medians."""
    rates: dict[str, list[float]] = {p: [] for p in EXPLAIN_POLICIES}
    for r in range(repeats):
        for policy in ("off", "selected", "all"):
            t = run_preloaded(bootstrap, f"explain-{policy}-{r}", data, command(bootstrap, checkpoint) + ["--explain", policy], logdir,
                              time_cap_s=cap_s)
            rates[policy].append(t.readings_per_s)
    out = {p: {"readings_per_s": round(statistics.median(v), 1), "runs": [round(x, 1) for x in v]} for p, v in rates.items()}
    for p in ("selected", "all"):
        out[p]["vs_off"] = round(out[p]["readings_per_s"] / out["off"]["readings_per_s"], 3) if out["off"]["readings_per_s"] else None
    return out


def core(data, checkpoint: str, repeats: int) -> dict[str, dict]:  # noqa: ANN001
    step, version = load_model(checkpoint)
    records = in_records(data.records)
    times: dict[str, list[float]] = {p: [] for p in EXPLAIN_POLICIES}
    extra: dict[str, dict] = {}
    for _ in range(repeats):
        for policy in ("off", "selected", "all"):
            scorer = ScorerProcessor(step, version, StreamMetrics(new_registry(), "score"), ScorerSettings(explain=policy))
            started = time.perf_counter()
            for i in range(0, len(records), POLL):
                scorer.process(records[i : i + POLL])
            times[policy].append(time.perf_counter() - started)
            m = scorer.scorer_metrics
            extra[policy] = {"explained_share": round(m.explained._value.get() / len(records), 3),
                             "model_step_s": round(m.inference_seconds._sum.get(), 3),
                             "explain_s": round(m.explain_seconds._sum.get(), 3)}
    out = {}
    for p, t in times.items():
        seconds = statistics.median(t)
        out[p] = {"readings_per_s": round(len(records) / seconds, 1), "seconds": round(seconds, 3), **extra[p]}
    for p in ("selected", "all"):
        out[p]["vs_off"] = round(out[p]["readings_per_s"] / out["off"]["readings_per_s"], 3)
    return out


def write(result: dict, results: Path) -> tuple[Path, Path]:
    results.mkdir(parents=True, exist_ok=True)
    json_path, md_path = results / "explain.json", results / "explain.md"
    json_path.write_text(json.dumps(result, indent=2) + "\n")
    m = result["machine"]
    lines = [
        "# Explanations: the scorer with and without them, same run", "",
        f"- command: `{result['command']}`", f"- when: {result['started_at']} UTC, took {result['wall_s']:.0f} s",
        f"- machine: {machine_line(m)}",
        f"- model: {result['model']}; input: {result['input']['readings']:,} readings of {result['input']['patients']:,} patients",
        "- policies: `off`; `selected` (the default: risk >= 0.4, NEWS2 >= 4 or a single 3, and each patient's first "
        "reading in every 15 min); `all`", "",
        "## Scorer core (`ScorerProcessor.process`, 2000-record polls, no Kafka)", "",
        "| explain | readings/s | vs off | readings explained | model step s | explanation s |", "|---|---:|---:|---:|---:|---:|",
    ]
    for p, c in result["core"].items():
        lines.append(f"| {p} | {c['readings_per_s']:,.0f} | {c.get('vs_off', 1.0):.3f} | {c['explained_share']:.1%} | {c['model_step_s']} | {c['explain_s']} |")
    if result.get("service"):
        lines += ["", "## The scorer service (`wardwatch score`, one process, real broker, input preloaded)", "",
                  "| explain | readings/s (median) | vs off | runs |", "|---|---:|---:|---|"]
        for p, s in result["service"].items():
            lines.append(f"| {p} | {s['readings_per_s']:,.0f} | {s.get('vs_off', 1.0):.3f} | {', '.join(f'{x:,.0f}' for x in s['runs'])} |")
    md_path.write_text("\n".join(lines) + "\n")
    return json_path, md_path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.explain", description=__doc__)
    parser.add_argument("--readings", type=int, default=60_000)
    parser.add_argument("--patients", type=int, default=2_000)
    parser.add_argument("--checkpoint", default=CHECKPOINT)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-service", action="store_true", help="only the core (no broker)")
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    started = time.monotonic()
    result: dict = {
        "command": "python -m bench.explain" + "".join(f" {a}" for a in (sys.argv[1:] if argv is None else argv)),
        "started_at": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M:%S"),
        "machine": machine(), "model": load_model(args.checkpoint)[1],
    }
    data = cohort_input(args.readings, args.patients)
    result["input"] = {"readings": len(data.records), "patients": data.patients}
    result["core"] = core(data, args.checkpoint, args.repeats)
    print(f"core: {json.dumps(result['core'])}", file=sys.stderr, flush=True)
    if not args.no_service:
        with broker() as (bootstrap, description):
            result["broker"] = description
            result["service"] = service(bootstrap, data, args.checkpoint, Path(tempfile.mkdtemp(prefix="wardwatch-bench-explain-")),
                                        repeats=args.repeats)
        print(f"service: {json.dumps(result['service'])}", file=sys.stderr, flush=True)
    result["wall_s"] = round(time.monotonic() - started, 1)
    paths = write(result, args.results)
    print(f"wrote {paths[0]} and {paths[1]}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
