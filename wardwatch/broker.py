"""The local broker: a real single-node Apache Kafka 4.x (KRaft) from the official jars.

Maven resolves `org.apache.kafka:kafka_2.13` (deploy/kafka/pom.xml) into a cache outside the
clone once; each broker gets its own directory (config, data, log, pid) under the cache,
formatted once, and listens on loopback only.

Secure by default. At the first start the launcher makes, in the broker's directory (the
principals, their ACLs, passwords and certificates are in wardwatch/broker_access.py):
- a CA and a broker certificate (keytool from the JDK), so clients speak TLS and check the
  broker's name (127.0.0.1, localhost) against a CA they are given;
- one SCRAM-SHA-512 user per service (sim, gateway, ingest, score, alerts, wardview), one for
  the broker itself and one `admin`, bootstrapped into the metadata log when the storage is
  formatted (`kafka-storage format --add-scram`, read from a Java argument file so no
  password is ever on a command line);
- `secrets/`: 0600 files per principal (`NAME.password`, `NAME.env` for wardwatch services,
  `NAME.properties` for Kafka's own tools).
The broker runs the StandardAuthorizer with `allow.everyone.if.no.acl.found=false`; only the
broker and `admin` are super users. After start-up `admin` creates each service's ACLs
(`service_acls`) through the Admin API: every principal may touch only its own topics, group
and transactional ids. Services create the topics they use (CREATE on exactly those names), so
partition counts stay service configuration. The controller listener is TLS with client
certificates (only the broker's certificate is accepted there).

`insecure_plaintext=True` (`wardwatch broker start --insecure-plaintext`) gives the old
PLAINTEXT broker with no login and no ACLs, for a loopback try-out only; it says so loudly.
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

from runtime.kafka.client import connect, wait_for_broker
from runtime.kafka.security import KafkaSecurity
from wardwatch.broker_access import (
    ADMIN, BROKER_USER, MECHANISM, SERVICES, BrokerError, ensure_credentials, grant_service_acls, service_acls, write_secret,
)

__all__ = ["ADMIN", "SERVICES", "BrokerError", "LocalBroker", "cache_dir", "fetch_jars", "jars_dir", "kafka_version", "service_acls"]

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[1]
POM = REPO / "deploy" / "kafka" / "pom.xml"
DEFAULT_PORT = 9092
DEFAULT_HEAP_MB = 384
SEGMENT_BYTES = 64 * 1024 * 1024
# Room for a full segment's time index: an entry (12 bytes) per 4 KiB of log (index.interval.bytes).
INDEX_BYTES = 256 * 1024
PLAINTEXT_WARNING = (
    "WARNING: INSECURE PLAINTEXT Kafka broker: no encryption, no authentication, no ACLs. "
    "Anyone who reaches the port can read every patient's vitals and write fake readings. "
    "Loopback try-out only; never use it with real patient data."
)




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
    insecure_plaintext: bool = False
    topic_prefix: str = ""

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

    @property
    def secrets_dir(self) -> Path:
        return self.dir / "secrets"

    @property
    def ca_file(self) -> Path:
        return self.secrets_dir / "ca.pem"

    @property
    def secure(self) -> bool:
        return not self.insecure_plaintext

    def password_file(self, principal: str) -> Path:
        return self.secrets_dir / f"{principal}.password"

    def env_file(self, principal: str) -> Path:
        return self.secrets_dir / f"{principal}.env"

    def client_security(self, principal: str) -> KafkaSecurity:
        """The client settings of `principal` (a service name or `admin`)."""
        if not self.secure:
            return KafkaSecurity(security_protocol="PLAINTEXT")
        return KafkaSecurity(
            security_protocol="SASL_SSL", ssl_ca_location=str(self.ca_file), sasl_mechanism=MECHANISM,
            sasl_username=principal, sasl_password=self.password_file(principal).read_text().strip(),
        )

    def client_env(self, principal: str) -> dict[str, str]:
        """Environment for a wardwatch process running as `principal`: names files, holds no secret."""
        env = {"KAFKA_BOOTSTRAP_SERVERS": self.bootstrap}
        if not self.secure:
            return {**env, "WARDWATCH_SECURITY_PROTOCOL": "PLAINTEXT"}
        return {
            **env,
            "WARDWATCH_SECURITY_PROTOCOL": "SASL_SSL",
            "WARDWATCH_SSL_CA_LOCATION": str(self.ca_file),
            "WARDWATCH_SASL_MECHANISM": MECHANISM,
            "WARDWATCH_SASL_USERNAME": principal,
            "WARDWATCH_KAFKA_PASSWORD_FILE": str(self.password_file(principal)),
        }

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
        if self.insecure_plaintext:
            print(PLAINTEXT_WARNING, file=sys.stderr, flush=True)  # every start, also of a running broker
        if self.running():
            return self.bootstrap
        if _port_in_use(self.port):
            raise BrokerError(f"port {self.port} is taken by another process: choose another with --port")
        mode = "plaintext" if self.insecure_plaintext else "sasl_ssl"
        libs = fetch_jars()
        self.dir.mkdir(parents=True, exist_ok=True)
        self.dir.chmod(0o700)
        formatted = (self.dir / "data" / "meta.properties").exists()
        mode_file = self.dir / "security.mode"
        if formatted and mode_file.exists() and mode_file.read_text().strip() != mode:
            raise BrokerError(
                f"{self.dir} holds a {mode_file.read_text().strip()} broker; stop it with purge "
                f"(`wardwatch broker stop`) before starting it as {mode}"
            )
        if self.secure:
            ensure_credentials(self)
        properties = self._write_config()
        classpath = f"{libs}/*"
        java = ["java", f"-Xms{min(256, self.heap_mb)}m", f"-Xmx{self.heap_mb}m", "-XX:+UseSerialGC",
                "-XX:TieredStopAtLevel=1", "-Djava.awt.headless=true",
                f"-Dlog4j2.configurationFile={self.dir / 'log4j2.properties'}",
                f"-Dkafka.logs.dir={self.dir}", "-cp", classpath]
        if not formatted:
            self._format(java, properties)
            mode_file.write_text(mode)
        with open(self.dir / "broker.out", "ab") as out:
            process = subprocess.Popen(
                [*java, "kafka.Kafka", str(properties)],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
            )
        self.pid_file.write_text(str(process.pid))
        admin_props = self.client_security(ADMIN).properties()
        deadline = time.monotonic() + timeout_s
        while True:
            if process.poll() is not None:
                self.pid_file.unlink(missing_ok=True)
                raise BrokerError(f"broker exited with code {process.returncode} during start-up; see {self.log_file}: {self._log_tail()}")
            try:
                wait_for_broker(connect(self.bootstrap, properties=admin_props), timeout_s=2.0)
                break
            except TimeoutError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise BrokerError(f"broker did not answer within {timeout_s:.0f}s; see {self.log_file}") from None
        if self.secure:
            try:
                self.grant(self.topic_prefix)
            except Exception:
                self.stop()
                raise
        return self.bootstrap

    def grant(self, prefix: str = "") -> int:
        """Create every service's ACLs for topics under `prefix` (idempotent); returns how many."""
        if not self.secure:
            return 0
        return grant_service_acls(self.bootstrap, self.client_security(ADMIN), prefix)

    def stop(self, *, purge: bool = False, timeout_s: float = 30.0) -> bool:
        """Controlled shutdown (SIGTERM, then SIGKILL); `purge` also deletes data, logs and credentials."""
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

    def _format(self, java: list[str], properties: Path) -> None:
        """Format the storage; in secure mode also bootstrap the SCRAM users into the metadata log.

        `--add-scram` takes passwords as arguments: they go into a 0600 Java argument file
        (`java @file`), deleted afterwards, so no password shows on the process's command line.
        """
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        args = ["kafka.tools.StorageTool", "format", f"--cluster-id={cluster_id}", "-c", str(properties), "--ignore-formatted"]
        if self.secure:
            for principal in (BROKER_USER, ADMIN, *SERVICES):
                password = self.password_file(principal).read_text().strip()
                args += ["--add-scram", f"{MECHANISM}=[name={principal},password={password}]"]
        argfile = self.dir / "format.args"
        write_secret(argfile, "\n".join(args) + "\n")
        try:
            fmt = subprocess.run([*java, f"@{argfile}"], capture_output=True, text=True)
        finally:
            argfile.unlink(missing_ok=True)
        if fmt.returncode != 0:
            raise BrokerError(f"formatting {self.dir / 'data'} failed: {(fmt.stdout + fmt.stderr).strip()[-400:]}")

    def _write_config(self) -> Path:
        controller_port = _free_port() if not (self.dir / "controller.port").exists() else int((self.dir / "controller.port").read_text())
        (self.dir / "controller.port").write_text(str(controller_port))
        if self.secure:
            d = self.secrets_dir
            broker_password = self.password_file(BROKER_USER).read_text().strip()
            store_password = self.password_file("keystore").read_text().strip()
            listener = "SASL_SSL"
            security = {
                "listener.security.protocol.map": "SASL_SSL:SASL_SSL,CONTROLLER:SSL",
                "sasl.enabled.mechanisms": MECHANISM,
                "sasl.mechanism.inter.broker.protocol": MECHANISM,
                "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config":
                    "org.apache.kafka.common.security.scram.ScramLoginModule required "
                    f'username="{BROKER_USER}" password="{broker_password}";',
                "ssl.keystore.type": "PKCS12",
                "ssl.keystore.location": str(d / "broker.p12"),
                "ssl.keystore.password": store_password,
                "ssl.key.password": store_password,
                "ssl.truststore.type": "PEM",
                "ssl.truststore.location": str(self.ca_file),
                # The controller listener takes only certificates from our CA; CN=broker -> User:broker.
                "listener.name.controller.ssl.client.auth": "required",
                "ssl.principal.mapping.rules": "RULE:^CN=([^,]+)$/$1/,DEFAULT",
                "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
                "super.users": f"User:{BROKER_USER};User:{ADMIN}",
                "allow.everyone.if.no.acl.found": "false",
            }
        else:
            listener = "PLAINTEXT"
            security = {"listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT"}
        settings = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@127.0.0.1:{controller_port}",
            "listeners": f"{listener}://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{controller_port}",
            "advertised.listeners": f"{listener}://127.0.0.1:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": listener,
            **security,
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
            "log.segment.bytes": str(SEGMENT_BYTES),
            # Each segment's offset and time indexes are files preallocated to this size, and the
            # first entry written to a new one stalls that partition's appends: about 100 ms per
            # partition at Kafka's 10 MiB on our machines (six fresh partitions held produce acks
            # back 614-735 ms; 45-103 ms at 256 KiB). Sized to a full segment's time index instead.
            "log.index.size.max.bytes": str(INDEX_BYTES),
        }
        path = self.dir / "server.properties"
        # 0600: it holds the broker's SCRAM and keystore passwords.
        write_secret(path, "".join(f"{k}={v}\n" for k, v in settings.items()))
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
