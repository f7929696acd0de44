"""Shared fixtures. The broker comes from exactly one place: `kafka_cluster` (its address:
`kafka_bootstrap`).

Order: KAFKA_BOOTSTRAP_SERVERS if set (clients then use the WARDWATCH_SECURITY_PROTOCOL, ...
settings of the environment); else the local launcher, secured as in production (TLS, SCRAM
users per service, ACLs); else testcontainers (apache/kafka, KRaft, plaintext) if a Docker
daemon answers: apache/kafka, or where it cannot be pulled the image built from the same jars by
deploy/docker/ci/images.sh. A line on the terminal says which broker the session uses. With the secured broker the test process itself is `admin` and every spawned
service runs as its own principal (tests/support/kafka.py `spawn`). No broker means the Kafka
tests fail with the reason; they never skip.

The Kafka client (kafka-python or confluent) comes from `kafka_client`: tests marked
`both_clients` run once on each, every other test on $WARDWATCH_KAFKA_CLIENT (default kafka-python).
Either client gets the same security settings (`runtime.kafka.client.connect`).
"""

from __future__ import annotations

import contextlib
import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from runtime.kafka.client import CLIENTS, DEFAULT_CLIENT
from runtime.kafka.client import ENV as KAFKA_CLIENT_ENV
from tests.support.kafka import Cluster, use_cluster

KAFKA_IMAGE = "apache/kafka:4.1.1"
# Built from Debian packages and the same Apache Kafka jars by deploy/docker/ci/images.sh, for
# machines that run Docker but cannot pull from Docker Hub.
LOCAL_KAFKA_IMAGE = "wardwatch-ci/kafka:4.1.1"


def _say(config: pytest.Config, line: str) -> None:
    """One line on the terminal, even while pytest captures output: which broker the tests use."""
    reporter = config.pluginmanager.getplugin("terminalreporter")
    capture = config.pluginmanager.getplugin("capturemanager")
    if reporter is None:
        return
    with capture.global_and_fixture_disabled() if capture is not None else contextlib.nullcontext():
        reporter.write_line(line)


def _kafka_image() -> str:
    """apache/kafka if Docker has it or can pull it, else the locally built stand-in."""
    import docker

    client = docker.from_env(timeout=10)
    for name in (KAFKA_IMAGE, LOCAL_KAFKA_IMAGE):
        try:
            client.images.get(name)
            return name
        except docker.errors.ImageNotFound:
            pass
    try:
        client.images.pull(KAFKA_IMAGE)
        return KAFKA_IMAGE
    except docker.errors.APIError as exc:
        raise RuntimeError(f"{KAFKA_IMAGE} cannot be pulled ({exc.explanation or exc}) and {LOCAL_KAFKA_IMAGE} "
                           "is not built (make compose-ready)") from None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _docker_answers() -> bool:
    try:
        import docker

        client = docker.from_env(timeout=3)
        client.ping()
        return True
    except Exception:
        return False


