"""Service configuration: one frozen dataclass per service, one name per setting.

A field `partitions` is the config key, the CLI flag `--partitions` and the environment variable
`WARDWATCH_PARTITIONS` (unless the field names another, as `KAFKA_BOOTSTRAP_SERVERS` does).
Precedence: command line, then environment, then the default. A bad value raises `ConfigError`
with one line that names the setting, the value and what was expected.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import socket
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

T = TypeVar("T", bound="DataclassInstance")  # a service's config dataclass


class ConfigError(ValueError):
    """Bad configuration: the message is one line naming the setting and the problem."""


def setting(default: Any, help: str, *, env: str | None = None, choices: tuple[Any, ...] | None = None) -> Any:
    """Declare a config field: its default, its `--help` text and optionally its env name."""
    return field(default=default, metadata={"help": help, "env": env, "choices": choices})


def env_name(f: dataclasses.Field[Any]) -> str:
    return f.metadata.get("env") or f"WARDWATCH_{f.name.upper()}"


def flag_name(f: dataclasses.Field[Any]) -> str:
    return "--" + f.name.replace("_", "-")


def add_arguments(parser: argparse.ArgumentParser, cls: type) -> None:
    """Add one flag per config field, with its env variable and default in the help text."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if not f.metadata.get("help"):
            continue
        kind = _base_type(hints[f.name])
        default = f.default if f.default is not dataclasses.MISSING else None
        text = f"{f.metadata['help']} [env {env_name(f)}; default {default!r}]"
        if kind is bool:
            parser.add_argument(flag_name(f), dest=f.name, default=None, action=argparse.BooleanOptionalAction, help=text)
        else:
            parser.add_argument(flag_name(f), dest=f.name, default=None, metavar=f.name.upper(), help=text)


def load(cls: type[T], args: argparse.Namespace | None = None, environ: Mapping[str, str] | None = None) -> T:
    """Build `cls` from CLI args, then the environment, then defaults; raise ConfigError if bad."""
    environ = os.environ if environ is None else environ
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        raw = getattr(args, f.name, None) if args is not None else None
        source = flag_name(f)
        if raw is None and env_name(f) in environ and environ[env_name(f)] != "":
            raw, source = environ[env_name(f)], env_name(f)
        if raw is None:
            continue
        values[f.name] = _convert(raw, hints[f.name], source, f.metadata.get("choices"))
    try:
        return cls(**values)
    except ConfigError:
        raise
    except (TypeError, ValueError) as exc:
        raise ConfigError(str(exc)) from None


def _base_type(hint: Any) -> type:
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        return args[0]
    return hint


def _convert(raw: Any, hint: Any, source: str, choices: tuple[Any, ...] | None) -> Any:
    kind = _base_type(hint)
    if isinstance(raw, kind) and not (kind is int and isinstance(raw, bool)):
        value = raw
    elif kind is bool:
        text = str(raw).strip().lower()
        if text not in {"1", "0", "true", "false", "yes", "no", "on", "off"}:
            raise ConfigError(f"{source}={raw!r}: expected true or false")
        value = text in {"1", "true", "yes", "on"}
    elif kind in (int, float):
        try:
            value = kind(str(raw).strip())
        except ValueError:
            raise ConfigError(f"{source}={raw!r}: expected {'an integer' if kind is int else 'a number'}") from None
    else:
        value = kind(raw)
    if choices is not None and value not in choices:
        raise ConfigError(f"{source}={raw!r}: expected one of {', '.join(map(str, choices))}")
    return value


def require(condition: bool, message: str) -> None:
    """Raise ConfigError(message) unless `condition`: for __post_init__ checks."""
    if not condition:
        raise ConfigError(message)


@dataclass(frozen=True)
class KafkaSecurityConfig:
    """How a service authenticates to Kafka and checks the broker (runtime.kafka.security).

    Secure by default: TLS plus SCRAM. The password is not a field: it comes from the file
    `--kafka-password-file` names or from `WARDWATCH_KAFKA_PASSWORD`, never from a flag.
    """

    security_protocol: str = setting(
        "SASL_SSL", "Kafka security protocol (PLAINTEXT: a loopback try-out only, no encryption or login)",
        choices=("SASL_SSL", "SSL", "SASL_PLAINTEXT", "PLAINTEXT"),
    )
    ssl_ca_location: str = setting("", "PEM file of the CA that signed the broker certificate (default: system CAs)")
    sasl_mechanism: str = setting("SCRAM-SHA-512", "SASL mechanism", choices=("SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"))
    sasl_username: str = setting("", "this service's Kafka principal (SASL user name)")
    kafka_password_file: str = setting("", "file holding the SASL password (or env WARDWATCH_KAFKA_PASSWORD; never a flag)")


