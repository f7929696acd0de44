"""Simulator throughput: readings generated per second for a training-sized cohort.

    python -m bench.sim_throughput [--patients 500] [--hours 48] [--repeat 3]

Times the three stages separately (columnar generation, reading-contract dicts, writing the
cohort directory) and writes bench/results/sim_throughput.json with the machine and command.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from sim.cohort import CohortConfig, generate
from sim.output import write_cohort

RESULT = Path(__file__).parent / "results" / "sim_throughput.json"


def machine() -> dict[str, object]:
    """Enough about the machine to compare numbers across runs."""
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "platform": platform.platform(),
        "cpu": model or platform.processor(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--patients", type=int, default=500)
    parser.add_argument("--hours", type=float, default=48.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--output", type=Path, default=RESULT)
    args = parser.parse_args(argv)
    config = CohortConfig(patients=args.patients, hours=args.hours, seed=args.seed)

    generate_s, dicts_s, write_s = [], [], []
    readings = 0
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        cohort = generate(config)
        t1 = time.perf_counter()
        readings = len(cohort.readings)
        t2 = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            write_cohort(cohort, tmp)
        t3 = time.perf_counter()
        generate_s.append(t1 - t0)
        dicts_s.append(t2 - t1)
        write_s.append(t3 - t2)
        del cohort

    best = min(generate_s)
    result = {
        "benchmark": "sim_throughput",
        "command": " ".join(["python -m bench.sim_throughput", *(sys.argv[1:] if argv is None else argv)]),
        "machine": machine(),
        "cohort": {"patients": args.patients, "hours": args.hours, "seed": args.seed, "interval_s": config.interval_s},
        "readings": readings,
        "repeat": args.repeat,
        "generate_s": {"best": round(best, 3), "median": round(float(np.median(generate_s)), 3)},
        "readings_per_s": round(readings / best),
        "dicts_s": {"best": round(min(dicts_s), 3)},
        "end_to_end_readings_per_s": round(readings / (best + min(dicts_s))),
        "write_cohort_s": {"best": round(min(write_s), 3)},
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
