"""Kafka client construction with the settings wardwatch relies on, in one place."""

from __future__ import annotations

import logging
import time
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.errors import KafkaError

log = logging.getLogger(__name__)


def servers(bootstrap: str) -> list[str]:
    return [s.strip() for s in bootstrap.split(",") if s.strip()]


def producer(bootstrap: str, *, client_id: str, transactional_id: str | None = None, **overrides: Any) -> KafkaProducer:
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
    )
    if transactional_id is not None:
        config["transactional_id"] = transactional_id
    config.update(overrides)
    return KafkaProducer(**config)


def consumer(bootstrap: str, *, client_id: str, group_id: str | None, **overrides: Any) -> KafkaConsumer:
    """A consumer that reads only committed data and never commits on its own."""
    config: dict[str, Any] = dict(
        bootstrap_servers=servers(bootstrap),
        client_id=client_id,
        group_id=group_id,
        enable_auto_commit=False,
        isolation_level="read_committed",
        auto_offset_reset="earliest",
    )
    config.update(overrides)
    return KafkaConsumer(**config)


def admin(bootstrap: str, *, client_id: str = "wardwatch-admin") -> KafkaAdminClient:
    return KafkaAdminClient(bootstrap_servers=servers(bootstrap), client_id=client_id)


def wait_for_broker(bootstrap: str, timeout_s: float = 60.0) -> None:
    """Block until the cluster answers a metadata request; raise TimeoutError naming it if not."""
    deadline = time.monotonic() + timeout_s
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            client = admin(bootstrap, client_id="wardwatch-probe")
            try:
                client.describe_cluster()
                return
            finally:
                client.close()
        except (KafkaError, OSError) as exc:
            last = exc
            time.sleep(0.5)
    raise TimeoutError(f"no Kafka broker answered at {bootstrap} within {timeout_s:.0f}s ({last})")
