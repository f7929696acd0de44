"""The HTTP gateway: readings posted over HTTP (JSON or FHIR) -> `vitals.raw`, acknowledged by Kafka.

`POST /v1/readings` takes a reading, a JSON array of readings, or a FHIR Observation/Bundle.
Each item is validated on its own (`ingest.payload`); accepted ones go to `vitals.raw` as sent
(compact JSON, keyed by patient id), and the answer waits until Kafka acknowledged all of them
(acks=all, idempotent producer). 202: all accepted; 207: some; 400: none, or the body is not
JSON. Kafka down or slow: 503 + Retry-After, nothing reported accepted (some writes may still
land: clients retry the whole request and ingest de-duplicates by device_id and seq).
"""

from __future__ import annotations

import hmac
import json
import logging
import threading
import time
from dataclasses import asdict, dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any, Final

from kafka import KafkaAdminClient, KafkaProducer
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from ingest import payload
from ingest.contract import ACVPU_LEVELS, ALL_FIELDS, RANGES, REQUIRED, SPO2_SCALES, UNITS, VITALS
from ingest.validate import Limits, Rejected, decode_json
from runtime import metrics as metrics_module
from runtime.config import KafkaConfig, require, setting
from runtime.kafka.admin import ensure_topics
from runtime.kafka import security as kafka_security
from runtime.kafka.clients import producer, servers
from runtime.records import JSON_HEADERS, to_json
from runtime.topics import VITALS_RAW, specs

log = logging.getLogger(__name__)

STAGE: Final = "gateway"
READINGS_PATH: Final = "/v1/readings"
ROUTES: Final = (READINGS_PATH, "/healthz", "/openapi.json")
MEDIA_TYPES: Final = ("application/json", "application/fhir+json")
RETRY_AFTER_S: Final = 5
PROBE_INTERVAL_S: Final = 5.0
MIN_TOKEN_LENGTH: Final = 16


@dataclass(frozen=True)
class GatewayConfig(KafkaConfig):
    host: str = setting("0.0.0.0", "address the HTTP gateway listens on")
    port: int = setting(8088, "port the HTTP gateway listens on (0 = any free port)")
    # repr=False: the token never reaches a log line through the config's repr.
    token: str = field(default="", repr=False, metadata={
        "help": "bearer token clients must send (Authorization: Bearer TOKEN)", "env": None, "choices": None})
    auth: bool = setting(True, "require the bearer token (--no-auth: accept anyone, for a local demo only)")
    max_request_bytes: int = setting(1024 * 1024, "largest request body accepted, bytes (larger: 413)")
    metrics_port: int = setting(9105, "port for Prometheus /metrics (0 = any free port, -1 = off)")
    metrics_host: str = setting("0.0.0.0", "address /metrics listens on")
    max_future_ms: int = setting(300_000, "reject readings stamped further than this ahead of the gateway clock, ms (0 = no check)")
    max_age_ms: int = setting(7 * 24 * 3_600_000, "reject readings older than this, ms (0 = no check)")
    kafka_timeout_s: float = setting(10.0, "longest wait for Kafka to acknowledge a request's writes before answering 503, s")

    def __post_init__(self) -> None:
        super().__post_init__()
        require(0 <= self.port < 65536, f"--port={self.port}: expected 0-65535")
        require(-1 <= self.metrics_port < 65536, f"--metrics-port={self.metrics_port}: expected -1-65535")
        require(1024 <= self.max_request_bytes <= 2**26, f"--max-request-bytes={self.max_request_bytes}: expected 1024-67108864")
        require(0 < self.kafka_timeout_s <= 300, f"--kafka-timeout-s={self.kafka_timeout_s}: expected more than 0 and at most 300")
        require(self.max_future_ms >= 0, f"--max-future-ms={self.max_future_ms}: expected >= 0")
        require(self.max_age_ms >= 0, f"--max-age-ms={self.max_age_ms}: expected >= 0")
        if self.auth:
            require(bool(self.token), "--token / WARDWATCH_TOKEN: a bearer token is required (or --no-auth to accept unauthenticated requests)")
            require(len(self.token) >= MIN_TOKEN_LENGTH and self.token.isprintable() and " " not in self.token,
                    f"--token / WARDWATCH_TOKEN: expected at least {MIN_TOKEN_LENGTH} printable characters without spaces")

    def limits(self) -> Limits:
        never = 2**62
        return Limits(max_future_ms=self.max_future_ms or never, max_age_ms=self.max_age_ms or never)


