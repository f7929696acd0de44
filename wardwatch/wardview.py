"""The ward view: a live web page of every patient for the clinical staff trying the demo.

One process: a background thread reads `vitals`, `risk` and `alerts` (read_committed) into a
`Ward` held in memory, and a small stdlib HTTP server serves the page, the ward as JSON
(`/api/ward`), a Server-Sent Events stream of it (`/api/events`), `/metrics`, and
`POST /api/acknowledge`, which produces the acknowledge command to `alerts.control`. The
alert service owns the alert state; the page shows an alert as acknowledged only when the
`acknowledged` event comes back on `alerts`.
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Final

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, generate_latest

from runtime import metrics as metrics_module
from runtime.config import KafkaConfig, require, setting
from runtime.topics import ALERTS, ALERTS_CONTROL, RISK
from runtime.topics import VITALS as VITALS_TOPIC
from wardwatch.ward import Ward, text_or_none

log = logging.getLogger(__name__)

STAGE: Final = "wardview"
WEB_DIR: Final = Path(__file__).resolve().parent / "web"
STATIC: Final = {"index.html": "text/html; charset=utf-8", "app.js": "text/javascript; charset=utf-8",
                 "app.css": "text/css; charset=utf-8"}
MAX_BODY_BYTES: Final = 4096


@dataclass(frozen=True)
class WardViewConfig(KafkaConfig):
    host: str = setting("127.0.0.1", "address the page is served on (0.0.0.0 in a container)")
    port: int = setting(8080, "port the page is served on (0 = any free port)")
    history: int = setting(90, "risk scores kept per patient for the sparkline")
    lookback_records: int = setting(1000, "records per vitals/risk partition read back at start-up (alerts: all)")
    max_patients: int = setting(2000, "patients kept in memory; the longest silent one goes first")

    def __post_init__(self) -> None:
        super().__post_init__()
        require(0 <= self.port < 65536, f"--port={self.port}: expected 0-65535")
        require(2 <= self.history <= 10_000, f"--history={self.history}: expected 2-10000")
        require(0 <= self.lookback_records <= 1_000_000, f"--lookback-records={self.lookback_records}: expected 0-1000000")
        require(1 <= self.max_patients <= 1_000_000, f"--max-patients={self.max_patients}: expected 1-1000000")


# -- the ward in memory (pure: no Kafka, no HTTP) -------------------------------------------------
# -- Kafka: the feed thread and the acknowledge producer -----------------------------------------
class WardMetrics:
    def __init__(self, registry: Any) -> None:
        self.stream = metrics_module.StreamMetrics(registry, STAGE)
        self.acknowledgements = Counter(
            "wardwatch_wardview_acknowledgements", "Acknowledge requests from the ward view by result", ["result"], registry=registry
        )
        self.patients = Gauge("wardwatch_wardview_patients", "Patients the ward view shows", registry=registry)
        self.clients = Gauge("wardwatch_wardview_clients", "Open live-update streams (browser tabs)", registry=registry)
        for result in ("sent", "unknown_alert", "already_acknowledged", "bad_request", "failed"):
            self.acknowledgements.labels(result)


class Feed(threading.Thread):
    """Reads vitals, risk and alerts into the ward until `stop`; reconnects after broker errors."""

    def __init__(self, config: WardViewConfig, ward: Ward, metrics: WardMetrics, stop: threading.Event) -> None:
        super().__init__(name="wardview-feed", daemon=True)
        self.config, self.ward, self.metrics, self.stop_event = config, ward, metrics, stop

    def run(self) -> None:
        while not self.stop_event.is_set():
            try:
                self._consume()
            except Exception as exc:  # the page stays up and says it is reconnecting
                self.ward.set_connected(False)
                log.warning("feed interrupted, reconnecting error=%r", exc)
                self.stop_event.wait(2.0)

    def _consume(self) -> None:
        from runtime.kafka.admin import ensure_topics
        from runtime.kafka.client import BEGINNING, TopicPartition, from_config, wait_for_broker
        from runtime.topics import specs

        cfg = self.config
        kafka = from_config(cfg)
        wait_for_broker(kafka)
        ensure_topics(kafka, specs(VITALS_TOPIC, RISK, ALERTS, ALERTS_CONTROL), cfg.partitions,
                      cfg.replication_factor, cfg.topic_prefix)
        c = kafka.consumer(client_id="wardwatch-wardview", group_id=None, max_poll_records=2000)
        try:
            tps = [TopicPartition(cfg.topic(t), p) for t in (ALERTS, RISK, VITALS_TOPIC) for p in c.partitions_for(cfg.topic(t))]
            starts = dict.fromkeys(tps, BEGINNING)
            # Open alerts need the whole (small) alerts topic; vitals and risk only their tail.
            tails = [tp for tp in tps if tp.topic != cfg.topic(ALERTS)]
            for tp, end in c.end_offsets(tails).items():
                if end > cfg.lookback_records:
                    starts[tp] = end - cfg.lookback_records
            c.assign(starts)
            self.ward.set_connected(True)
            log.info("feed reading topics=%s partitions=%d", [ALERTS, RISK, VITALS_TOPIC], len(tps))
            prefix = len(cfg.topic_prefix)
            while not self.stop_event.is_set():
                records = c.poll(0.3, 2000)
                counts: dict[str, int] = {}
                for r in records:
                    topic = r.topic[prefix:]
                    counts[topic] = counts.get(topic, 0) + 1
                    reason = self.ward.apply(topic, r.value)
                    if reason:
                        self.metrics.stream.reject(reason)
                for topic, n in counts.items():
                    self.metrics.stream.records_in.labels(STAGE, topic).inc(n)
                self.metrics.patients.set(len(self.ward.patients))
        finally:
            c.close()


class Acknowledger:
    """Produces acknowledge commands to `alerts.control`, keyed by patient_id (its partition)."""

    def __init__(self, config: WardViewConfig) -> None:
        self.config = config
        self._producer: Any = None
        self._lock = threading.Lock()

    def send(self, patient_id: str, alert_id: str, ts_ms: int, by: str) -> None:
        from runtime.kafka.client import from_config

        command = {"command": "acknowledge", "patient_id": patient_id, "alert_id": alert_id, "ts_ms": ts_ms, "by": by}
        with self._lock:
            if self._producer is None:
                self._producer = from_config(self.config).producer(client_id="wardwatch-wardview-ack")
            delivery = self._producer.send_acked(self.config.topic(ALERTS_CONTROL), json.dumps(command, separators=(",", ":")).encode(),
                                                 key=patient_id.encode())
        delivery.wait(15)

    def close(self) -> None:
        with self._lock:
            if self._producer is not None:
                self._producer.close(timeout_s=5)
                self._producer = None


# -- HTTP ----------------------------------------------------------------------------------------
class WardView:
    """The server: ward, feed, acknowledger and HTTP, started and stopped together."""

    def __init__(self, config: WardViewConfig) -> None:
        self.config = config
        self.ward = Ward(config.history, config.max_patients)
        self.registry = metrics_module.new_registry()
        self.metrics = WardMetrics(self.registry)
        self.stop_event = threading.Event()
        self.feed = Feed(config, self.ward, self.metrics, self.stop_event)
        self.acknowledger = Acknowledger(config)
        view = self

        class Handler(_Handler):
            wardview = view

        self.httpd = ThreadingHTTPServer((config.host, config.port), Handler)
        self.httpd.daemon_threads = True

    @property
    def port(self) -> int:
        return int(self.httpd.server_address[1])

    def serve_forever(self) -> None:
        self.feed.start()
        log.info("ward view serving url=http://%s:%d/", "127.0.0.1" if self.config.host == "0.0.0.0" else self.config.host, self.port)
        self.httpd.serve_forever(poll_interval=0.5)

    def shutdown(self) -> None:
        self.stop_event.set()
        with self.ward.changed:
            self.ward.changed.notify_all()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.acknowledger.close()

    def acknowledge(self, body: bytes) -> tuple[HTTPStatus, dict[str, Any]]:
        counter = self.metrics.acknowledgements
        try:
            obj = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            counter.labels("bad_request").inc()
            return HTTPStatus.BAD_REQUEST, {"error": "body is not JSON: expected {\"patient_id\": ..., \"alert_id\": ...}"}
        patient_id = text_or_none(obj.get("patient_id")) if isinstance(obj, dict) else None
        alert_id = text_or_none(obj.get("alert_id")) if isinstance(obj, dict) else None
        if patient_id is None or alert_id is None:
            counter.labels("bad_request").inc()
            return HTTPStatus.BAD_REQUEST, {"error": "patient_id and alert_id: expected non-empty strings of at most 128 characters"}
        by = text_or_none(obj.get("by")) or "ward-view"
        alert = self.ward.open_alert(patient_id, alert_id)
        if alert is None:
            counter.labels("unknown_alert").inc()
            return HTTPStatus.NOT_FOUND, {"error": f"alert_id={alert_id!r}: not an open alert of this patient"}
        if alert["acknowledged"]:
            counter.labels("already_acknowledged").inc()
            return HTTPStatus.CONFLICT, {"error": f"alert_id={alert_id!r}: already acknowledged"}
        # Event time, as the alert service keeps it: not before the alert or the latest reading.
        ts_ms = max(alert["ts_ms"], self.ward.event_time(patient_id))
        try:
            self.acknowledger.send(patient_id, alert_id, ts_ms, by)
        except Exception as exc:
            counter.labels("failed").inc()
            log.warning("acknowledge not sent alert_id=%s error=%r", alert_id, exc)
            return HTTPStatus.SERVICE_UNAVAILABLE, {"error": f"could not reach Kafka: {exc}"}
        counter.labels("sent").inc()
        self.ward.mark_ack_pending(patient_id, alert_id)
        log.info("acknowledge sent alert_id=%s", alert_id)
        return HTTPStatus.ACCEPTED, {"status": "sent", "alert_id": alert_id}


class _Handler(BaseHTTPRequestHandler):
    wardview: WardView
    server_version = "wardwatch-wardview"
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's name
        log.debug("http " + format, *args)

    def _send(self, status: HTTPStatus, body: bytes, content_type: str, extra: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: HTTPStatus, obj: Any) -> None:
        self._send(status, json.dumps(obj, separators=(",", ":")).encode(), "application/json")

    def do_HEAD(self) -> None:  # noqa: N802 - the stdlib's name
        self.do_GET()

    def do_GET(self) -> None:  # noqa: N802
        path = self.path.split("?", 1)[0]
        view = self.wardview
        if path in ("/", "/index.html"):
            self._static("index.html")
        elif path.startswith("/static/") and path[len("/static/"):] in STATIC:
            self._static(path[len("/static/"):])
        elif path == "/favicon.ico":
            self._send(HTTPStatus.NO_CONTENT, b"", "image/x-icon")
        elif path == "/api/ward":
            self._json(HTTPStatus.OK, view.ward.snapshot())
        elif path == "/api/events":
            self._events()
        elif path == "/healthz":
            ok = view.feed.is_alive()
            self._json(HTTPStatus.OK if ok else HTTPStatus.SERVICE_UNAVAILABLE, {"feed": ok, "kafka": view.ward.connected})
        elif path == "/metrics":
            self._send(HTTPStatus.OK, generate_latest(view.registry), CONTENT_TYPE_LATEST)
        else:
            self._json(HTTPStatus.NOT_FOUND, {"error": f"path={path!r}: not found"})

    def do_POST(self) -> None:  # noqa: N802
        path = self.path.split("?", 1)[0]
        if path != "/api/acknowledge":
            self._json(HTTPStatus.NOT_FOUND, {"error": f"path={path!r}: not found"})
            return
        # JSON only: a cross-site form cannot send it without a CORS preflight we never answer.
        if self.headers.get("Content-Type", "").split(";")[0].strip() != "application/json":
            self._json(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, {"error": "Content-Type: expected application/json"})
            return
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            length = -1
        if not 0 < length <= MAX_BODY_BYTES:
            self._json(HTTPStatus.BAD_REQUEST, {"error": f"Content-Length={length}: expected 1-{MAX_BODY_BYTES} bytes"})
            return
        status, reply = self.wardview.acknowledge(self.rfile.read(length))
        self._json(status, reply)

    def _static(self, name: str) -> None:
        self._send(HTTPStatus.OK, (WEB_DIR / name).read_bytes(), STATIC[name])

    def _events(self) -> None:
        """Server-Sent Events: the ward snapshot whenever it changes, at most twice a second."""
        view = self.wardview
        ward = view.ward
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-store")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        view.metrics.clients.inc()
        sent = -1
        try:
            while not view.stop_event.is_set():
                with ward.changed:
                    if ward.version == sent:
                        ward.changed.wait(timeout=15.0)
                    version = ward.version
                if version != sent:
                    data = json.dumps(ward.snapshot(), separators=(",", ":"))
                    self.wfile.write(f"event: ward\ndata: {data}\n\n".encode())
                    sent = version
                else:
                    self.wfile.write(b": keep-alive\n\n")
                self.wfile.flush()
                view.stop_event.wait(0.5)
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            pass  # the tab closed
        finally:
            view.metrics.clients.dec()
