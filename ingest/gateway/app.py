"""The gateway's HTTP surface: a Starlette app served by uvicorn (`runtime.http`).

`POST /v1/readings` takes a reading, a JSON array of readings, or a FHIR Observation/Bundle.
Before the body is read a request is refused for a missing or unknown token (401), past its
client's rate limit (429 + Retry-After), a media type other than JSON (415), no usable
Content-Length (411) or a declared size over the limit (413). Each item is then validated on
its own (`triage`); accepted ones go to `vitals.raw` as sent, keyed by patient id, with the
client's token name in a header, and the answer waits until Kafka acknowledged all of them.
202: all accepted; 207: some; 400: none, or the body is not JSON. Kafka down or slow: 503 +
Retry-After, nothing reported accepted (clients retry the whole request; ingest de-duplicates).
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from importlib import resources
from typing import Any, Final

from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ingest.contract import ACVPU_LEVELS, ALL_FIELDS, RANGES, REQUIRED, SPO2_SCALES, UNITS, VITALS
from ingest.gateway.config import STAGE, GatewayConfig
from ingest.gateway.metrics import GatewayMetrics
from ingest.gateway.tokens import RateLimiter, TokenStore, retry_after
from ingest.gateway.triage import BadRequest, triage
from ingest.gateway.writer import KafkaUnavailable, KafkaWriter
from runtime import metrics as metrics_module
from runtime.http import HttpServer, ServeSettings
from runtime.records import to_json

log = logging.getLogger(__name__)

READINGS_PATH: Final = "/v1/readings"
ROUTES: Final = (READINGS_PATH, "/healthz", "/openapi.json")
MEDIA_TYPES: Final = ("application/json", "application/fhir+json")
RETRY_AFTER_S: Final = 5
ANONYMOUS: Final = "anonymous"  # the client name under --no-auth


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


def answer(status: int, body: dict[str, Any] | bytes, headers: dict[str, str] | None = None, close: bool = False) -> Response:
    content = body if isinstance(body, bytes) else to_json(body)
    extra = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff", **(headers or {})}
    if close:  # the body was not read: the connection cannot carry another request
        extra["Connection"] = "close"
    return Response(content, status_code=status, media_type="application/json", headers=extra)


def refusal(status: int, reason: str, detail: str, headers: dict[str, str] | None = None) -> Response:
    return answer(status, {"reason": reason, "detail": detail}, headers, close=True)


class _Measured:
    """ASGI middleware: requests counted by route and status code, latency by route."""

    def __init__(self, app: ASGIApp, metrics: GatewayMetrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started, route = time.monotonic(), scope["path"] if scope["path"] in ROUTES else "other"
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            self.metrics.requests.labels(route, str(status)).inc()
            self.metrics.latency.labels(route).observe(time.monotonic() - started)


class Gateway:
    """Tokens, rate limits, the Kafka writer, the app and its server, started and stopped together."""

    def __init__(self, config: GatewayConfig, registry: CollectorRegistry | None = None) -> None:
        self.config = config
        self.limits = config.limits()
        self.registry = registry or metrics_module.new_registry()
        self.metrics = GatewayMetrics(self.registry)
        self.tokens = TokenStore(config.tokens_file, config.tokens, config.token) if config.auth else None
        self.rate = RateLimiter(config.rate_limit, config.rate_burst)
        self.stop_event = threading.Event()
        self.kafka = KafkaWriter(config, self.metrics.connected, self.stop_event)
        self.openapi = to_json(openapi_document())
        self.app = self._build_app()
        self.server = HttpServer(self.app, ServeSettings(
            host=config.host, port=config.port, read_timeout_s=config.read_timeout_s, max_connections=config.max_connections,
            certfile=config.tls_certfile, keyfile=config.tls_keyfile, name=STAGE), on_read_timeout=self.metrics.slow_clients.inc)

    def _build_app(self) -> ASGIApp:
        async def not_found_or_not_allowed(request: Request, exc: Exception) -> Response:
            assert isinstance(exc, HTTPException)
            path = request.url.path[:200]
            if exc.status_code == 405:
                return refusal(405, "method_not_allowed", f"{request.method} {path!r}: method not allowed", dict(exc.headers or {}))
            return refusal(exc.status_code, "not_found" if exc.status_code == 404 else "bad_request", f"{request.method} {path!r}: {exc.detail}")

        app = Starlette(routes=[
            Route(READINGS_PATH, self.post_readings, methods=["POST"]),
            Route("/healthz", self.health, methods=["GET"]),
            Route("/openapi.json", self.openapi_json, methods=["GET"]),
        ], exception_handlers={HTTPException: not_found_or_not_allowed})
        return _Measured(app, self.metrics)

    @property
    def port(self) -> int:
        return self.server.port

    def start(self) -> None:
        self.kafka.start()
        self.server.start()
        log.info("gateway serving url=%s%s auth=%s clients=%s rate_limit=%g/s topic=%s", self.server.url, READINGS_PATH,
                 "on" if self.tokens else "off", ",".join(self.tokens.names()) if self.tokens else "-", self.config.rate_limit, self.kafka.topic)

    def shutdown(self) -> None:
        self.stop_event.set()
        self.server.stop()
        self.kafka.close()

    # -- handlers --------------------------------------------------------------------------------
    async def health(self, request: Request) -> Response:
        ok = self.kafka.connected
        return answer(200 if ok else 503, {"status": "ok" if ok else "unavailable", "kafka": ok})

    async def openapi_json(self, request: Request) -> Response:
        return answer(200, self.openapi)

    def client_of(self, header: str | None) -> str | None:
        """The client token's name for an Authorization header, or None."""
        if self.tokens is None:
            return ANONYMOUS
        scheme, _, given = (header or "").strip().partition(" ")
        if scheme.lower() != "bearer" or not given.strip():
            return None
        return self.tokens.name_of(given.strip())

    def _refusal(self, request: Request) -> tuple[Response | None, str]:
        """Why this POST is refused before its body is read (auth, rate, media type, size), or None; and the client."""
        headers = request.headers
        client = self.client_of(headers.get("authorization"))
        if client is None:
            self.metrics.unauthorised.inc()
            challenge = 'Bearer realm="wardwatch"' + (', error="invalid_token"' if "authorization" in headers else "")
            return refusal(401, "unauthorized", "Authorization: expected 'Bearer <token>' with a token the gateway knows",
                           {"WWW-Authenticate": challenge}), ""
        wait = self.rate.take(client)
        if wait > 0:
            self.metrics.rate_limited.labels(client).inc()
            return refusal(429, "rate_limited", f"client {client!r}: more than {self.config.rate_limit:g} requests/s "
                           f"(burst {self.config.rate_burst}); retry after Retry-After seconds", {"Retry-After": retry_after(wait)}), client
        media = headers.get("content-type", "").split(";")[0].strip().lower()
        if media not in MEDIA_TYPES:
            return refusal(415, "unsupported_media_type", f"Content-Type={media[:100]!r}: expected {' or '.join(MEDIA_TYPES)}"), client
        length = headers.get("content-length", "")
        if headers.get("transfer-encoding") or not (length.isascii() and length.isdigit()):
            return refusal(411, "length_required", f"Content-Length={length[:40]!r}: expected a byte count (chunked bodies are not accepted)"), client
        if int(length) > self.config.max_request_bytes:
            return refusal(413, "too_large", f"Content-Length={length}: limit {self.config.max_request_bytes} bytes"), client
        return None, client

    async def post_readings(self, request: Request) -> Response:
        started = time.monotonic()
        refused, client = self._refusal(request)
        if refused is not None:
            return refused
        try:
            body = await asyncio.wait_for(request.body(), timeout=self.config.read_timeout_s)
        except TimeoutError:
            return refusal(408, "request_timeout", f"the body did not arrive within {self.config.read_timeout_s:g}s")
        status, reply, extra = await run_in_threadpool(self.readings, body, client)
        log.info("request client=%s code=%d accepted=%s rejected=%s reason=%s ms=%.1f", client, status, reply.get("accepted", 0),
                 reply.get("rejected", 0), reply.get("reason", "-"), (time.monotonic() - started) * 1000)
        return answer(status, reply, extra)

    def readings(self, body: bytes, client: str) -> tuple[int, dict[str, Any], dict[str, str]]:
        """The answer to one POST /v1/readings body: status, JSON body, extra headers."""
        try:
            result = triage(body, int(time.time() * 1000), self.limits, self.config.max_request_bytes)
        except BadRequest as bad:
            self.metrics.rejects.labels(STAGE, bad.reason).inc()
            return 400, {"reason": bad.reason, "detail": bad.detail}, {}
        if result.writes:
            try:
                self.kafka.write(result.writes, client)
            except KafkaUnavailable as exc:
                return 503, {"reason": "kafka_unavailable", "detail": str(exc)}, {"Retry-After": str(RETRY_AFTER_S)}
            self.metrics.records_out.labels(STAGE, self.kafka.topic).inc(len(result.writes))
            self.metrics.client_items.labels(client).inc(len(result.writes))
        for item in result.results:
            self.metrics.items.labels(item.status).inc()
            if item.reason is not None:
                self.metrics.rejects.labels(STAGE, item.reason).inc()
        accepted = len(result.writes)
        status = 202 if accepted == len(result.results) else 207 if accepted else 400
        return status, result.body(), {}


__all__ = ["Gateway", "READINGS_PATH", "openapi_document"]
