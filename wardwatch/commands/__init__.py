"""One module per `wardwatch` subcommand; each exposes `register(subparsers)`."""

from __future__ import annotations

import argparse
import ssl
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from runtime import logs, metrics
from runtime.config import ConfigError, KafkaConfig, add_arguments, load
from runtime.kafka.admin import ensure_topics
from runtime.kafka.client import KafkaClient, from_config, wait_for_broker
from runtime.service import stop_on_signals
from runtime.topics import SIM_EVENTS, VITALS_RAW, specs

C = TypeVar("C", bound=KafkaConfig)  # a program's settings: Kafka, logging and its own


def settings_command(
    sub: argparse._SubParsersAction, name: str, settings: type[C], run: Callable[[C], int], *, log_name: str, help: str, description: str
) -> argparse.ArgumentParser:
    """Add `wardwatch NAME` for a program whose settings are a `runtime.config` dataclass: the
    flags (and WARDWATCH_ variables) are its fields; `run` gets the loaded settings, logging set
    up under `log_name`. A bad setting ends the command with the one line `load` raises."""
    p = sub.add_parser(name, help=help, description=description)
    add_arguments(p, settings)

    def run_command(args: argparse.Namespace) -> int:
        config = load(settings, args)
        logs.setup(config.log_level, log_name)
        return run(config)

    p.set_defaults(func=run_command)
    return p


@contextmanager
def listening(config: Any) -> Iterator[None]:
    """An HTTP server's start-up failures as one-line configuration errors naming its flags."""
    try:
        yield
    except ssl.SSLError as exc:
        raise ConfigError(f"--tls-certfile={config.tls_certfile} --tls-keyfile={config.tls_keyfile}: not a usable certificate and key ({exc})") from None
    except OSError as exc:
        raise ConfigError(f"--host={config.host} --port={config.port}: cannot listen ({exc.strerror or exc})") from None


def serve_until_stopped(service: Any, poll_s: float) -> int:
    """Start an HTTP service (`start`, `shutdown`, its `server` thread) and run it until SIGTERM or
    SIGINT (exit code 0) or until its server thread dies (1)."""
    stop = stop_on_signals()
    service.start()
    while not stop.wait(poll_s):
        if not service.server.is_alive():
            service.shutdown()
            return 1
    service.shutdown()
    return 0


def raw_producer(config: Any, stage: str) -> tuple[KafkaClient, Callable[[int], None]]:
    """What a program producing to `vitals.raw` (and `sim.events`) sets up first: its metrics
    served, the broker reached, the two topics there. Returns the client and the counter of records sent."""
    registry = metrics.new_registry()
    stream = metrics.StreamMetrics(registry, stage)
    metrics.serve(registry, config.metrics_port)
    kafka = from_config(config)
    wait_for_broker(kafka)
    ensure_topics(kafka, specs(VITALS_RAW, SIM_EVENTS), config.partitions, config.replication_factor, config.topic_prefix)
    return kafka, stream.records_out.labels(stage, VITALS_RAW).inc
