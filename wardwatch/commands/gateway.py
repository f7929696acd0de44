"""`wardwatch gateway`: the HTTP front door (POST /v1/readings -> vitals.raw, acknowledged by Kafka)."""

from __future__ import annotations

import argparse

from ingest.gateway import STAGE, Gateway, GatewayConfig
from ingest.gateway.tokens import TokenError
from runtime import metrics
from runtime.config import ConfigError
from wardwatch.commands import listening, serve_until_stopped, settings_command


def register(sub: argparse._SubParsersAction) -> None:
    settings_command(
        sub,
        "gateway",
        GatewayConfig,
        run,
        log_name=STAGE,
        help="accept readings over HTTP (JSON or FHIR) and write them to vitals.raw",
        description="POST /v1/readings takes a reading, a JSON array of readings, or a FHIR Observation or Bundle "
        "(Authorization: Bearer TOKEN). Each item is validated and answered on its own (202 all accepted, 207 some, "
        "400 none); the answer waits for Kafka to acknowledge the accepted ones (503 + Retry-After if it cannot). "
        "Client tokens come from --tokens-file (re-read on change) or WARDWATCH_TOKENS / WARDWATCH_TOKEN, never "
        "the command line. GET /healthz, GET /openapi.json; Prometheus /metrics on --metrics-port.",
    )


def run(config: GatewayConfig) -> int:
    try:
        with listening(config):
            gateway = Gateway(config)
    except TokenError as exc:
        raise ConfigError(str(exc)) from None
    try:
        metrics.serve(gateway.registry, config.metrics_port, config.metrics_host)
    except OSError as exc:
        gateway.server.socket.close()
        raise ConfigError(f"--metrics-host={config.metrics_host} --metrics-port={config.metrics_port}: cannot listen ({exc.strerror or exc})") from None
    return serve_until_stopped(gateway, 0.5)
