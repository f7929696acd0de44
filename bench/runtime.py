"""The model runtime: the exported step on ONNX Runtime against the PyTorch step, in one run.

`python -m bench.runtime [--readings 60000] [--patients 2000] [--checkpoint default]`

No broker: the Kafka shell is the same for both runtimes, so only the scorer core is timed.
- step: the model step alone at the batch sizes the scorer uses (1 = the naive scorer, up to
  a whole poll of patients), each runtime with one thread (ONNX Runtime also with two).
- core: `ScorerProcessor.process` on the bench cohort in poll-sized batches (2000 records),
  the scorer as deployed, with either runtime behind it; and the naive subclass (one model
  step per reading) on a slice of it.
- process: a fresh process loading the model the way each runtime needs: peak RSS and seconds.
Runs are interleaved (ONNX Runtime, PyTorch, ONNX Runtime, ...) and the median kept, so load
from other work on a shared machine hits both alike. Writes bench/results/runtime.json and .md.
"""

from __future__ import annotations

import argparse
import datetime
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnxruntime
import torch
from kafka.partitioner.default import murmur2

from bench.common import PARTITIONS, PYTHON, REPO, cohort_input, env, machine, machine_line
from bench.naive import NaiveScorerProcessor
from inference import checkpoint
from inference.model import TorchStep
from inference.processor import ScorerProcessor
from inference.service import load_model
from inference.step import StepRuntime
from runtime.metrics import StreamMetrics, new_registry
from runtime.records import InRecord
from runtime.service import tune_gc
from runtime.topics import VITALS

RESULTS = Path(__file__).resolve().parent / "results"
BATCHES = (1, 16, 128, 512, 2000)
POLL = 2000


def _median_of(repeats: int, runs: dict[str, Callable[[], float]]) -> dict[str, float]:
    """Each run returns seconds; runs interleave, repeat, and keep their median."""
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            times[name].append(run())
    return {name: statistics.median(t) for name, t in times.items()}


