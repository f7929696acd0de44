"""Kafka client construction with the settings wardwatch relies on, in one place."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.errors import KafkaError

from runtime.kafka import security as kafka_security

log = logging.getLogger(__name__)


def servers(bootstrap: str) -> list[str]:
    return [s.strip() for s in bootstrap.split(",") if s.strip()]


def _security(properties: Mapping[str, str] | None) -> dict[str, Any]:
    """TLS/SASL keyword arguments from standard client properties (default: the process's settings)."""
    return kafka_security.kafka_python(kafka_security.current_properties() if properties is None else properties)


def producer(
    bootstrap: str, *, client_id: str, transactional_id: str | None = None, security: Mapping[str, str] | None = None,
    **overrides: Any,
) -> KafkaProducer:
    """An idempotent producer (acks=all); transactional when `transactional_id` is given."""
    config: dict[str, Any] = dict(
        bootstrap_servers=servers(bootstrap),
        client_id=client_id,
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
        compression_type=None,
        max_in_flight_requests_per_connection=5,
        retries=2**31 - 1,
        delivery_timeout_ms=120_000,
        **_security(security),
    )
    if transactional_id is not None:
        config["transactional_id"] = transactional_id
    config.update(overrides)
    return KafkaProducer(**config)


def consumer(
    bootstrap: str, *, client_id: str, group_id: str | None, security: Mapping[str, str] | None = None, **overrides: Any
) -> KafkaConsumer:
    """A consumer that reads only committed data and never commits on its own."""
    config: dict[str, Any] = dict(
        bootstrap_servers=servers(bootstrap),
        client_id=client_id,
        group_id=group_id,
        enable_auto_commit=False,
        isolation_level="read_committed",
        auto_offset_reset="earliest",
        **_security(security),
    )
    config.update(overrides)
    return KafkaConsumer(**config)


def admin(
    bootstrap: str, *, client_id: str = "wardwatch-admin", security: Mapping[str, str] | None = None, **overrides: Any
) -> KafkaAdminClient:
    return KafkaAdminClient(bootstrap_servers=servers(bootstrap), client_id=client_id, **_security(security), **overrides)


def wait_for_broker(bootstrap: str, timeout_s: float = 60.0, *, security: Mapping[str, str] | None = None) -> None:
    """Block until the cluster answers a metadata request; raise TimeoutError naming it if not."""
    deadline = time.monotonic() + timeout_s
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            client = admin(bootstrap, client_id="wardwatch-probe", security=security)
            try:
                client.describe_cluster()
                return
            finally:
                client.close()
        except (KafkaError, OSError) as exc:
            last = exc
            time.sleep(0.5)
    raise TimeoutError(f"no Kafka broker answered at {bootstrap} within {timeout_s:.0f}s ({last})")
