"""The `wardwatch` command: one subcommand per service and tool.

Each subcommand lives in `wardwatch/commands/<name>.py` and exposes `register(subparsers)`.
Bad configuration ends the command with exit code 2 and one line naming the problem.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from runtime.config import ConfigError
from wardwatch import __version__

COMMANDS = (
    "demo",
    "broker",
    "sim",
    "ingest",
    "gateway",
    "import_",
    "replay",
    "score",
    "alerts",
    "train",
    "evaluate",
    "evaluate_alerts",
    "wardview",
    "user",
)

DESCRIPTION = """\
Streaming patient monitoring on Apache Kafka: simulated wearables -> ingest -> stateful
GRU risk scorer -> alerts. Every service reads KAFKA_BOOTSTRAP_SERVERS (or
--bootstrap-servers); without one, `wardwatch broker start` runs a local broker.
Start here: `wardwatch demo --duration 120`."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wardwatch", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"wardwatch {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"wardwatch.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"wardwatch.commands.{name}":
                continue  # a command not built in this checkout
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if hasattr(args, "security_protocol"):  # a Kafka service: its clients use the settings it was given
            from runtime.config import KafkaSecurityConfig, load
            from runtime.kafka import security

            security.install(security.from_config(load(KafkaSecurityConfig, args)))
        return int(args.func(args) or 0)
    except ConfigError as exc:
        print(f"wardwatch {args.command}: configuration error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