# -- the core: a request body -> per-item results and the records to write (pure) ---------------
@dataclass(frozen=True, slots=True)
class ItemResult:
    index: int
    status: str  # "accepted" or "rejected"
    reason: str | None = None
    detail: str | None = None


@dataclass(frozen=True, slots=True)
class Write:
    key: bytes | None  # one accepted item as it goes to `vitals.raw`
    value: bytes


@dataclass(frozen=True)
class Triage:
    results: list[ItemResult]
    writes: list[Write]

    def body(self) -> dict[str, Any]:
        return {"accepted": len(self.writes), "rejected": len(self.results) - len(self.writes),
                "items": [{k: v for k, v in asdict(r).items() if v is not None} for r in self.results]}


class BadRequest(Exception):
    """The body as a whole is unusable (not JSON, no items): 400 with this reason."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail = reason, detail


def triage(body: bytes, now_ms: int, limits: Limits, max_bytes: int) -> Triage:
    """Decode the body and validate each item on its own; raises BadRequest if the body as a whole is bad."""
    try:
        items = payload.split_items(decode_json(body, max_bytes))
    except Rejected as rejected:
        raise BadRequest(str(rejected.reason), rejected.detail) from None
    if not items:
        raise BadRequest("empty", "the request holds no readings: expected a reading, an array of them or a FHIR Bundle")
    results: list[ItemResult] = []
    writes: list[Write] = []
    for index, item in enumerate(items):
        try:
            readings = payload.validate_item(item, now_ms, limits)
        except Rejected as rejected:
            results.append(ItemResult(index, "rejected", str(rejected.reason), rejected.detail))
            continue
        if not readings:
            results.append(ItemResult(index, "rejected", "unsupported_fhir", "the item holds no vital sign the contract maps"))
            continue
        key = payload.patient_key(item)
        writes.append(Write(key.encode() if key is not None else None, to_json(item)))
        results.append(ItemResult(index, "accepted"))
    return Triage(results, writes)


# -- Kafka: the producer, connected in the background, and a health probe -----------------------
class KafkaUnavailable(Exception):
    """Kafka did not acknowledge a request's writes in time (or cannot be reached)."""