@pytest.fixture(scope="session")
def kafka_cluster(tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config) -> Iterator[Cluster]:
    """A real Apache Kafka broker for this test session; secured unless one is configured.
    WARDWATCH_TEST_BROKER=docker skips the local launcher (to test the container path)."""
    from runtime.kafka.client import wait_for_broker

    configured = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if configured:
        try:
            wait_for_broker(configured, timeout_s=30)
        except TimeoutError as exc:
            pytest.fail(f"KAFKA_BOOTSTRAP_SERVERS={configured} does not answer: {exc}")
        _say(pytestconfig, f"kafka broker for the tests: KAFKA_BOOTSTRAP_SERVERS={configured}")
        yield Cluster(configured)
        return

    from wardwatch.broker import BrokerError, LocalBroker

    problems: list[str] = []
    broker = LocalBroker(port=_free_port(), home=tmp_path_factory.mktemp("kafka"))
    try:
        if os.environ.get("WARDWATCH_TEST_BROKER") == "docker":
            raise BrokerError("skipped (WARDWATCH_TEST_BROKER=docker)")
        bootstrap = broker.start()
    except BrokerError as exc:
        problems.append(f"local launcher: {exc}")
    else:
        _say(pytestconfig, f"kafka broker for the tests: the local launcher (Apache Kafka jars, TLS + SCRAM) at {bootstrap}")
        # The test process is `admin`: it creates topics and reads every output.
        admin_env = {k: v for k, v in broker.client_env("admin").items() if k.startswith("WARDWATCH_")}
        try:
            with _environ(admin_env):
                yield use_cluster(Cluster(bootstrap, broker))
        finally:
            use_cluster(None)
            broker.stop(purge=True)
        return

    if _docker_answers():
        try:
            # Ryuk, testcontainers' reaper, is one more image to pull; the fixture stops its own
            # container in `finally`, so it is not needed.
            os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")
            from testcontainers.core.container import DockerContainer

            image = _kafka_image()
            port = _free_port()
            container = (
                DockerContainer(image)
                .with_bind_ports(port, port)
                .with_env("KAFKA_NODE_ID", "1")
                .with_env("KAFKA_PROCESS_ROLES", "broker,controller")
                .with_env("KAFKA_LISTENERS", f"PLAINTEXT://0.0.0.0:{port},CONTROLLER://0.0.0.0:9093")
                .with_env("KAFKA_ADVERTISED_LISTENERS", f"PLAINTEXT://127.0.0.1:{port}")
                .with_env("KAFKA_LISTENER_SECURITY_PROTOCOL_MAP", "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT")
                .with_env("KAFKA_CONTROLLER_LISTENER_NAMES", "CONTROLLER")
                .with_env("KAFKA_CONTROLLER_QUORUM_VOTERS", "1@localhost:9093")
                .with_env("KAFKA_INTER_BROKER_LISTENER_NAME", "PLAINTEXT")
                .with_env("KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR", "1")
                .with_env("KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR", "1")
                .with_env("KAFKA_TRANSACTION_STATE_LOG_MIN_ISR", "1")
                .with_env("KAFKA_SHARE_COORDINATOR_STATE_TOPIC_REPLICATION_FACTOR", "1")
                .with_env("KAFKA_SHARE_COORDINATOR_STATE_TOPIC_MIN_ISR", "1")
                .with_env("KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS", "0")
                .with_env("KAFKA_AUTO_CREATE_TOPICS_ENABLE", "false")
                .with_env("KAFKA_HEAP_OPTS", "-Xmx512m -Xms256m")
                .with_env("CLUSTER_ID", "4L6g3nShT-eMCtK--X86sw")
            )
            container.start()
            bootstrap = f"127.0.0.1:{port}"
            try:
                with _environ({"WARDWATCH_SECURITY_PROTOCOL": "PLAINTEXT"}):
                    wait_for_broker(bootstrap, timeout_s=90)
                    _say(pytestconfig, f"kafka broker for the tests: the {image} container (plaintext) at {bootstrap}; "
                         f"the local launcher was not used: {problems[0]}")
                    yield Cluster(bootstrap)
            finally:
                container.stop()
            return
        except Exception as exc:  # report below, with the launcher's reason
            problems.append(f"testcontainers: {exc}")
    pytest.fail("no Kafka broker for the integration tests (install Java 17 + Maven, run Docker, "
                "or set KAFKA_BOOTSTRAP_SERVERS): " + "; ".join(problems))


@pytest.fixture(scope="session")
def kafka_bootstrap(kafka_cluster: Cluster) -> str:
    """Bootstrap address of a real Apache Kafka broker for this test session."""
    return kafka_cluster.bootstrap


@pytest.fixture(scope="session")
def secure_kafka(kafka_cluster: Cluster) -> Cluster:
    """The session broker, which must be the secured local one (TLS, SCRAM, ACLs)."""
    if kafka_cluster.broker is None or not kafka_cluster.broker.secure:
        pytest.fail("the security tests need the secured local broker (Java 17 + Maven); "
                    f"the session broker at {kafka_cluster.bootstrap} is not one")
    return kafka_cluster


@contextlib.contextmanager
def _environ(values: dict[str, str]) -> Iterator[None]:
    """Set environment variables for the session (spawned services inherit them), then restore."""
    from runtime.kafka import security

    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    security.install(None)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "both_clients: run once per Kafka client (kafka-python, confluent)")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if metafunc.definition.get_closest_marker("both_clients") and "kafka_client" in metafunc.fixturenames:
        metafunc.parametrize("kafka_client", CLIENTS, indirect=True)


@pytest.fixture(autouse=True)
def kafka_client(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The Kafka client this test's services (spawned with this environment) and helpers use."""
    name = getattr(request, "param", None) or os.environ.get(KAFKA_CLIENT_ENV) or DEFAULT_CLIENT
    monkeypatch.setenv(KAFKA_CLIENT_ENV, name)
    return name


@pytest.fixture
def topic_prefix() -> str:
    """A unique topic/group prefix: each test gets its own pipeline on the shared broker."""
    return f"t{uuid.uuid4().hex[:10]}."


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return tmp_path
