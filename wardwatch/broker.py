"""The local broker: a real single-node Apache Kafka 4.x (KRaft) from the official jars.

Maven resolves `org.apache.kafka:kafka_2.13` (deploy/kafka/pom.xml) into a cache outside the
clone once; each broker gets its own directory (config, data, log, pid) under the cache,
formatted once, and listens on loopback only.
"""

from __future__ import annotations

import base64
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from runtime.kafka.client import wait_for_broker

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[1]
POM = REPO / "deploy" / "kafka" / "pom.xml"
DEFAULT_PORT = 9092
DEFAULT_HEAP_MB = 384


class BrokerError(RuntimeError):
    """The local broker could not be fetched, started or stopped; the message says why."""


def cache_dir() -> Path:
    return Path(os.environ.get("WARDWATCH_CACHE_DIR") or Path.home() / ".cache" / "wardwatch")


def kafka_version() -> str:
    match = re.search(r"<kafka.version>([^<]+)</kafka.version>", POM.read_text())
    if not match:
        raise BrokerError(f"{POM}: no <kafka.version> property")
    return match.group(1)


def jars_dir() -> Path:
    return cache_dir() / f"kafka-{kafka_version()}" / "libs"


def fetch_jars(quiet: bool = False) -> Path:
    """Resolve the broker jars with Maven into the cache (a no-op once done)."""
    libs = jars_dir()
    if (libs / ".complete").exists():
        return libs
    if shutil.which("mvn") is None:
        raise BrokerError("Maven (mvn) is not on PATH: install Maven, or set KAFKA_BOOTSTRAP_SERVERS to an existing broker")
    if shutil.which("java") is None:
        raise BrokerError("Java is not on PATH: install Java 17+, or set KAFKA_BOOTSTRAP_SERVERS to an existing broker")
    staging = libs.with_name(f"libs.tmp-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    if not quiet:
        print(f"resolving Apache Kafka {kafka_version()} jars with Maven into {libs} (once) ...", file=sys.stderr, flush=True)
    cmd = [
        "mvn", "-B", "-q", "-f", str(POM),
        "org.apache.maven.plugins:maven-dependency-plugin:2.8:copy-dependencies",
        "-DincludeScope=runtime", f"-DoutputDirectory={staging}",
    ]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        shutil.rmtree(staging, ignore_errors=True)
        tail = (result.stdout + result.stderr).strip().splitlines()[-5:]
        raise BrokerError("Maven could not resolve the Kafka jars: " + " | ".join(tail))
    (staging / ".complete").write_text(kafka_version())
    shutil.rmtree(libs, ignore_errors=True)
    staging.rename(libs)
    return libs


@dataclass(frozen=True)
class LocalBroker:
    """One local broker, identified by its port; its files live in `home`."""

    port: int = DEFAULT_PORT
    home: Path | None = None
    heap_mb: int = DEFAULT_HEAP_MB

    @property
    def dir(self) -> Path:
        return self.home or cache_dir() / f"broker-{self.port}"

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def log_file(self) -> Path:
        return self.dir / "broker.log"

    @property
    def pid_file(self) -> Path:
        return self.dir / "broker.pid"

    def pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass
        return pid

    def running(self) -> bool:
        return self.pid() is not None

    def start(self, timeout_s: float = 90.0) -> str:
        """Start (or find running) and wait until it serves requests; returns the bootstrap address."""
        if self.running():
            return self.bootstrap
        if _port_in_use(self.port):
            raise BrokerError(f"port {self.port} is taken by another process: choose another with --port")
        libs = fetch_jars()
        self.dir.mkdir(parents=True, exist_ok=True)
        properties = self._write_config()
        classpath = f"{libs}/*"
        java = ["java", f"-Xms{min(256, self.heap_mb)}m", f"-Xmx{self.heap_mb}m", "-XX:+UseSerialGC",
                "-XX:TieredStopAtLevel=1", "-Djava.awt.headless=true",
                f"-Dlog4j2.configurationFile={self.dir / 'log4j2.properties'}",
                f"-Dkafka.logs.dir={self.dir}", "-cp", classpath]
        if not (self.dir / "data" / "meta.properties").exists():
            cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
            fmt = subprocess.run(
                [*java, "kafka.tools.StorageTool", "format", f"--cluster-id={cluster_id}", "-c", str(properties), "--ignore-formatted"],
                capture_output=True, text=True,
            )
            if fmt.returncode != 0:
                raise BrokerError(f"formatting {self.dir / 'data'} failed: {(fmt.stdout + fmt.stderr).strip()[-400:]}")
        with open(self.dir / "broker.out", "ab") as out:
            process = subprocess.Popen(
                [*java, "kafka.Kafka", str(properties)],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
            )
        self.pid_file.write_text(str(process.pid))
        deadline = time.monotonic() + timeout_s
        while True:
            if process.poll() is not None:
                self.pid_file.unlink(missing_ok=True)
                raise BrokerError(f"broker exited with code {process.returncode} during start-up; see {self.log_file}: {self._log_tail()}")
            try:
                wait_for_broker(self.bootstrap, timeout_s=2.0)
                return self.bootstrap
            except TimeoutError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise BrokerError(f"broker did not answer within {timeout_s:.0f}s; see {self.log_file}") from None

    def stop(self, *, purge: bool = False, timeout_s: float = 30.0) -> bool:
        """Controlled shutdown (SIGTERM, then SIGKILL); `purge` also deletes data and logs."""
        pid = self.pid()
        stopped = False
        if pid is not None:
            _signal_group(pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout_s
            while _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.1)
            if _alive(pid):
                _signal_group(pid, signal.SIGKILL)
                while _alive(pid):
                    time.sleep(0.05)
            stopped = True
        self.pid_file.unlink(missing_ok=True)
        if purge:
            shutil.rmtree(self.dir, ignore_errors=True)
        return stopped

    def kill(self) -> None:
        """SIGKILL, no controlled shutdown: for crash tests."""
        pid = self.pid()
        if pid is not None:
            _signal_group(pid, signal.SIGKILL)
            while _alive(pid):
                time.sleep(0.05)
        self.pid_file.unlink(missing_ok=True)

    def _log_tail(self, lines: int = 5) -> str:
        for path in (self.log_file, self.dir / "broker.out"):
            if path.exists():
                text = path.read_text(errors="replace").strip().splitlines()
                errors = [line for line in text if "ERROR" in line or "Exception" in line] or text
                return " | ".join(errors[-lines:])
        return "(no log)"

    def _write_config(self) -> Path:
        controller_port = _free_port() if not (self.dir / "controller.port").exists() else int((self.dir / "controller.port").read_text())
        (self.dir / "controller.port").write_text(str(controller_port))
        settings = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@127.0.0.1:{controller_port}",
            "listeners": f"PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port}",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "log.dirs": str(self.dir / "data"),
            "num.partitions": "6",
            "auto.create.topics.enable": "false",
            # One node: every internal topic has one replica.
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "6",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "6",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            # Abort transactions of crashed producers promptly (read_committed readers wait on them).
            "transaction.abort.timed.out.transaction.cleanup.interval.ms": "1000",
            # Small footprint: the cleaner's dedupe buffer is allocated on the heap.
            "log.cleaner.dedupe.buffer.size": str(8 * 1024 * 1024),
            "num.network.threads": "2",
            "num.io.threads": "2",
            "num.recovery.threads.per.data.dir": "1",
            "log.segment.bytes": str(64 * 1024 * 1024),
        }
        path = self.dir / "server.properties"
        path.write_text("".join(f"{k}={v}\n" for k, v in settings.items()))
        (self.dir / "log4j2.properties").write_text(
            "status = warn\n"
            "appender.file.type = File\n"
            "appender.file.name = FILE\n"
            f"appender.file.fileName = {self.log_file}\n"
            "appender.file.layout.type = PatternLayout\n"
            "appender.file.layout.pattern = [%d] %p %m (%c)%n\n"
            "rootLogger.level = INFO\n"
            "rootLogger.appenderRef.file.ref = FILE\n"
            "logger.state.name = state.change.logger\n"
            "logger.state.level = WARN\n"
        )
        return path


def _alive(pid: int) -> bool:
    try:
        waited, _status = os.waitpid(pid, os.WNOHANG)
        if waited == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def _port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
