"""`wardwatch broker start|stop|status|fetch`: the local single-node Apache Kafka broker."""

from __future__ import annotations

import argparse
import sys

import os

from wardwatch.broker import (
    ADMIN, DEFAULT_HEAP_MB, DEFAULT_PORT, SERVICES, BrokerError, LocalBroker, fetch_jars, kafka_version,
)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "broker",
        help="start, stop or inspect the local Apache Kafka broker",
        description="A real single-node Apache Kafka broker (KRaft) from the official jars, on 127.0.0.1. "
        "Jars are resolved with Maven once and cached; `start` prints the bootstrap address as its last line. "
        "Secured by default: TLS, one SCRAM user per service and ACLs; each principal's settings are in "
        "<broker dir>/secrets/<name>.env (0600) for `set -a; . FILE`.",
    )
    p.add_argument("action", choices=("start", "stop", "status", "fetch", "grant"),
                   help="what to do (grant: add the service ACLs for another --topic-prefix)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"listener port (default {DEFAULT_PORT})")
    p.add_argument("--heap-mb", type=int, default=DEFAULT_HEAP_MB, help=f"JVM heap in MB, at most 512 (default {DEFAULT_HEAP_MB})")
    p.add_argument("--keep-data", action="store_true", help="stop: keep the data directory (default: delete it)")
    p.add_argument("--insecure-plaintext", action="store_true",
                   help="start: PLAINTEXT, no login, no ACLs -- a loopback try-out only, never with patient data")
    p.add_argument("--topic-prefix", default=os.environ.get("WARDWATCH_TOPIC_PREFIX", ""),
                   help="start/grant: the services' ACLs cover topics with this prefix [env WARDWATCH_TOPIC_PREFIX]")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if not 0 < args.port < 65536:
        print(f"wardwatch broker: --port={args.port}: expected 1-65535", file=sys.stderr)
        return 2
    if not 128 <= args.heap_mb <= 512:
        print(f"wardwatch broker: --heap-mb={args.heap_mb}: expected 128-512", file=sys.stderr)
        return 2
    broker = LocalBroker(port=args.port, heap_mb=args.heap_mb, insecure_plaintext=args.insecure_plaintext,
                         topic_prefix=args.topic_prefix)
    try:
        if args.action == "fetch":
            print(fetch_jars())
        elif args.action == "start":
            if broker.running():
                print(f"broker already running (pid {broker.pid()}, data {broker.dir})")
            else:
                broker.start()
                print(f"broker started: Apache Kafka {kafka_version()} (pid {broker.pid()}, log {broker.log_file})")
            if broker.secure:
                print(f"TLS + SCRAM-SHA-512; per-service client settings (0600): {broker.secrets_dir}/"
                      f"{{{','.join((ADMIN, *SERVICES))}}}.env -- e.g. `set -a; . {broker.env_file('ingest')}; set +a`")
            else:
                print("clients: WARDWATCH_SECURITY_PROTOCOL=PLAINTEXT")
            print(broker.bootstrap)
        elif args.action == "grant":
            if not broker.running():
                print("wardwatch broker: not running", file=sys.stderr)
                return 1
            print(f"{broker.grant(args.topic_prefix)} ACLs for topic prefix {args.topic_prefix!r}")
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
