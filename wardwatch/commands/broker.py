"""`wardwatch broker start|stop|status|fetch`: the local single-node Apache Kafka broker."""

from __future__ import annotations

import argparse
import sys

from wardwatch.broker import DEFAULT_HEAP_MB, DEFAULT_PORT, BrokerError, LocalBroker, fetch_jars, kafka_version


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "broker",
        help="start, stop or inspect the local Apache Kafka broker",
        description="A real single-node Apache Kafka broker (KRaft) from the official jars, on 127.0.0.1. "
        "Jars are resolved with Maven once and cached; `start` prints the bootstrap address as its last line.",
    )
    p.add_argument("action", choices=("start", "stop", "status", "fetch"), help="what to do")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"listener port (default {DEFAULT_PORT})")
    p.add_argument("--heap-mb", type=int, default=DEFAULT_HEAP_MB, help=f"JVM heap in MB, at most 512 (default {DEFAULT_HEAP_MB})")
    p.add_argument("--keep-data", action="store_true", help="stop: keep the data directory (default: delete it)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if not 0 < args.port < 65536:
        print(f"wardwatch broker: --port={args.port}: expected 1-65535", file=sys.stderr)
        return 2
    if not 128 <= args.heap_mb <= 512:
        print(f"wardwatch broker: --heap-mb={args.heap_mb}: expected 128-512", file=sys.stderr)
        return 2
    broker = LocalBroker(port=args.port, heap_mb=args.heap_mb)
    try:
        if args.action == "fetch":
            print(fetch_jars())
        elif args.action == "start":
            if broker.running():
                print(f"broker already running (pid {broker.pid()}, data {broker.dir})")
            else:
                broker.start()
                print(f"broker started: Apache Kafka {kafka_version()} (pid {broker.pid()}, log {broker.log_file})")
            print(broker.bootstrap)
        elif args.action == "stop":
            stopped = broker.stop(purge=not args.keep_data)
            print("broker stopped" if stopped else "broker was not running")
        else:
            if broker.running():
                print(f"running pid={broker.pid()} bootstrap={broker.bootstrap} data={broker.dir}")
            else:
                print("not running")
                return 1
    except BrokerError as exc:
        print(f"wardwatch broker: {exc}", file=sys.stderr)
        return 1
    return 0
