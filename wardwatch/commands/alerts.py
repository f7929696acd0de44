"""`wardwatch alerts`: the alert service (risk + alerts.control -> alerts), exactly-once."""

from __future__ import annotations

import argparse

from alerts.processor import STAGE
from alerts.rules import load_rules
from alerts.service import ASSIGNOR, AlertsConfig, build_alerts
from runtime import logs
from runtime.config import add_arguments, load
from runtime.service import run_stream
from wardwatch import __version__


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "alerts",
        help="turn sustained risk and NEWS2 breaches into alert events (risk -> alerts)",
        description="Per-patient alert state machine (debounce, hysteresis, escalation, cool-down, data-gap "
        "alerts) driven by the risk stream's event time, with rules from --rules. Acknowledge and snooze "
        "commands arrive on alerts.control. State is restored from alerts.state on partition assignment; "
        "exactly-once via Kafka transactions. File mode: --input RISK.jsonl --output ALERTS.jsonl.",
    )
    add_arguments(p, AlertsConfig)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    config = load(AlertsConfig, args)
    logs.setup(config.log_level, STAGE)
    rules = load_rules(config.rules)
    return run_stream(
        config,
        lambda metrics: build_alerts(rules, metrics),
        stage=STAGE,
        assignor=ASSIGNOR,
        build_info={"version": __version__, "rules": rules.source},
    )