def step_inputs(state_size: int, batch: int, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """Plausible readings: raw-unit vitals, about half of them missing, minutes to hours since seen."""
    values = rng.uniform(30, 130, (batch, 8)).astype(np.float32)
    mask = (rng.random((batch, 8)) < 0.5).astype(np.float32)
    delta = rng.exponential(0.5, (batch, 8)).clip(0, 24).astype(np.float32)
    return (rng.standard_normal((batch, state_size), dtype=np.float32) * 0.3, values, mask, delta, values.copy(), np.ones_like(mask))


def time_steps(steps: dict[str, StepRuntime], repeats: int) -> list[dict[str, object]]:
    rng = np.random.default_rng(0)
    rows = []
    for batch in BATCHES:
        inputs = step_inputs(next(iter(steps.values())).state_size, batch, rng)
        calls = max(20, 5_000 // batch)

        def timed(step: StepRuntime, inputs: tuple = inputs, calls: int = calls) -> Callable[[], float]:
            def run() -> float:
                started = time.perf_counter()
                for _ in range(calls):
                    step.step(*inputs)
                return (time.perf_counter() - started) / calls

            return run

        for step in steps.values():  # warm up (first-call allocation, graph optimisation)
            step.step(*inputs)
        medians = _median_of(repeats, {name: timed(step) for name, step in steps.items()})
        row: dict[str, object] = {"batch": batch, "calls_per_repeat": calls}
        row.update({f"{name}_us_per_call": round(s * 1e6, 1) for name, s in medians.items()})
        row["torch_over_onnxruntime"] = round(medians["torch"] / medians["onnxruntime"], 2)
        rows.append(row)
    return rows


def in_records(records: list[tuple[bytes, bytes]]) -> list[InRecord]:
    """The cohort as the scorer would poll it: partitioned by key like the producer does."""
    offsets = [0] * PARTITIONS
    out = []
    now_ms = int(time.time() * 1000)
    for key, value in records:
        p = (murmur2(key) & 0x7FFFFFFF) % PARTITIONS
        out.append(InRecord(VITALS, p, offsets[p], key, value, now_ms))
        offsets[p] += 1
    return out


def time_core(
    steps: dict[str, StepRuntime], version: str, records: list[InRecord], repeats: int, processor: type[ScorerProcessor], batch: int
) -> dict[str, dict[str, float]]:
    inference_s: dict[str, list[float]] = {name: [] for name in steps}

    def timed(name: str, step: StepRuntime) -> Callable[[], float]:
        def run() -> float:
            scorer = processor(step, version, StreamMetrics(new_registry(), "score"))
            started = time.perf_counter()
            for i in range(0, len(records), batch):
                scorer.process(records[i : i + batch])
            seconds = time.perf_counter() - started
            inference_s[name].append(scorer.scorer_metrics.inference_seconds._sum.get())
            return seconds

        return run

    medians = _median_of(repeats, {name: timed(name, step) for name, step in steps.items()})
    return {
        name: {
            "readings_per_s": round(len(records) / seconds, 1),
            "seconds": round(seconds, 3),
            "model_step_seconds": round(statistics.median(inference_s[name]), 3),
        }
        for name, seconds in medians.items()
    }


LOAD = """
import json, sys, time
started = time.perf_counter()
if sys.argv[1] == "onnxruntime":
    from inference.service import load_model
    model, version = load_model("{checkpoint}")
else:
    import torch
    from inference import checkpoint
    from inference.model import TorchStep
    torch.set_num_threads(1)
    model = TorchStep(checkpoint.load_default()[0] if "{checkpoint}" == "default" else checkpoint.load("{checkpoint}")[0])
seconds = time.perf_counter() - started
# VmHWM: this process's peak resident set (getrusage's ru_maxrss would count the forking parent's)
hwm_kib = int(next(l for l in open("/proc/self/status") if l.startswith("VmHWM:")).split()[1])
print(json.dumps({{"peak_rss_mib": round(hwm_kib / 1024, 1),
                  "import_and_load_s": round(seconds, 3), "torch_imported": "torch" in sys.modules}}))
"""


def time_process(checkpoint_name: str, repeats: int) -> dict[str, dict[str, object]]:
    results: dict[str, list[dict[str, object]]] = {"onnxruntime": [], "torch": []}
    for _ in range(repeats):
        for name in results:
            out = subprocess.run([PYTHON, "-c", LOAD.format(checkpoint=checkpoint_name), name], cwd=REPO, env=env(),
                                 capture_output=True, text=True, timeout=300, check=True)
            results[name].append(json.loads(out.stdout.strip().splitlines()[-1]))
    return {
        name: {
            "peak_rss_mib": statistics.median(float(r["peak_rss_mib"]) for r in runs),  # type: ignore[arg-type]
            "import_and_load_s": statistics.median(float(r["import_and_load_s"]) for r in runs),  # type: ignore[arg-type]
            "torch_imported": runs[0]["torch_imported"],
        }
        for name, runs in results.items()
    }


def write(result: dict, results: Path) -> tuple[Path, Path]:
    results.mkdir(parents=True, exist_ok=True)
    json_path, md_path = results / "runtime.json", results / "runtime.md"
    json_path.write_text(json.dumps(result, indent=2) + "\n")
    m = result["machine"]
    core, naive = result["core"], result["naive_core"]
    lines = [
        "# Model runtime: ONNX Runtime (served) against PyTorch (reference), same run",
        "",
        f"- command: `{result['command']}`",
        f"- when: {result['started_at']} UTC, took {result['wall_s']:.0f} s",
        f"- machine: {machine_line(m)} (shared machine: other work was running)",
        f"- software: Python {m['python']}, onnxruntime {m['onnxruntime']}, torch {m['torch']} (both one intra-op thread "
        "unless noted), numpy " + result["numpy"],
        f"- model: {result['model']} (state {result['state_size']} floats); input: {result['input']['readings']:,} readings "
        f"of {result['input']['patients']:,} patients; medians of {result['repeats']} interleaved repeats",
        "",
        "## Scorer core (`ScorerProcessor.process`, no Kafka)",
        "",
        "| scorer | runtime | readings/s | of which model step, s | total s |",
        "|---|---|---:|---:|---:|",
    ]
    for label, block in ((f"batched ({POLL}-record polls)", core), (f"naive (one step per reading, {result['naive_readings']:,} readings)", naive)):
        for name, r in block.items():
            lines.append(f"| {label} | {name} | {r['readings_per_s']:,.0f} | {r['model_step_seconds']:.3f} | {r['seconds']:.3f} |")
    lines += [
        "",
        f"ONNX Runtime over PyTorch, batched scorer: **{result['core_ratio']:.2f}x** readings/s "
        f"(model step alone {result['core_step_ratio']:.2f}x); naive scorer: **{result['naive_ratio']:.2f}x**.",
        "",
        "## Model step alone (µs per call)",
        "",
        "| batch | onnxruntime (1 thread) | onnxruntime (2 threads) | torch (1 thread) | torch / onnxruntime |",
        "|---:|---:|---:|---:|---:|",
    ]
    for row in result["step"]:
        lines.append(f"| {row['batch']} | {row['onnxruntime_us_per_call']} | {row['onnxruntime-2threads_us_per_call']} | "
                     f"{row['torch_us_per_call']} | {row['torch_over_onnxruntime']} |")
    p = result["process"]
    lines += [
        "",
        "## A fresh process loading the model",
        "",
        "| runtime | peak RSS MiB | import + load s | imports torch |",
        "|---|---:|---:|---|",
        *(f"| {name} | {r['peak_rss_mib']} | {r['import_and_load_s']} | {r['torch_imported']} |" for name, r in p.items()),
        "",
        "Both runtimes compute the same risks within the contract (absolute 1e-5; tests/test_onnx_step.py).",
        "",
    ]
    md_path.write_text("\n".join(lines))
    return json_path, md_path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.runtime", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--readings", type=int, default=60_000)
    parser.add_argument("--patients", type=int, default=2_000)
    parser.add_argument("--naive-readings", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--checkpoint", default="default", help="a checkpoint directory or 'default' (needs model.pt and step.onnx)")
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    started = time.monotonic()
    torch.set_num_threads(1)
    path = checkpoint.default_checkpoint_path() if args.checkpoint == "default" else Path(args.checkpoint)
    onnx_step, version = load_model(str(path) if args.checkpoint != "default" else "default", threads=1)
    onnx_step_2, _ = load_model(str(path) if args.checkpoint != "default" else "default", threads=2)
    torch_model, torch_version = checkpoint.load(path)
    assert torch_version == version
    steps: dict[str, StepRuntime] = {"onnxruntime": onnx_step, "torch": TorchStep(torch_model)}
    result: dict = {
        "command": "python -m bench.runtime" + "".join(f" {a}" for a in (sys.argv[1:] if argv is None else argv)),
        "started_at": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M:%S"),
        "machine": machine(),
        "numpy": np.__version__,
        "model": version,
        "state_size": onnx_step.state_size,
        "repeats": args.repeats,
    }
    assert result["machine"]["onnxruntime"] == onnxruntime.__version__
    data = cohort_input(args.readings, args.patients)
    records = in_records(data.records)
    result["input"] = {"readings": len(records), "patients": data.patients}
    tune_gc()
    print("step ...", file=sys.stderr, flush=True)
    result["step"] = time_steps({**steps, "onnxruntime-2threads": onnx_step_2}, args.repeats)
    print("core ...", file=sys.stderr, flush=True)
    result["core"] = time_core(steps, version, records, args.repeats, ScorerProcessor, POLL)
    print("naive ...", file=sys.stderr, flush=True)
    result["naive_readings"] = min(args.naive_readings, len(records))
    result["naive_core"] = time_core(steps, version, records[: result["naive_readings"]], args.repeats, NaiveScorerProcessor, POLL)
    print("process ...", file=sys.stderr, flush=True)
    result["process"] = time_process(args.checkpoint, min(args.repeats, 3))
    core, naive = result["core"], result["naive_core"]
    result["core_ratio"] = round(core["onnxruntime"]["readings_per_s"] / core["torch"]["readings_per_s"], 2)
    result["core_step_ratio"] = round(core["torch"]["model_step_seconds"] / core["onnxruntime"]["model_step_seconds"], 2)
    result["naive_ratio"] = round(naive["onnxruntime"]["readings_per_s"] / naive["torch"]["readings_per_s"], 2)
    result["wall_s"] = round(time.monotonic() - started, 1)
    json_path, md_path = write(result, args.results)
    print(f"wrote {json_path} and {md_path} in {result['wall_s']:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
