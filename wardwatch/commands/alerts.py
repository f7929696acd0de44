"""`wardwatch alerts`: the alert service (risk + alerts.control -> alerts), exactly-once."""

from __future__ import annotations

import argparse

from alerts.processor import STAGE
from alerts.rules import load_rules
from alerts.service import ASSIGNOR, AlertsConfig, build_alerts
from runtime.service import run_stream
from wardwatch import __version__
from wardwatch.commands import settings_command


def register(sub: argparse._SubParsersAction) -> None:
    settings_command(
        sub,
        "alerts",
        AlertsConfig,
        run,
        log_name=STAGE,
        help="turn sustained risk and NEWS2 breaches into alert events (risk -> alerts)",
        description="Per-patient alert state machine (debounce, hysteresis, escalation, cool-down, data-gap "
        "alerts) driven by the risk stream's event time, with rules from --rules. Acknowledge and snooze "
        "commands arrive on alerts.control. State is restored from alerts.state on partition assignment; "
        "exactly-once via Kafka transactions. File mode: --input RISK.jsonl --output ALERTS.jsonl.",
    )


def run(config: AlertsConfig) -> int:
    rules = load_rules(config.rules)
    return run_stream(
        config,
        lambda metrics: build_alerts(rules, metrics),
        stage=STAGE,
        assignor=ASSIGNOR,
        build_info={"version": __version__, "rules": rules.source},
    )
