"""Scenario 7: throughput with 1, 2 and 3 scorer processes in one consumer group.

Each count gets fresh topics; the processes join the group first (the harness waits until the
group is Stable with that many members), then the input is produced as fast as the broker
takes it (much faster than one scorer drains it). Throughput counts from the first to the
last committed output. The machine's cores are shared by the broker, every scorer process
and the bench's producer/observer, which is what the numbers measure on a 2-core box.
"""

from __future__ import annotations

import os
from pathlib import Path

from bench import scorer
from bench.common import Input
from bench.throughput import Throughput, run_live


def run(bootstrap: str, data: Input, counts: tuple[int, ...], logdir: Path, time_cap_s: float) -> list[Throughput]:
    results = []
    for n in counts:
        results.append(run_live(bootstrap, f"scaleout{n}", data, scorer.command(bootstrap), scorer.GROUP, n, logdir,
                                time_cap_s=time_cap_s))
    return results


def limit_note(results: list[Throughput]) -> str:
    """One line on what limits scale-out here, from the measured numbers."""
    cores = os.cpu_count() or 1
    base = results[0].readings_per_s or 1.0
    speedups = ", ".join(f"{r.processes}: {r.readings_per_s / base:.2f}x" for r in results)
    return (
        f"speed-up over 1 process ({speedups}) on {cores} cores. Each scorer process is one Python thread "
        f"(GIL-bound: the kafka-python client and the scorer core share it), and the broker (JVM) and the "
        f"bench's producer/observer need CPU too, so with {cores} cores there is at most ~{max(cores - 1, 1)} "
        f"core left for scorers: beyond that, more processes only split the same CPU (and add per-transaction "
        f"and group overhead). Scale-out pays when each process gets its own core."
    )
