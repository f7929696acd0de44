"""The Kafka client layer: one interface (`base`), two implementations, chosen by name.

`kafka-python` (pure Python, the default) and `confluent` (confluent-kafka, librdkafka). Every
producer, consumer and admin client in wardwatch is built through `connect` or `from_config`;
no stage imports a client library.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from typing import Final

from runtime.kafka.client.base import (
    ASSIGNORS,
    BEGINNING,
    COOPERATIVE_STICKY,
    END,
    RANGE,
    Admin,
    Consumer,
    Delivery,
    FatalKafkaError,
    GroupFencedError,
    KafkaClient,
    KafkaClientError,
    KafkaConfigError,
    NewTopic,
    Producer,
    Record,
    TopicPartition,
)

KAFKA_PYTHON: Final = "kafka-python"
CONFLUENT: Final = "confluent"
CLIENTS: Final = (KAFKA_PYTHON, CONFLUENT)
DEFAULT_CLIENT: Final = KAFKA_PYTHON
ENV: Final = "WARDWATCH_KAFKA_CLIENT"

__all__ = [
    "ASSIGNORS", "BEGINNING", "CLIENTS", "CONFLUENT", "COOPERATIVE_STICKY", "DEFAULT_CLIENT", "END", "KAFKA_PYTHON", "RANGE",
    "Admin", "Consumer", "Delivery", "FatalKafkaError", "GroupFencedError", "KafkaClient", "KafkaClientError",
    "KafkaConfigError", "NewTopic", "Producer", "Record",
    "TopicPartition", "connect", "from_config", "wait_for_broker",
]


def connect(bootstrap: str, client: str | None = None, properties: Mapping[str, str] | None = None) -> KafkaClient:
    """Clients of implementation `client` (default: $WARDWATCH_KAFKA_CLIENT, else kafka-python)
    for the cluster at `bootstrap`. `properties`: standard Kafka client properties
    (security.protocol, ssl.ca.location, sasl.mechanism, sasl.username, ...), translated for
    the implementation; by default the process's security settings (`runtime.kafka.security`),
    so every client is secured the same way. `{}`: none (a plaintext listener)."""
    name = client or os.environ.get(ENV) or DEFAULT_CLIENT
    if properties is None:
        from runtime.kafka import security

        properties = security.current_properties()
    if name == KAFKA_PYTHON:
        from runtime.kafka.client.kafka_python import KafkaPythonClient

        return KafkaPythonClient(bootstrap, properties)
    if name == CONFLUENT:
        from runtime.kafka.client.confluent import ConfluentClient

        return ConfluentClient(bootstrap, properties)
    raise ValueError(f"Kafka client {name!r}: expected one of {', '.join(CLIENTS)}")


def from_config(config: object, properties: Mapping[str, str] | None = None) -> KafkaClient:
    """Clients for a service's `KafkaConfig` (its bootstrap servers and `kafka_client`), secured
    with the process's security settings unless `properties` are given."""
    return connect(getattr(config, "bootstrap_servers"), getattr(config, "kafka_client", None), properties)  # noqa: B009


def wait_for_broker(kafka: KafkaClient | str, timeout_s: float = 60.0) -> None:
    """Block until the cluster answers a metadata request; raise TimeoutError naming it if not."""
    kafka = connect(kafka) if isinstance(kafka, str) else kafka
    deadline = time.monotonic() + timeout_s
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            admin = kafka.admin(client_id="wardwatch-probe", timeout_s=max(1.0, min(10.0, deadline - time.monotonic())))
            try:
                admin.probe(timeout_s=max(1.0, min(10.0, deadline - time.monotonic())))
                return
            finally:
                admin.close()
        except (KafkaClientError, OSError) as exc:
            last = exc
            time.sleep(0.5)
        except Exception as exc:  # kafka-python raises its own errors while bootstrapping
            last = exc
            time.sleep(0.5)
    raise TimeoutError(f"no Kafka broker answered at {kafka.bootstrap} within {timeout_s:.0f}s ({last})")
