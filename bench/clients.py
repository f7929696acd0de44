"""`python -m bench.clients [--quick]`: the passthrough ceiling and the scorer on each Kafka client.

One broker, one input, one run: the transactional passthrough StreamLoop (`bench.ceiling`) and
`wardwatch score`, each on kafka-python and on confluent-kafka (librdkafka), preloaded backlog,
read_committed, one process. Writes bench/results/clients.json and clients.md with the machine
and the command, and the ratios the lead picks the default client by.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

from bench import scorer
from bench.common import PARTITIONS, broker, cohort_input, logger, run_parser, run_record, write_results, run_header
from bench.throughput import run_preloaded
from runtime.kafka.client import CLIENTS

SIZES = {"quick": (60_000, 2_000), "full": (200_000, 10_000)}


log = logger("bench.clients")


def main(argv: list[str] | None = None) -> int:
    args = run_parser("bench.clients", __doc__, "smaller input (a few minutes)", "model for the scorer ('untrained' works)").parse_args(argv)
    mode = "quick" if args.quick else "full"
    readings, patients = SIZES[mode]
    data = cohort_input(readings, patients)
    result: dict = run_record("bench.clients", mode, argv) | {
        "input": {"readings": len(data.records), "patients": data.patients, "partitions": PARTITIONS},
    }
    logdir = Path(tempfile.mkdtemp(prefix="wardwatch-bench-clients-"))
    with broker() as (bootstrap, description):
        result["broker"] = description
        rates: dict[str, dict[str, float]] = {"ceiling": {}, "scorer": {}}
        for client in CLIENTS:
            flag = ["--kafka-client", client]
            for kind, command in (("ceiling", scorer.ceiling_command(bootstrap)), ("scorer", scorer.command(bootstrap, args.checkpoint))):
                name = f"{kind}-{client}"
                t = run_preloaded(bootstrap, name, data, [*command, *flag], logdir, time_cap_s=300)
                rates[kind][client] = t.readings_per_s
                result.setdefault("throughput", {})[name] = t.as_dict()
                log(f"{name}: {t.readings_per_s:,.0f} readings/s ({t.outputs:,} outputs in {t.seconds:.1f} s)")
    kp, cf = CLIENTS
    result["ratios"] = {
        "ceiling confluent / kafka-python": _ratio(rates["ceiling"][cf], rates["ceiling"][kp]),
        "scorer confluent / kafka-python": _ratio(rates["scorer"][cf], rates["scorer"][kp]),
        "scorer / ceiling, kafka-python": _ratio(rates["scorer"][kp], rates["ceiling"][kp]),
        "scorer / ceiling, confluent": _ratio(rates["scorer"][cf], rates["ceiling"][cf]),
    }
    write_results(args.results, "clients", result, _markdown(result))
    shutil.rmtree(logdir, ignore_errors=True)
    log(f"wrote {args.results / 'clients.json'} and clients.md")
    return 0


def _ratio(a: float, b: float) -> float | None:
    return round(a / b, 2) if b else None


def _markdown(r: dict) -> str:
    lines = [
        *run_header(r, "Kafka clients: passthrough ceiling and scorer on each"),
        f"Input: {r['input']['readings']:,} readings of {r['input']['patients']:,} patients in `vitals` ({r['input']['partitions']} partitions), "
        "preloaded; one process, transactional, read_committed; rate from the first to the last output seen.",
        "",
        "| process | client | readings/s | window s |",
        "|---|---|---:|---:|",
    ]
    for name, t in r["throughput"].items():
        kind, client = name.split("-", 1)
        lines.append(f"| {kind} | {client} | {t['readings_per_s']:,.0f} | {t['window_s']} |")
    lines += ["", "| ratio | value |", "|---|---:|"]
    lines += [f"| {k} | {v} |" for k, v in r["ratios"].items()]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
