"""Real faults for the fault tests (tests/test_faults.py) and the soak run (bench/soak.py):
process pauses, zombies, network cuts, broker restarts.

Nothing here mocks Kafka. A pause is SIGSTOP/SIGCONT on the service's process; a zombie is a
second process started with the same instance id; a network fault is a TCP proxy on loopback
between one service and the broker, which the test drives (pass, delay, blackhole, drop). The
broker behind the proxy advertises the proxy's address on a listener of its own, so every
connection the proxied service opens (bootstrap, then the leaders and coordinators it learns
from metadata) goes through the proxy, while the test's own clients use the direct listener.
A broker may have several proxied listeners, one proxy each (one per service in the soak).
"""

from __future__ import annotations

import contextlib
import select
import signal
import socket
import threading
import time
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from wardwatch.broker import LocalBroker, _free_port


class Process(Protocol):
    """A service under test: anything holding its `subprocess.Popen`."""

    @property
    def process(self) -> subprocess.Popen: ...


# -- process faults --------------------------------------------------------------------------
@contextlib.contextmanager
def paused(service: Process) -> Iterator[None]:
    """The service is stopped (SIGSTOP) inside the block and continued (SIGCONT) after it."""
    service.process.send_signal(signal.SIGSTOP)
    try:
        yield
    finally:
        service.process.send_signal(signal.SIGCONT)


def wait_exit(service: Process, timeout_s: float) -> int | None:
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
    """A local broker with more listeners, PROXIED0, PROXIED1, ..., each advertising the port
    of its proxy: a client bootstrapped through a proxy learns that proxy's address for every
    later connection. `routes`: (listener port, proxy port) pairs."""

    routes: tuple[tuple[int, int], ...] = ()

    @property
    def proxied_bootstrap(self) -> str:
        """Through the first proxy."""
        return self.route_bootstrap(0)

    def route_bootstrap(self, i: int) -> str:
        return f"127.0.0.1:{self.routes[i][1]}"

    def _write_config(self) -> Path:
        path = super()._write_config()
        lines = []
        # Each PROXIEDi is secured exactly like the client listener (SASL_SSL with the same
        # SCRAM login module), or plaintext on an `insecure_plaintext` broker; TLS passes the
        # proxy untouched, and the certificate names 127.0.0.1, where the proxies listen.
        protocol = "SASL_SSL" if self.secure else "PLAINTEXT"
        names = [f"PROXIED{i}" for i in range(len(self.routes))]
        for line in path.read_text().splitlines():
            key, _, value = line.partition("=")
            if key == "listeners":
                ours = ",".join(f"{n}://127.0.0.1:{port}" for n, (port, _) in zip(names, self.routes))
                value = value.replace("CONTROLLER://", f"{ours},CONTROLLER://")
            elif key == "advertised.listeners":
                value += "".join(f",{n}://127.0.0.1:{proxy}" for n, (_, proxy) in zip(names, self.routes))
            elif key == "listener.security.protocol.map":
                value += "".join(f",{n}:{protocol}" for n in names)
            elif key == "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config":
                lines += [f"listener.name.{n.lower()}.scram-sha-512.sasl.jaas.config={value}" for n in names]
            lines.append(f"{key}={value}")
        path.write_text("\n".join(lines) + "\n")
        return path


def proxied_broker(home: Path, proxies: int = 1) -> tuple[ProxiedBroker, list[TcpProxy]]:
    """A started broker and `proxies` forwarding proxies, one in front of each PROXIEDi listener."""
    listener_ports = [_free_port() for _ in range(proxies)]
    tcp = [TcpProxy(("127.0.0.1", port)) for port in listener_ports]
    broker = ProxiedBroker(port=_free_port(), home=home, routes=tuple((port, p.port) for port, p in zip(listener_ports, tcp)))
    broker.start()
    return broker, tcp
