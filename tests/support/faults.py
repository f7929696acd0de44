"""Real faults for tests and the soak run: process pauses, zombies, network cuts, broker restarts.

Nothing here mocks Kafka. A pause is SIGSTOP/SIGCONT on the service's process; a zombie is a
second process started with the same instance id; a network fault is a TCP proxy on loopback
between one service and the broker, which the test drives (pass, delay, blackhole, drop). The
broker behind the proxy advertises the proxy's address on a second listener, so every
connection the proxied service opens (bootstrap, then the leaders and coordinators it learns
from metadata) goes through the proxy, while the test's own clients use the direct listener.
"""

from __future__ import annotations

import contextlib
import select
import signal
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.support.kafka import Service
from wardwatch.broker import LocalBroker, _free_port


# -- process faults --------------------------------------------------------------------------
def pause(service: Service, seconds: float) -> None:
    """SIGSTOP the service for `seconds`, then SIGCONT it (a VM stall or a long GC pause)."""
    service.process.send_signal(signal.SIGSTOP)
    try:
        time.sleep(seconds)
    finally:
        service.process.send_signal(signal.SIGCONT)


@contextlib.contextmanager
def paused(service: Service) -> Iterator[None]:
    """The service is stopped (SIGSTOP) inside the block and continued (SIGCONT) after it."""
    service.process.send_signal(signal.SIGSTOP)
    try:
        yield
    finally:
        service.process.send_signal(signal.SIGCONT)


def wait_exit(service: Service, timeout_s: float) -> int | None:
    """The service's exit code if it exits within `timeout_s`, else None."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        code = service.process.poll()
        if code is not None:
            return code
        time.sleep(0.2)
    return None


# -- network faults --------------------------------------------------------------------------
class TcpProxy:
    """A loopback TCP proxy in front of `upstream` that the test controls.

    Modes: `forward()` (pass bytes through, optionally after `delay_s`), `blackhole()` (keep
    connections open but move no bytes, as a cut cable or a dropped route does; new connections
    are accepted and then starve), `drop()` (reset every open connection; new ones are accepted
    and closed at once until `forward()`).
    """

    def __init__(self, upstream: tuple[str, int], port: int = 0) -> None:
        self.upstream = upstream
        self._listener = socket.create_server(("127.0.0.1", port), reuse_port=False)
        self._listener.settimeout(0.2)
        self.port = self._listener.getsockname()[1]
        self._mode = "forward"
        self.delay_s = 0.0
        self._lock = threading.Lock()
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self._closed = threading.Event()
        self.connections = 0
        self._thread = threading.Thread(target=self._accept_loop, name="tcp-proxy", daemon=True)
        self._thread.start()

    # control ---------------------------------------------------------------------------------
    def forward(self, delay_s: float = 0.0) -> None:
        self.delay_s = delay_s
        self._mode = "forward"

    def blackhole(self) -> None:
        self._mode = "blackhole"

    def drop(self) -> None:
        """Reset every open connection and refuse to carry new ones until `forward()`."""
        self._mode = "drop"
        with self._lock:
            pairs, self._pairs = self._pairs, []
        for a, b in pairs:
            for s in (a, b):
                with contextlib.suppress(OSError):
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                    s.close()

    def close(self) -> None:
        self._closed.set()
        self.drop()
        self._listener.close()
        self._thread.join(5)

    # plumbing --------------------------------------------------------------------------------
    def _accept_loop(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if self._mode == "drop":
                client.close()
                continue
            try:
                upstream = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                client.close()
                continue
            self.connections += 1
            with self._lock:
                self._pairs.append((client, upstream))
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()

    def _pump(self, a: socket.socket, b: socket.socket) -> None:
        peers = {a: b, b: a}
        try:
            while not self._closed.is_set():
                if self._mode == "blackhole":
                    time.sleep(0.05)  # bytes stay in the kernel buffers: nothing moves
                    continue
                if self._mode == "drop":
                    return
                readable, _, _ = select.select(list(peers), [], [], 0.1)
                for s in readable:
                    data = s.recv(65536)
                    if not data:
                        return
                    if self.delay_s:
                        time.sleep(self.delay_s)
                    peers[s].sendall(data)
        except OSError:
            return
        finally:
            for s in (a, b):
                with contextlib.suppress(OSError):
                    s.close()


@dataclass(frozen=True)
class ProxiedBroker(LocalBroker):
    """A local broker with a second listener, PROXIED, that advertises `proxy_port`: a client
    bootstrapped through the proxy learns the proxy's address for every later connection."""

    proxied_port: int = 0
    proxy_port: int = 0

    @property
    def proxied_bootstrap(self) -> str:
        return f"127.0.0.1:{self.proxy_port}"

    def _write_config(self) -> Path:
        path = super()._write_config()
        lines = []
        # PROXIED is secured exactly like the client listener (SASL_SSL with the same SCRAM
        # login module), or plaintext on an `insecure_plaintext` broker; TLS passes the proxy
        # untouched, and the certificate names 127.0.0.1, where the proxy listens.
        protocol = "SASL_SSL" if self.secure else "PLAINTEXT"
        for line in path.read_text().splitlines():
            key, _, value = line.partition("=")
            if key == "listeners":
                value = value.replace("CONTROLLER://", f"PROXIED://127.0.0.1:{self.proxied_port},CONTROLLER://")
            elif key == "advertised.listeners":
                value += f",PROXIED://127.0.0.1:{self.proxy_port}"
            elif key == "listener.security.protocol.map":
                value += f",PROXIED:{protocol}"
            elif key == "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config":
                lines.append(f"listener.name.proxied.scram-sha-512.sasl.jaas.config={value}")
            lines.append(f"{key}={value}")
        path.write_text("\n".join(lines) + "\n")
        return path


def proxied_broker(home: Path) -> tuple[ProxiedBroker, TcpProxy]:
    """A started broker and a forwarding proxy in front of its PROXIED listener."""
    proxied_port = _free_port()
    proxy = TcpProxy(("127.0.0.1", proxied_port))
    broker = ProxiedBroker(port=_free_port(), home=home, proxied_port=proxied_port, proxy_port=proxy.port)
    broker.start()
    return broker, proxy