class KafkaSink:
    """The idempotent producer, connected in the background (the gateway answers 503 while Kafka is down)."""

    def __init__(self, config: GatewayConfig, connected_gauge: Gauge, stop: threading.Event) -> None:
        self.config = config
        self.topic = config.topic(VITALS_RAW)
        self._gauge = connected_gauge
        self._stop = stop
        self._producer: KafkaProducer | None = None
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
        probe: KafkaAdminClient | None = None
        while not self._stop.is_set():
            try:
                if self._producer is None:
                    ensure_topics(self.config.bootstrap_servers, specs(VITALS_RAW), self.config.partitions,
                                  self.config.replication_factor, self.config.topic_prefix)
                    self._producer = producer(
                        self.config.bootstrap_servers, client_id="wardwatch-gateway", max_block_ms=timeout_ms,
                        # Give up on a write about when the client is told 503, so few land after it.
                        request_timeout_ms=max(1000, timeout_ms // 2), delivery_timeout_ms=timeout_ms + 1000)
                    self._set_connected(True)
                else:
                    if probe is None:
                        probe = KafkaAdminClient(bootstrap_servers=servers(self.config.bootstrap_servers),
                                                 client_id="wardwatch-gateway-probe", request_timeout_ms=timeout_ms,
                                                 bootstrap_timeout_ms=timeout_ms,
                                                 **kafka_security.kafka_python(kafka_security.current_properties()))
                    probe.describe_cluster()
                    self._set_connected(True)
            except Exception as exc:  # any failure to reach Kafka is reported the same way: 503
                self._set_connected(False, str(exc))
                if probe is not None:
                    probe.close()
                    probe = None
            self._stop.wait(PROBE_INTERVAL_S if self._connected else 1.0)
        if probe is not None:
            probe.close()

    def write(self, writes: list[Write]) -> None:
        """Produce `writes` and wait until Kafka acknowledged all of them; else KafkaUnavailable."""
        kafka = self._producer
        if kafka is None:
            raise KafkaUnavailable(f"not connected to Kafka at {self.config.bootstrap_servers}")
        deadline = time.monotonic() + self.config.kafka_timeout_s
        try:
            futures = [kafka.send(self.topic, key=w.key, value=w.value, headers=list(JSON_HEADERS)) for w in writes]
            for future in futures:
                future.get(timeout=max(0.001, deadline - time.monotonic()))
        except Exception as exc:
            self._set_connected(False, str(exc))
            raise KafkaUnavailable(f"Kafka did not acknowledge the writes within {self.config.kafka_timeout_s:g}s: {exc}") from exc
        self._set_connected(True)

    def close(self) -> None:
        if self._producer is not None:
            self._producer.close(timeout=self.config.kafka_timeout_s)
            self._producer = None
        self._thread.join(timeout=2)


# -- metrics -------------------------------------------------------------------------------------
class GatewayMetrics:
    """Requests by route and status code, items by outcome and reject reason, latency. Never a patient id."""

    def __init__(self, r: CollectorRegistry) -> None:
        self.requests = Counter("wardwatch_gateway_requests", "HTTP requests answered", ["route", "code"], registry=r)
        self.latency = Histogram("wardwatch_gateway_request_duration_seconds", "Time to answer a request, Kafka acknowledgement included",
                                 ["route"], buckets=metrics_module.LATENCY_BUCKETS, registry=r)
        self.items = Counter("wardwatch_gateway_items", "Items in POSTed requests by result", ["result"], registry=r)
        self.rejects = Counter("wardwatch_rejects", "Records refused, by reason", ["stage", "reason"], registry=r)
        self.records_out = Counter("wardwatch_records_out", "Records produced", ["stage", "topic"], registry=r)
        self.connected = Gauge("wardwatch_gateway_kafka_connected", "1 while the gateway can reach Kafka", registry=r)
        metrics_module.BuildInfo(r, STAGE)
        for result in ("accepted", "rejected"):
            self.items.labels(result)


# -- HTTP ----------------------------------------------------------------------------------------
def openapi_document() -> dict[str, Any]:
    """The OpenAPI 3.0 description served at /openapi.json: `ingest/openapi.json`, with the
    Reading schema built from the contract (so it is stated once, in `ingest.contract`)."""
    document = json.loads(resources.files("ingest").joinpath("openapi.json").read_text(encoding="utf-8"))
    document["components"]["schemas"]["Reading"] = reading_schema()
    return document


def reading_schema() -> dict[str, Any]:
    text, count = {"type": "string", "minLength": 1, "maxLength": 128}, {"type": "integer", "minimum": 0}
    properties: dict[str, Any] = {name: {} for name in ALL_FIELDS} | {"patient_id": text, "device_id": text, "seq": count, "ts_ms": count}
    properties |= {name: {"type": "number", "nullable": True, "minimum": RANGES[name][0], "maximum": RANGES[name][1],
                          "description": UNITS[name]} for name in VITALS}
    properties |= {"on_oxygen": {"type": "boolean", "nullable": True}, "acvpu": {"type": "string", "nullable": True, "enum": [*ACVPU_LEVELS, None]},
                   "spo2_scale": {"type": "integer", "nullable": True, "enum": [*SPO2_SCALES, None]}}
    return {"type": "object", "description": "One device reading (ts_ms: event time, epoch ms); absent vitals are null or left out",
            "required": list(REQUIRED), "additionalProperties": False, "properties": properties}


class Gateway:
    """The HTTP server, the Kafka sink and the metrics endpoint, started and stopped together."""

    def __init__(self, config: GatewayConfig, registry: CollectorRegistry | None = None) -> None:
        if missing := [name for name in ("split_items", "validate_item", "patient_key") if not hasattr(payload, name)]:
            raise RuntimeError(f"ingest.payload lacks {', '.join(missing)}: the gateway needs this checkout's ingest core")
        self.config = config
        self.limits = config.limits()
        self.registry = registry or metrics_module.new_registry()
        self.metrics = GatewayMetrics(self.registry)
        self.stop_event = threading.Event()
        self.kafka = KafkaSink(config, self.metrics.connected, self.stop_event)
        self.openapi = to_json(openapi_document())
        self.token = config.token.encode() if config.auth else None
        gateway = self

        class Handler(_Handler):
            app = gateway

        self.httpd = ThreadingHTTPServer((config.host, config.port), Handler)
        self.httpd.daemon_threads = True

    def serve_forever(self) -> None:
        self.kafka.start()
        host = "127.0.0.1" if self.config.host == "0.0.0.0" else self.config.host
        log.info("gateway serving url=http://%s:%d%s auth=%s topic=%s", host, self.httpd.server_address[1], READINGS_PATH,
                 "on" if self.token else "off", self.kafka.topic)
        self.httpd.serve_forever(poll_interval=0.5)

    def shutdown(self) -> None:
        self.stop_event.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.kafka.close()

    def authorised(self, header: str | None) -> bool:
        scheme, _, given = (header or "").strip().partition(" ")
        # Constant time: the comparison does not tell how much of a guessed token was right.
        return self.token is None or (scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), self.token))

    def post_readings(self, body: bytes) -> tuple[HTTPStatus, dict[str, Any], dict[str, str]]:
        """The answer to one POST /v1/readings body: status, JSON body, extra headers."""
        try:
            result = triage(body, int(time.time() * 1000), self.limits, self.config.max_request_bytes)
        except BadRequest as bad:
            self.metrics.rejects.labels(STAGE, bad.reason).inc()
            return HTTPStatus.BAD_REQUEST, {"reason": bad.reason, "detail": bad.detail}, {}
        if result.writes:
            try:
                self.kafka.write(result.writes)
            except KafkaUnavailable as exc:
                return (HTTPStatus.SERVICE_UNAVAILABLE, {"reason": "kafka_unavailable", "detail": str(exc)},
                        {"Retry-After": str(RETRY_AFTER_S)})
            self.metrics.records_out.labels(STAGE, self.kafka.topic).inc(len(result.writes))
        for item in result.results:
            self.metrics.items.labels(item.status).inc()
            if item.reason is not None:
                self.metrics.rejects.labels(STAGE, item.reason).inc()
        accepted = len(result.writes)
        status = (HTTPStatus.ACCEPTED if accepted == len(result.results)
                  else HTTPStatus.MULTI_STATUS if accepted else HTTPStatus.BAD_REQUEST)
        return status, result.body(), {}


