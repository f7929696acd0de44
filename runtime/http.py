"""Serving an ASGI app (Starlette) on uvicorn, the same way for every wardwatch HTTP service.

`HttpServer` binds the socket at construction (a taken port fails at start, in the caller's
thread), serves on uvicorn in a background thread, and stops on `stop()`. TLS is uvicorn's
(`ssl_certfile`/`ssl_keyfile`), connection limits are uvicorn's (`limit_concurrency`: past
it, new requests get 503), and idle keep-alive connections are uvicorn's to close.

One gap is filled here: uvicorn's only timeout (`timeout_keep_alive`) starts after a response,
so a client that opens a connection and sends half a request line keeps it forever (slow-loris).
`_ReadTimeoutH11` is uvicorn's own HTTP/1.1 protocol with one timer added: a request's headers
must be complete within `read_timeout_s` of the connection opening or of the previous
response, else the connection is closed. Slow bodies are the application's to time out.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import socket
import threading
from dataclasses import dataclass
from typing import Any
from collections.abc import Callable

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServeSettings:
    """How one service serves HTTP (filled from its config)."""

    host: str
    port: int
    read_timeout_s: float = 10.0
    max_connections: int = 4096
    certfile: str = ""
    keyfile: str = ""
    name: str = "http"

    @property
    def tls(self) -> bool:
        return bool(self.certfile)


class _ReadTimeoutH11(H11Protocol):
    """uvicorn's H11 protocol, plus a deadline for each request's headers (see the module doc)."""

    read_timeout_s: float = 10.0
    on_timeout: Callable[[], None] | None = None
    _read_timer: asyncio.TimerHandle | None = None

    def _in_request(self) -> bool:
        return self.cycle is not None and not self.cycle.response_complete

    def _arm(self) -> None:
        self._disarm()
        self._read_timer = self.loop.call_later(self.read_timeout_s, self._read_timed_out)

    def _disarm(self) -> None:
        if self._read_timer is not None:
            self._read_timer.cancel()
            self._read_timer = None

    def _read_timed_out(self) -> None:
        self._read_timer = None
        if not self._in_request() and not self.transport.is_closing():
            self.transport.close()
            if self.on_timeout is not None:
                self.on_timeout()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._in_request():
            self._disarm()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self._in_request() and not self.transport.is_closing():
            self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)


def _raise_open_files_limit(wanted: int) -> None:
    """Each connection is a file descriptor: lift the soft limit towards the hard one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


class HttpServer:
    """An ASGI app on uvicorn in a background thread; the socket is bound in __init__ (OSError if taken)."""

    def __init__(self, app: Any, settings: ServeSettings, on_read_timeout: Callable[[], None] | None = None) -> None:
        self.settings = settings
        _raise_open_files_limit(settings.max_connections + 256)
        family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
        self.socket = socket.socket(family, socket.SOCK_STREAM)
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self.socket.bind((settings.host, settings.port))
        except OSError:
            self.socket.close()
            raise
        self.socket.listen(2048)
        protocol = type("ReadTimeoutH11", (_ReadTimeoutH11,), {
            "read_timeout_s": settings.read_timeout_s, "on_timeout": staticmethod(on_read_timeout) if on_read_timeout else None})
        config = uvicorn.Config(
            app, http=protocol, lifespan="off", access_log=False, log_config=None, server_header=False,
            limit_concurrency=settings.max_connections, timeout_keep_alive=max(1, int(settings.read_timeout_s)),
            ssl_certfile=settings.certfile or None, ssl_keyfile=settings.keyfile or None, timeout_graceful_shutdown=5,
        )
        try:
            config.load()  # reads the certificate now: a bad one stops the service at start
        except Exception:
            self.socket.close()
            raise
        self.server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._run, name=f"{settings.name}-http", daemon=True)

    @property
    def port(self) -> int:
        return int(self.socket.getsockname()[1])

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.settings.host in ("0.0.0.0", "") else self.settings.host
        return f"{'https' if self.settings.tls else 'http'}://{host}:{self.port}"

    def _run(self) -> None:
        asyncio.run(self.server.serve(sockets=[self.socket]))

    def start(self) -> None:
        self._thread.start()

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    def stop(self, timeout_s: float = 10.0) -> None:
        self.server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout_s)
        self.socket.close()