@dataclass(frozen=True)
class KafkaConfig(KafkaSecurityConfig):
    """Settings every Kafka-facing service shares."""

    bootstrap_servers: str = setting(
        "127.0.0.1:9092", "Kafka bootstrap servers, host:port[,host:port]", env="KAFKA_BOOTSTRAP_SERVERS"
    )
    partitions: int = setting(6, "partitions for every patient-keyed topic (same for all: co-partitioning)")
    replication_factor: int = setting(1, "replication factor for topics the service creates")
    topic_prefix: str = setting("", "prefix for every topic and group name (several pipelines on one cluster)")
    log_level: str = setting("INFO", "log level", choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    kafka_client: str = setting(
        "kafka-python", "Kafka client library: kafka-python (pure Python) or confluent (librdkafka)",
        choices=("kafka-python", "confluent"),
    )

    def __post_init__(self) -> None:
        for server in self.bootstrap_servers.split(","):
            host, _, port = server.strip().rpartition(":")
            require(
                bool(host) and port.isdigit() and 0 < int(port) < 65536,
                f"--bootstrap-servers / KAFKA_BOOTSTRAP_SERVERS={self.bootstrap_servers!r}: expected host:port[,host:port]",
            )
        require(1 <= self.partitions <= 1000, f"--partitions={self.partitions}: expected 1-1000")
        require(self.replication_factor >= 1, f"--replication-factor={self.replication_factor}: expected >= 1")
        require(
            all(c.isalnum() or c in "._-" for c in self.topic_prefix),
            f"--topic-prefix={self.topic_prefix!r}: expected letters, digits, '.', '_' or '-'",
        )

    def topic(self, name: str) -> str:
        """The topic's name on the cluster (logical name plus the configured prefix)."""
        return self.topic_prefix + name


@dataclass(frozen=True)
class StreamConfig(KafkaConfig):
    """A consume-transform-produce service: group, transactions, metrics, file mode."""

    group_id: str = setting("", "consumer group id (default: wardwatch-<stage>)")
    instance_id: str = setting(
        "", "stable id of this process in its group; names its transactional id (default: host-pid)"
    )
    commit_interval_ms: int = setting(100, "longest time between transaction commits, ms")
    max_poll_records: int = setting(
        10000, "most records taken per poll (one batch); larger batches share one state write per patient"
    )
    overlap_commits: bool = setting(
        True, "under a backlog (a batch of at least half --max-poll-records), commit each batch's transaction while the next is polled and processed"
    )
    transaction_timeout_ms: int = setting(10000, "broker aborts a transaction left open longer than this, ms")
    metrics_port: int = setting(0, "port for Prometheus /metrics (0 = pick a free one, -1 = off)")
    metrics_host: str = setting("0.0.0.0", "address /metrics listens on")
    input: str | None = setting(None, "file mode: read input records from this JSONL file instead of Kafka")
    output: str | None = setting(None, "file mode: write output records to this JSONL file (rejects to FILE.dlq.jsonl)")

    def __post_init__(self) -> None:
        super().__post_init__()
        require(10 <= self.commit_interval_ms <= 60000, f"--commit-interval-ms={self.commit_interval_ms}: expected 10-60000")
        require(1 <= self.max_poll_records <= 100000, f"--max-poll-records={self.max_poll_records}: expected 1-100000")
        require(-1 <= self.metrics_port < 65536, f"--metrics-port={self.metrics_port}: expected -1-65535")
        require(
            (self.input is None) == (self.output is None),
            "--input and --output go together: file mode needs both",
        )
        if self.input is not None:
            require(os.path.isfile(self.input), f"--input={self.input!r}: no such file")

    @property
    def file_mode(self) -> bool:
        return self.input is not None

    def group(self, stage: str) -> str:
        return self.group_id or f"{self.topic_prefix}wardwatch-{stage}"

    def transactional_id(self, stage: str) -> str:
        instance = self.instance_id or f"{socket.gethostname()}-{os.getpid()}"
        return f"{self.group(stage)}-{instance}"
