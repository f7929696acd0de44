"""The ward view: a live web page of every patient for the clinical staff, behind a login.

One process: a background thread reads `vitals`, `risk` and `alerts` (read_committed) into a
`Ward` held in memory (`wardwatch.wardfeed`, the view's Kafka side), and a Starlette app on
uvicorn (`runtime.http`: read timeouts, connection limit, HTTPS when given a certificate)
serves the login, the page, the ward as JSON (`/api/ward`), a Server-Sent Events stream of it (`/api/events`), `/metrics`, and
`POST /api/acknowledge` / `POST /api/snooze`, which produce commands to `alerts.control`
naming the signed-in user. The alert service owns the alert state; the page shows an alert as
acknowledged only when the `acknowledged` event comes back on `alerts`.

Security (see wardwatch.users for the user file):
- Sessions are Starlette's signed cookie (itsdangerous): HttpOnly, SameSite=Strict, Secure
  when served over HTTPS, signed with `WARDWATCH_SESSION_SECRET` (env only; random per process
  when unset, so a restart signs everyone out).
- Every state-changing request (login, logout, acknowledge, snooze) must carry the session's
  CSRF token (form field or `X-CSRF-Token` header, compared in constant time) and, when the
  browser sends one, an Origin of this site.
- Roles: viewer reads; clinician also acknowledges and snoozes (else 403).
- Failed logins: at most `login_attempts` per user name and per client address per
  `login_window_s` (then 429 + Retry-After, the password not even checked), counted in
  `wardwatch_wardview_login_failures_total{reason}`, never with the user name as a label.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import os
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from typing import Any, Final

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, generate_latest
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Route

from alerts.messages import Snooze
from runtime import metrics as metrics_module
from runtime.config import KafkaConfig, require, setting
from runtime.http import HttpServer, ServeSettings
from wardwatch.users import User, Users
from wardwatch.ward import Ward, text_or_none
from wardwatch.wardfeed import Acknowledger, Feed

log = logging.getLogger(__name__)

STAGE: Final = "wardview"
WEB_DIR: Final = Path(__file__).resolve().parent / "web"
STATIC: Final = {"index.html": "text/html; charset=utf-8", "app.js": "text/javascript; charset=utf-8",
                 "app.css": "text/css; charset=utf-8"}
MAX_BODY_BYTES: Final = 4096
SESSION_COOKIE: Final = "wardwatch_session"
CSRF_HEADER: Final = "x-csrf-token"
MAX_SNOOZE_MIN: Final = 240


@dataclass(frozen=True)
class WardViewConfig(KafkaConfig):
    host: str = setting("127.0.0.1", "address the page is served on (0.0.0.0 in a container)")
    port: int = setting(8080, "port the page is served on (0 = any free port)")
    history: int = setting(90, "risk scores kept per patient for the sparkline")
    lookback_records: int = setting(1000, "records per vitals/risk partition read back at start-up (alerts: all)")
    max_patients: int = setting(2000, "patients kept in memory; the longest silent one goes first")
    users_file: str = setting("", "file of users, one 'name:role:argon2-hash' per line (make lines with `wardwatch user add`)")
    # Env only: WARDWATCH_USERS (user lines) and WARDWATCH_SESSION_SECRET (signs session cookies).
    users: str = field(default="", repr=False, metadata={"help": "", "env": None, "choices": None})
    session_secret: str = field(default="", repr=False, metadata={"help": "", "env": None, "choices": None})
    session_max_age_s: int = setting(12 * 3600, "a sign-in lasts this long, s")
    login_attempts: int = setting(5, "failed logins allowed per user name and per client address in --login-window-s (then 429)")
    login_window_s: float = setting(300.0, "window for --login-attempts, s")
    tls_certfile: str = setting("", "PEM certificate (chain) to serve HTTPS with (the session cookie is then Secure)")
    tls_keyfile: str = setting("", "PEM private key of --tls-certfile")
    read_timeout_s: float = setting(10.0, "longest time a client may take to send a request's headers (then the connection is dropped)")
    max_connections: int = setting(4096, "most connections served at once (past it: 503)")

    def __post_init__(self) -> None:
        super().__post_init__()
        require(0 <= self.port < 65536, f"--port={self.port}: expected 0-65535")
        require(bool(self.users_file or self.users), "--users-file / WARDWATCH_USERS: the ward view needs at least one user "
                "(make one with `wardwatch user add NAME --role clinician`)")
        require(not self.users_file or os.path.isfile(self.users_file), f"--users-file={self.users_file!r}: no such file")
        require(not self.session_secret or len(self.session_secret) >= 32, "WARDWATCH_SESSION_SECRET: expected at least 32 characters")
        require(60 <= self.session_max_age_s <= 7 * 86400, f"--session-max-age-s={self.session_max_age_s}: expected 60-604800")
        require(1 <= self.login_attempts <= 1000, f"--login-attempts={self.login_attempts}: expected 1-1000")
        require(1 <= self.login_window_s <= 86400, f"--login-window-s={self.login_window_s}: expected 1-86400")
        require(bool(self.tls_certfile) == bool(self.tls_keyfile), "--tls-certfile and --tls-keyfile go together")
        for name in ("tls_certfile", "tls_keyfile"):
            path = getattr(self, name)
            require(not path or os.path.isfile(path), f"--{name.replace('_', '-')}={path!r}: no such file")
        require(0.1 <= self.read_timeout_s <= 300, f"--read-timeout-s={self.read_timeout_s}: expected 0.1-300")
        require(16 <= self.max_connections <= 100_000, f"--max-connections={self.max_connections}: expected 16-100000")
        require(2 <= self.history <= 10_000, f"--history={self.history}: expected 2-10000")
        require(0 <= self.lookback_records <= 1_000_000, f"--lookback-records={self.lookback_records}: expected 0-1000000")
        require(1 <= self.max_patients <= 1_000_000, f"--max-patients={self.max_patients}: expected 1-1000000")


# -- metrics ------------------------------------------------------------------------------------
class WardMetrics:
    def __init__(self, registry: Any) -> None:
        self.stream = metrics_module.StreamMetrics(registry, STAGE)
        self.acknowledgements = Counter(
            "wardwatch_wardview_acknowledgements", "Acknowledge requests from the ward view by result", ["result"], registry=registry
        )
        self.patients = Gauge("wardwatch_wardview_patients", "Patients the ward view shows", registry=registry)
        self.clients = Gauge("wardwatch_wardview_clients", "Open live-update streams (browser tabs)", registry=registry)
        # Never the user name as a label: reason only.
        self.login_failures = Counter("wardwatch_wardview_login_failures", "Failed sign-ins by reason", ["reason"], registry=registry)
        self.logins = Counter("wardwatch_wardview_logins", "Successful sign-ins", registry=registry)
        self.refused = Counter("wardwatch_wardview_refused", "Requests refused by reason", ["reason"], registry=registry)
        for result in ("sent", "unknown_alert", "already_acknowledged", "bad_request", "failed"):
            self.acknowledgements.labels(result)
        for reason in ("bad_credentials", "rate_limited", "csrf"):
            self.login_failures.labels(reason)
        for reason in ("no_session", "forbidden_role", "csrf", "cross_origin"):
            self.refused.labels(reason)



# -- sign-in: rate limit of failed attempts -------------------------------------------------------
@dataclass
class LoginLimiter:
    """At most `attempts` failures per key (a user name, a client address) per `window_s`.
    `wait(keys)` is 0.0 when a sign-in may be tried, else the seconds until one may."""

    attempts: int
    window_s: float
    _failures: dict[str, deque[float]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def wait(self, keys: list[str], now: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        longest = 0.0
        with self._lock:
            for key in keys:
                recent = self._failures.get(key)
                while recent and recent[0] <= now - self.window_s:
                    recent.popleft()
                if recent is not None and len(recent) >= self.attempts:
                    longest = max(longest, recent[0] + self.window_s - now)
        return longest

    def failed(self, keys: list[str], now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        with self._lock:
            if len(self._failures) > 100_000:  # bounded: forget the oldest keys under a flood
                for key in list(self._failures)[:50_000]:
                    del self._failures[key]
            for key in keys:
                self._failures.setdefault(key, deque(maxlen=self.attempts)).append(now)

    def succeeded(self, keys: list[str]) -> None:
        with self._lock:
            for key in keys:
                self._failures.pop(key, None)


# -- HTTP ----------------------------------------------------------------------------------------
LOGIN_PAGE: Final = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>wardwatch · sign in</title><link rel="stylesheet" href="/static/app.css"></head>
<body class="login-page"><form class="login" method="post" action="/login">
<div class="brand"><span class="logo" aria-hidden="true"></span><h1>Ward view</h1></div>
{message}<label>User <input name="username" autocomplete="username" required autofocus value="{username}"></label>
<label>Password <input name="password" type="password" autocomplete="current-password" required></label>
<input type="hidden" name="csrf" value="{csrf}"><button type="submit">Sign in</button></form></body></html>
"""

