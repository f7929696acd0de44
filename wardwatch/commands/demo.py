"""`wardwatch demo`: the whole pipeline on one machine, with a live summary."""

from __future__ import annotations

import argparse
import sys

from wardwatch.broker import BrokerError
from wardwatch.demo import DemoOptions, run_demo


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="run broker, sim, ingest, score and alerts together with a live summary",
        description="Starts a local Apache Kafka broker (unless KAFKA_BOOTSTRAP_SERVERS is set), then every "
        "service as its own process, and prints throughput, lag and alert events as they happen. "
        "Ctrl-C (or --duration) stops everything cleanly.",
    )
    p.add_argument("--duration", type=float, default=0.0, help="seconds to run, 0 = until Ctrl-C (default 0)")
    p.add_argument("--patients", type=int, default=40, help="simulated patients (default 40)")
    p.add_argument("--speed", type=float, default=60.0, help="event time runs this many times faster than real time (default 60)")
    p.add_argument("--hours", type=float, default=12.0, help="hours of event time to simulate (default 12)")
    p.add_argument("--seed", type=int, default=0, help="simulator seed (default 0)")
    p.add_argument("--bad-rate", type=float, default=0.005, help="fraction of malformed payloads mixed in (default 0.005)")
    p.add_argument("--partitions", type=int, default=6, help="partitions per topic (default 6)")
    p.add_argument("--broker-port", type=int, default=9092, help="local broker port (default 9092)")
    p.add_argument("--insecure-plaintext", action="store_true",
                   help="local broker without TLS, logins or ACLs (default: secured, one Kafka user per service)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    for name, value, ok in (
        ("--duration", args.duration, args.duration >= 0),
        ("--patients", args.patients, 1 <= args.patients <= 100_000),
        ("--speed", args.speed, args.speed >= 0),
        ("--hours", args.hours, args.hours > 0),
        ("--partitions", args.partitions, 1 <= args.partitions <= 1000),
    ):
        if not ok:
            print(f"wardwatch demo: {name}={value} is out of range", file=sys.stderr)
            return 2
    options = DemoOptions(
        duration_s=args.duration, patients=args.patients, speed=args.speed, hours=args.hours, seed=args.seed,
        bad_rate=args.bad_rate, partitions=args.partitions, broker_port=args.broker_port,
        insecure_plaintext=args.insecure_plaintext,
    )
    try:
        return run_demo(options)
    except BrokerError as exc:
        print(f"wardwatch demo: {exc}", file=sys.stderr)
        return 1