class _Handler(BaseHTTPRequestHandler):
    app: Gateway
    server_version = "wardwatch-gateway"
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's name
        log.debug("http " + format, *args)

    def _send(self, status: HTTPStatus, body: bytes, extra: dict[str, str] | None = None,
              route: str = "other", started: float | None = None) -> None:
        self.send_response(status)
        headers = {"Content-Type": "application/json", "Content-Length": str(len(body)), "Cache-Control": "no-store",
                   "X-Content-Type-Options": "nosniff", **(extra or {}), **({"Connection": "close"} if self.close_connection else {})}
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)
        self.app.metrics.requests.labels(route, str(int(status))).inc()
        if started is not None:
            self.app.metrics.latency.labels(route).observe(time.monotonic() - started)

    def _error(self, status: HTTPStatus, reason: str, detail: str, route: str, started: float, extra: dict[str, str] | None = None) -> None:
        # The body was not read: the connection cannot carry another request.
        self.close_connection = True
        self._send(status, to_json({"reason": reason, "detail": detail}), extra=extra, route=route, started=started)

    def _route(self) -> str:
        path = self.path.split("?", 1)[0]
        return path if path in ROUTES else "other"

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        started, route = time.monotonic(), self._route()
        if route == "/healthz":
            ok = self.app.kafka.connected
            self._send(HTTPStatus.OK if ok else HTTPStatus.SERVICE_UNAVAILABLE,
                       to_json({"status": "ok" if ok else "unavailable", "kafka": ok}), route=route, started=started)
        elif route == "/openapi.json":
            self._send(HTTPStatus.OK, self.app.openapi, route=route, started=started)
        elif route == READINGS_PATH:
            self._error(HTTPStatus.METHOD_NOT_ALLOWED, "method_not_allowed", "GET: expected POST", route, started, {"Allow": "POST"})
        else:
            self._error(HTTPStatus.NOT_FOUND, "not_found", f"path={self.path[:200]!r}: not found", route, started)

    def do_POST(self) -> None:  # noqa: N802
        started, route = time.monotonic(), self._route()
        if route != READINGS_PATH:
            status = HTTPStatus.NOT_FOUND if route == "other" else HTTPStatus.METHOD_NOT_ALLOWED
            self._error(status, status.phrase.lower().replace(" ", "_"), f"POST {self.path[:200]!r}: {status.phrase.lower()}", route, started)
            return
        refusal = self._refusal()
        if refusal is not None:
            self._error(*refusal[:3], route, started, refusal[3])
            return
        status, reply, extra = self.app.post_readings(self.rfile.read(int(self.headers["Content-Length"])))
        self._send(status, to_json(reply), extra=extra, route=route, started=started)
        log.info("request route=%s code=%d accepted=%s rejected=%s reason=%s ms=%.1f", route, status, reply.get("accepted", 0),
                 reply.get("rejected", 0), reply.get("reason", "-"), (time.monotonic() - started) * 1000)

    def _refusal(self) -> tuple[HTTPStatus, str, str, dict[str, str]] | None:
        """Why this POST is refused before its body is read (auth, media type, size), or None."""
        headers, app = self.headers, self.app
        if not app.authorised(headers.get("Authorization")):
            challenge = 'Bearer realm="wardwatch"' + (', error="invalid_token"' if "Authorization" in headers else "")
            return (HTTPStatus.UNAUTHORIZED, "unauthorized", "Authorization: expected 'Bearer <token>' with the gateway's token",
                    {"WWW-Authenticate": challenge})
        media = headers.get("Content-Type", "").split(";")[0].strip().lower()
        if media not in MEDIA_TYPES:
            return (HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type",
                    f"Content-Type={media[:100]!r}: expected {' or '.join(MEDIA_TYPES)}", {})
        length = headers.get("Content-Length", "")
        if headers.get("Transfer-Encoding") or not (length.isascii() and length.isdigit()):
            return (HTTPStatus.LENGTH_REQUIRED, "length_required",
                    f"Content-Length={length[:40]!r}: expected a byte count (chunked bodies are not accepted)", {})
        if int(length) > app.config.max_request_bytes:
            return (HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "too_large",
                    f"Content-Length={length}: limit {app.config.max_request_bytes} bytes", {})
        return None