SECURITY_HEADERS: Final = {
    "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY", "Referrer-Policy": "same-origin",
    "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
}


def _json(status: int, obj: Any, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(obj, status_code=status, headers={**SECURITY_HEADERS, **(headers or {})})


class WardView:
    """The server: users, ward, feed, acknowledger and HTTP, started and stopped together."""

    def __init__(self, config: WardViewConfig) -> None:
        self.config = config
        self.users = Users.load(config.users_file, config.users)  # UserError: one line naming the bad entry
        self.ward = Ward(config.history, config.max_patients)
        self.registry = metrics_module.new_registry()
        self.metrics = WardMetrics(self.registry)
        self.stop_event = threading.Event()
        self.feed = Feed(config, self.ward, self.metrics, self.stop_event)
        self.acknowledger = Acknowledger(config)
        self.logins = LoginLimiter(config.login_attempts, config.login_window_s)
        self.tls = bool(config.tls_certfile)
        secret = config.session_secret or secrets.token_urlsafe(48)
        routes = [
            Route("/", self.index, methods=["GET", "HEAD"]),
            Route("/index.html", self.index, methods=["GET", "HEAD"]),
            Route("/login", self.login_page, methods=["GET", "HEAD"]),
            Route("/login", self.login, methods=["POST"]),
            Route("/logout", self.logout, methods=["POST"]),
            Route("/static/{name}", self.static, methods=["GET", "HEAD"]),
            Route("/favicon.ico", lambda request: Response(b"", 204), methods=["GET", "HEAD"]),
            Route("/api/me", self.me, methods=["GET"]),
            Route("/api/ward", self.api_ward, methods=["GET"]),
            Route("/api/events", self.events, methods=["GET"]),
            Route("/api/acknowledge", self.acknowledge_route, methods=["POST"]),
            Route("/api/snooze", self.snooze_route, methods=["POST"]),
            Route("/healthz", self.health, methods=["GET"]),
            Route("/metrics", self.metrics_route, methods=["GET"]),
        ]
        self.app = Starlette(routes=routes, middleware=[Middleware(
            SessionMiddleware, secret_key=secret, session_cookie=SESSION_COOKIE, max_age=config.session_max_age_s,
            same_site="strict", https_only=self.tls)])
        self.server = HttpServer(self.app, ServeSettings(
            host=config.host, port=config.port, read_timeout_s=config.read_timeout_s, max_connections=config.max_connections,
            certfile=config.tls_certfile, keyfile=config.tls_keyfile, name=STAGE))

    @property
    def port(self) -> int:
        return self.server.port

    def start(self) -> None:
        self.feed.start()
        self.server.start()
        log.info("ward view serving url=%s/ users=%d tls=%s", self.server.url, len(self.users.users), "on" if self.tls else "off")

    def shutdown(self) -> None:
        self.stop_event.set()
        with self.ward.changed:
            self.ward.changed.notify_all()
        self.server.stop()
        self.acknowledger.close()

    # -- who is asking ---------------------------------------------------------------------------
    def user(self, request: Request) -> User | None:
        name = request.session.get("user")
        user = self.users.users.get(name) if isinstance(name, str) else None
        # A user removed from the file, or whose role changed, is signed out.
        return user if user is not None and request.session.get("role") == user.role else None

    @staticmethod
    def csrf_token(request: Request) -> str:
        token = request.session.get("csrf")
        if not isinstance(token, str):
            token = request.session["csrf"] = secrets.token_urlsafe(32)
        return token

    def _same_origin(self, request: Request) -> bool:
        origin = request.headers.get("origin")
        if origin is None:
            return True  # no Origin header: the CSRF token alone decides
        return origin == f"{request.url.scheme}://{request.headers.get('host', '')}"

    def _csrf_ok(self, request: Request, given: str | None) -> bool:
        expected = request.session.get("csrf")
        return isinstance(expected, str) and isinstance(given, str) and hmac.compare_digest(given.encode(), expected.encode())

    def _guard(self, request: Request, *, clinician: bool) -> tuple[User | None, Response | None]:
        """The signed-in user of a state-changing API request, or the refusal."""
        user = self.user(request)
        if user is None:
            self.metrics.refused.labels("no_session").inc()
            return None, _json(401, {"error": "not signed in", "login": "/login"})
        if not self._same_origin(request):
            self.metrics.refused.labels("cross_origin").inc()
            return None, _json(403, {"error": "cross-origin request refused"})
        if not self._csrf_ok(request, request.headers.get(CSRF_HEADER)):
            self.metrics.refused.labels("csrf").inc()
            return None, _json(403, {"error": "missing or wrong CSRF token (X-CSRF-Token)"})
        if clinician and not user.may_acknowledge:
            self.metrics.refused.labels("forbidden_role").inc()
            return None, _json(403, {"error": f"role {user.role!r} may not change alerts: clinicians only"})
        return user, None

    # -- pages -----------------------------------------------------------------------------------
    async def index(self, request: Request) -> Response:
        if self.user(request) is None:
            return RedirectResponse("/login", status_code=303, headers=SECURITY_HEADERS)
        return self._static_file("index.html")

    async def static(self, request: Request) -> Response:
        name = request.path_params["name"]
        if name not in STATIC or name == "index.html":
            return _json(404, {"error": f"path={request.url.path!r}: not found"})
        return self._static_file(name)

    @staticmethod
    def _static_file(name: str) -> Response:
        return Response((WEB_DIR / name).read_bytes(), media_type=STATIC[name], headers=SECURITY_HEADERS)

    def _login_form(self, request: Request, status: int = 200, message: str = "", username: str = "",
                    headers: dict[str, str] | None = None) -> Response:
        body = LOGIN_PAGE.format(message=f'<p class="error" role="alert">{escape(message)}</p>' if message else "",
                                 username=escape(username), csrf=escape(self.csrf_token(request)))
        return Response(body, status_code=status, media_type="text/html; charset=utf-8", headers={**SECURITY_HEADERS, **(headers or {})})

    async def login_page(self, request: Request) -> Response:
        if self.user(request) is not None:
            return RedirectResponse("/", status_code=303, headers=SECURITY_HEADERS)
        return self._login_form(request)

    async def login(self, request: Request) -> Response:
        if int(request.headers.get("content-length") or 0) > MAX_BODY_BYTES:
            return _json(413, {"error": f"body over {MAX_BODY_BYTES} bytes"})
        form = await request.form(max_files=0, max_fields=8)
        username, password = str(form.get("username") or "")[:64], str(form.get("password") or "")[:256]
        if not self._same_origin(request) or not self._csrf_ok(request, str(form.get("csrf") or "")):
            self.metrics.login_failures.labels("csrf").inc()
            return self._login_form(request, 403, "The sign-in form expired: please try again.", username)
        client = request.client.host if request.client else "-"
        keys = [f"user:{username.lower()}", f"addr:{client}"]
        wait = self.logins.wait(keys)
        if wait > 0:
            self.metrics.login_failures.labels("rate_limited").inc()
            retry = str(max(1, int(wait) + 1))
            return self._login_form(request, 429, f"Too many failed sign-ins: try again in {retry} s.", username, {"Retry-After": retry})
        user = await run_in_threadpool(self.users.authenticate, username, password)  # argon2 takes tens of ms
        if user is None:
            self.logins.failed(keys)
            self.metrics.login_failures.labels("bad_credentials").inc()
            log.info("sign-in failed client=%s", client)  # no user name: it may be a mistyped password
            return self._login_form(request, 401, "Wrong user name or password.", username)
        self.logins.succeeded(keys)
        request.session.clear()  # a fresh session (and CSRF token) at every sign-in
        request.session.update({"user": user.name, "role": user.role, "csrf": secrets.token_urlsafe(32)})
        self.metrics.logins.inc()
        log.info("signed in user=%s role=%s", user.name, user.role)
        return RedirectResponse("/", status_code=303, headers=SECURITY_HEADERS)

    async def logout(self, request: Request) -> Response:
        given = request.headers.get(CSRF_HEADER)
        if given is None and request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            given = str((await request.form(max_files=0, max_fields=4)).get("csrf") or "")
        if not self._same_origin(request) or not self._csrf_ok(request, given):
            self.metrics.refused.labels("csrf").inc()
            return _json(403, {"error": "missing or wrong CSRF token"})
        request.session.clear()
        return RedirectResponse("/login", status_code=303, headers=SECURITY_HEADERS)

    # -- API -------------------------------------------------------------------------------------
    async def me(self, request: Request) -> Response:
        user = self.user(request)
        if user is None:
            return _json(401, {"error": "not signed in", "login": "/login"})
        return _json(200, {"user": user.name, "role": user.role, "may_acknowledge": user.may_acknowledge, "csrf": self.csrf_token(request)})

    async def api_ward(self, request: Request) -> Response:
        if self.user(request) is None:
            return _json(401, {"error": "not signed in", "login": "/login"})
        return _json(200, self.ward.snapshot())

    async def events(self, request: Request) -> Response:
        """Server-Sent Events: the ward snapshot whenever it changes, at most twice a second."""
        if self.user(request) is None:
            return _json(401, {"error": "not signed in", "login": "/login"})

        async def stream():  # noqa: ANN202
            self.metrics.clients.inc()
            sent, quiet = -1, 0.0
            try:
                while not self.stop_event.is_set():
                    version = self.ward.version
                    if version != sent:
                        data = json.dumps(self.ward.snapshot(), separators=(",", ":"))
                        yield f"event: ward\ndata: {data}\n\n"
                        sent, quiet = version, 0.0
                    elif quiet >= 15.0:
                        yield ": keep-alive\n\n"
                        quiet = 0.0
                    await asyncio.sleep(0.5)
                    quiet += 0.5
            finally:
                self.metrics.clients.dec()

        return StreamingResponse(stream(), media_type="text/event-stream", headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})

    async def _body(self, request: Request) -> dict[str, Any] | None:
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
            return None
        if int(request.headers.get("content-length") or 0) > MAX_BODY_BYTES:
            return None
        try:
            obj = json.loads(await asyncio.wait_for(request.body(), timeout=self.config.read_timeout_s))
        except (TimeoutError, ValueError, UnicodeDecodeError):
            return None
        return obj if isinstance(obj, dict) else None

    async def acknowledge_route(self, request: Request) -> Response:
        user, refused = self._guard(request, clinician=True)
        if refused is not None:
            return refused
        assert user is not None
        obj = await self._body(request)
        if obj is None:
            self.metrics.acknowledgements.labels("bad_request").inc()
            return _json(400, {"error": "expected a JSON body {\"patient_id\": ..., \"alert_id\": ...} (Content-Type: application/json)"})
        status, reply = await run_in_threadpool(self.acknowledge, obj, user.name)
        return _json(status, reply)

    def acknowledge(self, obj: dict[str, Any], by: str) -> tuple[int, dict[str, Any]]:
        """Send the acknowledge command for `obj`'s alert as user `by` (the signed-in user)."""
        counter = self.metrics.acknowledgements
        patient_id, alert_id = text_or_none(obj.get("patient_id")), text_or_none(obj.get("alert_id"))
        if patient_id is None or alert_id is None:
            counter.labels("bad_request").inc()
            return 400, {"error": "patient_id and alert_id: expected non-empty strings of at most 128 characters"}
        alert = self.ward.open_alert(patient_id, alert_id)
        if alert is None:
            counter.labels("unknown_alert").inc()
            return 404, {"error": f"alert_id={alert_id!r}: not an open alert of this patient"}
        if alert["acknowledged"]:
            counter.labels("already_acknowledged").inc()
            return 409, {"error": f"alert_id={alert_id!r}: already acknowledged"}
        # Event time, as the alert service keeps it: not before the alert or the latest reading.
        ts_ms = max(alert["ts_ms"], self.ward.event_time(patient_id))
        try:
            self.acknowledger.send(patient_id, alert_id, ts_ms, by)
        except Exception as exc:
            counter.labels("failed").inc()
            log.warning("acknowledge not sent alert_id=%s error=%r", alert_id, exc)
            return 503, {"error": f"could not reach Kafka: {exc}"}
        counter.labels("sent").inc()
        self.ward.mark_ack_pending(patient_id, alert_id)
        log.info("acknowledge sent alert_id=%s user=%s", alert_id, by)
        return 202, {"status": "sent", "alert_id": alert_id, "by": by}

    async def snooze_route(self, request: Request) -> Response:
        user, refused = self._guard(request, clinician=True)
        if refused is not None:
            return refused
        assert user is not None
        obj = await self._body(request)
        patient_id = text_or_none(obj.get("patient_id")) if obj else None
        minutes = obj.get("minutes") if obj else None
        if patient_id is None or isinstance(minutes, bool) or not isinstance(minutes, int) or not 0 <= minutes <= MAX_SNOOZE_MIN:
            return _json(400, {"error": f"expected {{\"patient_id\": ..., \"minutes\": 0-{MAX_SNOOZE_MIN}}} (0 ends a snooze)"})
        ts_ms = self.ward.event_time(patient_id)
        if ts_ms == 0:
            return _json(404, {"error": "unknown patient"})
        command = Snooze(patient_id=patient_id, until_ts_ms=ts_ms + minutes * 60_000, ts_ms=ts_ms, by=user.name)
        try:
            await run_in_threadpool(self.acknowledger.command, command)
        except Exception as exc:
            return _json(503, {"error": f"could not reach Kafka: {exc}"})
        log.info("snooze sent minutes=%d user=%s", minutes, user.name)
        return _json(202, {"status": "sent", "minutes": minutes, "by": user.name})

    async def health(self, request: Request) -> Response:
        ok = self.feed.is_alive()
        return _json(200 if ok else 503, {"feed": ok, "kafka": self.ward.connected})

    async def metrics_route(self, request: Request) -> Response:
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)
