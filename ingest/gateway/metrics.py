"""The gateway's metrics, declared once. Labels: route, code, result, reason, client name; never a patient id."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from ingest.gateway.config import STAGE
from runtime import metrics as metrics_module


class GatewayMetrics:
    """Requests by route and status code, items by outcome and reject reason, latency, refusals."""

    def __init__(self, r: CollectorRegistry) -> None:
        self.requests = Counter("wardwatch_gateway_requests", "HTTP requests answered", ["route", "code"], registry=r)
        self.latency = Histogram("wardwatch_gateway_request_duration_seconds", "Time to answer a request, Kafka acknowledgement included",
                                 ["route"], buckets=metrics_module.LATENCY_BUCKETS, registry=r)
        self.items = Counter("wardwatch_gateway_items", "Items in POSTed requests by result", ["result"], registry=r)
        self.client_items = Counter("wardwatch_gateway_client_items", "Items accepted, by client token name", ["client"], registry=r)
        self.rejects = Counter("wardwatch_rejects", "Records refused, by reason", ["stage", "reason"], registry=r)
        self.records_out = Counter("wardwatch_records_out", "Records produced", ["stage", "topic"], registry=r)
        self.connected = Gauge("wardwatch_gateway_kafka_connected", "1 while the gateway can reach Kafka", registry=r)
        self.unauthorised = Counter("wardwatch_gateway_unauthorized", "Requests refused for a missing or unknown token", registry=r)
        self.rate_limited = Counter("wardwatch_gateway_rate_limited", "Requests refused with 429, by client token name", ["client"], registry=r)
        self.slow_clients = Counter("wardwatch_gateway_slow_clients", "Connections dropped for not sending a request in time (read timeout)", registry=r)
        metrics_module.BuildInfo(r, STAGE)
        for result in ("accepted", "rejected"):
            self.items.labels(result)
