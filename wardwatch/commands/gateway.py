"""`wardwatch gateway`: the HTTP front door (POST /v1/readings -> vitals.raw, acknowledged by Kafka)."""

from __future__ import annotations

import argparse
import ssl

from ingest.gateway import STAGE, Gateway, GatewayConfig
from ingest.gateway.tokens import TokenError
from runtime import logs, metrics
from runtime.config import ConfigError, add_arguments, load
from runtime.service import stop_on_signals


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "gateway",
        help="accept readings over HTTP (JSON or FHIR) and write them to vitals.raw",
        description="POST /v1/readings takes a reading, a JSON array of readings, or a FHIR Observation or Bundle "
        "(Authorization: Bearer TOKEN). Each item is validated and answered on its own (202 all accepted, 207 some, "
        "400 none); the answer waits for Kafka to acknowledge the accepted ones (503 + Retry-After if it cannot). "
        "Client tokens come from --tokens-file (re-read on change) or WARDWATCH_TOKENS / WARDWATCH_TOKEN, never "
        "the command line. GET /healthz, GET /openapi.json; Prometheus /metrics on --metrics-port.",
    )
    add_arguments(p, GatewayConfig)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    config = load(GatewayConfig, args)
    logs.setup(config.log_level, STAGE)
    try:
        gateway = Gateway(config)
    except TokenError as exc:
        raise ConfigError(str(exc)) from None
    except ssl.SSLError as exc:
        raise ConfigError(f"--tls-certfile={config.tls_certfile} --tls-keyfile={config.tls_keyfile}: not a usable certificate and key ({exc})") from None
    except OSError as exc:
        raise ConfigError(f"--host={config.host} --port={config.port}: cannot listen ({exc.strerror or exc})") from None
    try:
        metrics.serve(gateway.registry, config.metrics_port, config.metrics_host)
    except OSError as exc:
        gateway.server.socket.close()
        raise ConfigError(f"--metrics-host={config.metrics_host} --metrics-port={config.metrics_port}: cannot listen ({exc.strerror or exc})") from None
    stop = stop_on_signals()
    gateway.start()
    while not stop.wait(0.5):
        if not gateway.server.is_alive():
            gateway.shutdown()
            return 1
    gateway.shutdown()
    return 0
