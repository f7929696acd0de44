"""`python -m bench.core [--reps N]`: the scorer's core alone, readings per second.

`ScorerProcessor.process` on the quick input (60,000 readings of 2,000 patients, the shipped
model, default settings) in 2,000-record polls, no Kafka and no profiler; a fresh scorer per
repetition. Prints each repetition and the best: a quick before/after check of a change to the
hot path (`bench.hot_path` says where the time goes, `python -m bench` measures the service).
"""

from __future__ import annotations

import argparse
import time

from bench.common import cohort_input, in_records
from inference.service import ScoreConfig, build_scorer, load_model
from runtime.metrics import StreamMetrics, new_registry
from runtime.service import tune_gc


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.core", description=__doc__)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--checkpoint", default="default")
    args = parser.parse_args(argv)
    data = cohort_input(60_000, 2_000)
    model, version = load_model(args.checkpoint)
    records = in_records(data.records)
    tune_gc()
    rates = []
    for _ in range(args.reps):
        scorer = build_scorer(ScoreConfig(metrics_port=-1), StreamMetrics(new_registry(), "score"), model, version)
        started = time.perf_counter()
        for i in range(0, len(records), 2000):
            scorer.process(records[i : i + 2000])
        rates.append(len(records) / (time.perf_counter() - started))
    print(f"readings/s: {', '.join(f'{r:,.0f}' for r in rates)}; best {max(rates):,.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
