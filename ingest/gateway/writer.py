"""The gateway's Kafka writer: the idempotent producer (built by the runtime's client layer),
connected in the background, and a health probe. While Kafka is down the gateway answers 503."""

from __future__ import annotations

import logging
import threading
import time
from typing import Final

from prometheus_client import Gauge

from ingest.gateway.config import GatewayConfig
from ingest.gateway.triage import Write
from runtime.kafka.admin import ensure_topics
from runtime.kafka.client import Admin, Producer, from_config
from runtime.records import JSON_HEADERS
from runtime.topics import VITALS_RAW, specs

log = logging.getLogger(__name__)

PROBE_INTERVAL_S: Final = 5.0
CLIENT_HEADER: Final = "gateway-client"  # the client token's name (never the token) on every record


class KafkaUnavailable(Exception):
    """Kafka did not acknowledge a request's writes in time (or cannot be reached)."""


class KafkaWriter:
    """The idempotent producer, connected in the background, and a periodic metadata probe."""

    def __init__(self, config: GatewayConfig, connected_gauge: Gauge, stop: threading.Event) -> None:
        self.config = config
        self.topic = config.topic(VITALS_RAW)
        self._gauge = connected_gauge
        self._stop = stop
        self._kafka = from_config(config)
        self._producer: Producer | None = None
        self._connected: bool | None = None  # None: not known yet
        self._thread = threading.Thread(target=self._run, name="gateway-kafka", daemon=True)

    @property
    def connected(self) -> bool:
        return self._producer is not None and self._connected is True

    def start(self) -> None:
        self._thread.start()

    def _set_connected(self, value: bool, why: str = "") -> None:
        if value and self._connected is not True:
            log.info("kafka connected bootstrap=%s", self.config.bootstrap_servers)
        elif not value and self._connected is not False:
            log.warning("kafka unavailable bootstrap=%s error=%r", self.config.bootstrap_servers, why)
        self._connected = value
        self._gauge.set(1 if value else 0)

    def _run(self) -> None:
        timeout_ms = int(self.config.kafka_timeout_s * 1000)
        probe: Admin | None = None
        while not self._stop.is_set():
            try:
                if self._producer is None:
                    ensure_topics(self._kafka, specs(VITALS_RAW), self.config.partitions,
                                  self.config.replication_factor, self.config.topic_prefix)
                    self._producer = self._kafka.producer(
                        client_id="wardwatch-gateway",
                        # Give up on a write about when the client is told 503, so few land after it.
                        request_timeout_ms=max(1000, timeout_ms // 2), delivery_timeout_ms=timeout_ms + 1000)
                    self._set_connected(True)
                else:
                    if probe is None:
                        probe = self._kafka.admin(client_id="wardwatch-gateway-probe", timeout_s=self.config.kafka_timeout_s)
                    probe.probe(self.config.kafka_timeout_s)
                    self._set_connected(True)
            except Exception as exc:  # any failure to reach Kafka is reported the same way: 503
                self._set_connected(False, str(exc))
                if probe is not None:
                    probe.close()
                    probe = None
            self._stop.wait(PROBE_INTERVAL_S if self._connected else 1.0)
        if probe is not None:
            probe.close()

    def write(self, writes: list[Write], client: str) -> None:
        """Produce `writes` (each with the client's name in a header) and wait until Kafka
        acknowledged all of them; else KafkaUnavailable."""
        kafka = self._producer
        if kafka is None:
            raise KafkaUnavailable(f"not connected to Kafka at {self.config.bootstrap_servers}")
        headers = [*JSON_HEADERS, (CLIENT_HEADER, client.encode())]
        deadline = time.monotonic() + self.config.kafka_timeout_s
        try:
            deliveries = [kafka.send_acked(self.topic, w.value, key=w.key, headers=headers) for w in writes]
            for delivery in deliveries:
                delivery.wait(max(0.001, deadline - time.monotonic()))
        except Exception as exc:
            self._set_connected(False, str(exc))
            raise KafkaUnavailable(f"Kafka did not acknowledge the writes within {self.config.kafka_timeout_s:g}s: {exc}") from exc
        self._set_connected(True)

    def close(self) -> None:
        if self._producer is not None:
            self._producer.close(timeout_s=self.config.kafka_timeout_s)
            self._producer = None
        self._thread.join(timeout=2)
