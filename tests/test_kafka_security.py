"""Kafka security: TLS, SCRAM logins and per-service ACLs, on the secured local broker.

Pure parts (settings, the ACL table) run without a broker; the rest asks the real broker and
asserts the error each refused client gets.
"""

from __future__ import annotations

import socket
import ssl
import stat
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient
from kafka.admin import ACLOperation, ACLResourcePatternType, ResourceType

from runtime.config import ConfigError, KafkaSecurityConfig, load
from runtime.kafka import security
from runtime.kafka.client import BEGINNING, KafkaClient, KafkaClientError, TopicPartition, confluent, connect, kafka_python
from runtime.topics import ALERTS, ALERTS_CONTROL, VITALS, VITALS_DLQ, VITALS_RAW
from tests.support.kafka import REPO, Cluster, create_topics
from wardwatch.broker import SERVICES, service_acls


# -- settings (no broker) --------------------------------------------------------------------------
def test_settings_give_the_standard_properties_and_each_clients_names(tmp_path: Path) -> None:
    secret = tmp_path / "ingest.password"
    secret.write_text("s3cret\n")
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    environ = {"WARDWATCH_SASL_USERNAME": "ingest", "WARDWATCH_KAFKA_PASSWORD_FILE": str(secret),
               "WARDWATCH_SSL_CA_LOCATION": str(ca)}
    resolved = security.from_environ(environ)
    assert resolved.properties() == {
        "security.protocol": "SASL_SSL",  # secure by default
        "ssl.ca.location": str(ca),
        "ssl.endpoint.identification.algorithm": "https",  # the broker's name must match its certificate
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "ingest",
        "sasl.password": "s3cret",
    }
    assert "s3cret" not in repr(resolved)
    assert confluent.translate_properties(resolved.properties()) == resolved.properties()
    assert kafka_python.translate_properties(resolved.properties()) == {
        "security_protocol": "SASL_SSL",
        "ssl_cafile": str(ca),
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "ingest",
        "sasl_plain_password": "s3cret",
        "ssl_check_hostname": True,
    }
    # The password may also come from the environment; the file wins when both are set.
    assert security.from_environ({"WARDWATCH_SASL_USERNAME": "sim", "WARDWATCH_KAFKA_PASSWORD": "p"}).sasl_password == "p"
    assert security.from_environ({**environ, "WARDWATCH_KAFKA_PASSWORD": "other"}).sasl_password == "s3cret"
    assert security.from_environ({"WARDWATCH_SECURITY_PROTOCOL": "PLAINTEXT"}).properties() == {"security.protocol": "PLAINTEXT"}


@pytest.mark.parametrize(("environ", "message"), [
    ({}, "--sasl-username / WARDWATCH_SASL_USERNAME is required"),
    ({"WARDWATCH_SASL_USERNAME": "sim"}, "no Kafka password for user 'sim'"),
    ({"WARDWATCH_KAFKA_PASSWORD_FILE": "/nonexistent/pw"}, "--kafka-password-file='/nonexistent/pw': cannot read it"),
    ({"WARDWATCH_SSL_CA_LOCATION": "/nonexistent/ca.pem"}, "--ssl-ca-location='/nonexistent/ca.pem': no such file"),
    ({"WARDWATCH_SECURITY_PROTOCOL": "TLS"}, "WARDWATCH_SECURITY_PROTOCOL='TLS': expected one of"),
])
def test_missing_or_bad_security_settings_are_one_line_config_errors(environ: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as error:
        security.from_environ(environ).properties()
    assert message in str(error.value)
    assert "\n" not in str(error.value)


def test_a_service_refuses_to_start_without_credentials_and_takes_no_password_flag(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO), "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1"}
    run = subprocess.run([sys.executable, "-m", "wardwatch", "ingest", "--metrics-port", "-1"],
                         capture_output=True, text=True, env=env, cwd=REPO, timeout=120)
    assert run.returncode == 2
    assert run.stderr.strip().splitlines()[-1].startswith("wardwatch ingest: configuration error: --sasl-username")
    flag = subprocess.run([sys.executable, "-m", "wardwatch", "ingest", "--sasl-password", "x"],
                          capture_output=True, text=True, env=env, cwd=REPO, timeout=120)
    assert flag.returncode == 2 and "unrecognized arguments: --sasl-password" in flag.stderr
    assert "kafka_password" not in {f for f in KafkaSecurityConfig.__dataclass_fields__}
    assert load(KafkaSecurityConfig, None, {}).security_protocol == "SASL_SSL"


def test_each_service_gets_only_its_own_topics_group_and_transactional_ids() -> None:
    acls = service_acls("p.")
    grants = {(a.principal, a.operation, a.resource_pattern.resource_type, a.resource_pattern.resource_name,
               a.resource_pattern.pattern_type) for a in acls}
    topic = ResourceType.TOPIC
    lit = ACLResourcePatternType.LITERAL

    def ops(principal: str, name: str) -> set[ACLOperation]:
        return {op for p, op, kind, res, _ in grants if p == f"User:{principal}" and kind == topic and res == name}

    assert {a.principal for a in acls} == {f"User:{s}" for s in SERVICES}
    assert ops("sim", "p." + VITALS_RAW) == {ACLOperation.WRITE, ACLOperation.CREATE}
    assert ops("sim", "p." + ALERTS) == set() and ops("sim", "p." + VITALS) == set()
    assert ops("wardview", "p." + VITALS_RAW) == set()
    assert ops("wardview", "p." + ALERTS_CONTROL) == {ACLOperation.WRITE, ACLOperation.CREATE}
    assert ACLOperation.WRITE not in ops("wardview", "p." + ALERTS)
    assert ops("ingest", "p." + VITALS_DLQ) == {ACLOperation.WRITE, ACLOperation.CREATE}
    # Topics and groups by exact name: a prefixed `vitals` would also cover vitals.raw and vitals.dlq.
    assert all(pattern == lit for _, _, kind, _, pattern in grants if kind in (topic, ResourceType.GROUP))
    assert ("User:ingest", ACLOperation.READ, ResourceType.GROUP, "p.wardwatch-ingest", lit) in grants
    assert ("User:score", ACLOperation.WRITE, ResourceType.TRANSACTIONAL_ID, "p.wardwatch-score-",
            ACLResourcePatternType.PREFIXED) in grants
    assert not [g for g in grants if g[0] in ("User:sim", "User:gateway", "User:wardview") and g[2] != topic]
    assert not [a for a in acls if a.resource_pattern.resource_type == ResourceType.CLUSTER or a.host != "*"]


# -- on the secured broker -------------------------------------------------------------------------
def _metadata(cluster: Cluster, properties: dict[str, str]) -> tuple[object, list[KafkaError]]:
    """List topics with confluent-kafka (standard property names, as given); the result or the
    exception, and the errors the client reported on the way."""
    errors: list[KafkaError] = []
    client = AdminClient({"bootstrap.servers": cluster.bootstrap, **properties, "error_cb": errors.append, "log_level": 0})
    try:
        result: object = client.list_topics(timeout=8)
    except KafkaException as exc:
        result = exc
    client.poll(1.0)  # delivers the error callbacks
    return result, errors


def _kafka_request(api_key: int, version: int, body: bytes = b"") -> bytes:
    header = struct.pack(">hhih", api_key, version, 7, len(b"probe")) + b"probe"
    return struct.pack(">i", len(header) + len(body)) + header + body


def _answer(sock: socket.socket) -> bytes:
    """What the broker sends back before it closes (b'' when it closes without a word)."""
    sock.settimeout(15)
    try:
        return sock.recv(65536)
    except (ConnectionResetError, ssl.SSLError):
        return b""


def test_unauthenticated_wrong_password_and_plaintext_clients_are_refused(secure_kafka: Cluster) -> None:
    broker = secure_kafka.broker
    sim = broker.client_security("sim").properties()
    host, port = "127.0.0.1", int(secure_kafka.bootstrap.rsplit(":", 1)[1])

    # Control: the right user, password and CA get the metadata.
    ok, _ = _metadata(secure_kafka, sim)
    assert not isinstance(ok, Exception)

    # Wrong password: the broker answers with an authentication failure.
    refused, errors = _metadata(secure_kafka, {**sim, "sasl.password": "not-the-password"})
    assert isinstance(refused, KafkaException)
    assert any(e.code() == KafkaError._AUTHENTICATION and "invalid credentials" in e.str() for e in errors), errors

    # Unknown user.
    refused, errors = _metadata(secure_kafka, {**sim, "sasl.username": "mallory"})
    assert isinstance(refused, KafkaException)
    assert any(e.code() == KafkaError._AUTHENTICATION for e in errors), errors

    # No authentication (TLS only): the client gets nothing.
    refused, _ = _metadata(secure_kafka, {"security.protocol": "SSL", "ssl.ca.location": sim["ssl.ca.location"]})
    assert isinstance(refused, KafkaException) and refused.args[0].code() == KafkaError._TRANSPORT
    # ... and on the wire: over TLS an API-versions request is answered (the listener works), a
    # metadata request without a SASL login first is not: the broker closes the connection.
    context = ssl.create_default_context(cafile=sim["ssl.ca.location"])
    with context.wrap_socket(socket.create_connection((host, port), timeout=15), server_hostname=host) as tls:
        tls.sendall(_kafka_request(18, 0))
        answer = _answer(tls)
        assert len(answer) >= 8 and struct.unpack(">i", answer[4:8])[0] == 7
    with context.wrap_socket(socket.create_connection((host, port), timeout=15), server_hostname=host) as tls:
        tls.sendall(_kafka_request(3, 4, struct.pack(">ib", -1, 0)))
        assert _answer(tls) == b""

    # No TLS, right password: refused, and the password never crosses the wire in clear.
    refused, _ = _metadata(secure_kafka, {**sim, "security.protocol": "SASL_PLAINTEXT"})
    assert isinstance(refused, KafkaException) and refused.args[0].code() == KafkaError._TRANSPORT
    refused, _ = _metadata(secure_kafka, {"security.protocol": "PLAINTEXT"})
    assert isinstance(refused, KafkaException) and refused.args[0].code() == KafkaError._TRANSPORT
    with socket.create_connection((host, port), timeout=15) as plain:
        plain.sendall(_kafka_request(18, 0))
        answer = _answer(plain)
        # Never a Kafka answer: at most a TLS alert record (content type 21) before the close.
        assert answer == b"" or answer[0] == 0x15, answer[:16]

    # A certificate from elsewhere: the client refuses the broker (no CA of ours, no trust).
    refused, errors = _metadata(secure_kafka, {**sim, "ssl.ca.location": "/etc/ssl/certs/ca-certificates.crt"})
    assert isinstance(refused, KafkaException)
    assert any(e.code() == KafkaError._SSL and "certificate verify failed" in e.str() for e in errors), errors


def _refused(error: pytest.ExceptionInfo[KafkaClientError]) -> bool:
    """The broker's answer was a topic authorization failure (either client's spelling)."""
    text = str(error.value).replace("_", "").lower()
    return "topicauthorizationfailed" in text


def _cannot_read(kafka: KafkaClient, topic: str) -> None:
    """`kafka`'s principal gets neither the offsets nor a record of `topic`, which exists and
    holds a record (the control: `admin`, this process, reads it)."""
    tp = TopicPartition(topic, 0)
    admin = connect(kafka.bootstrap)
    producer = admin.producer(client_id="test-admin")
    try:
        producer.send_acked(topic, b"{}", key=b"P1").wait(30)
    finally:
        producer.close(timeout_s=10)
    control = admin.consumer(client_id="test-admin", group_id=None)
    try:
        assert control.end_offsets([tp])[tp] >= 1
    finally:
        control.close()
    consumer = kafka.consumer(client_id="test-denied", group_id=None)
    try:
        with pytest.raises(KafkaClientError) as denied:
            consumer.end_offsets([tp])
        # kafka-python names the refusal; librdkafka, to which the broker's metadata does not
        # show the topic at all (no Describe), finds no such partition.
        assert _refused(denied) or "unknownpartition" in str(denied.value).replace("_", "").lower(), denied.value
        got: list[object] = []
        consumer.assign({tp: BEGINNING})
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not got:
            try:
                got += consumer.poll(0.5, 100)
            except KafkaClientError as exc:
                assert "authorization" in str(exc).lower(), exc
                break
        assert got == []
    finally:
        consumer.close()


@pytest.mark.both_clients
def test_the_sim_cannot_write_alerts_or_read_vitals(secure_kafka: Cluster, topic_prefix: str, kafka_client: str) -> None:
    create_topics(secure_kafka.bootstrap, topic_prefix, partitions=1)
    secure_kafka.broker.grant(topic_prefix)
    sim = connect(secure_kafka.bootstrap, kafka_client, secure_kafka.broker.client_security("sim").properties())
    producer = sim.producer(client_id="test-sim", request_timeout_ms=15_000)
    try:
        producer.send_acked(topic_prefix + VITALS_RAW, b"{}", key=b"P1").wait(30)  # its own topic: fine
        with pytest.raises(KafkaClientError) as denied:
            producer.send_acked(topic_prefix + ALERTS, b'{"status": "resolved"}', key=b"P1").wait(30)
        assert _refused(denied), denied.value
    finally:
        producer.close(timeout_s=10)
    _cannot_read(sim, topic_prefix + VITALS)
    # Its metadata shows only its own topics.
    visible, _ = _metadata(secure_kafka, secure_kafka.broker.client_security("sim").properties())
    assert {t for t in visible.topics if t.startswith(topic_prefix)} == {topic_prefix + VITALS_RAW, topic_prefix + "sim.events"}


@pytest.mark.both_clients
def test_the_ward_view_cannot_write_vitals_raw(secure_kafka: Cluster, topic_prefix: str, kafka_client: str) -> None:
    create_topics(secure_kafka.bootstrap, topic_prefix, partitions=1)
    secure_kafka.broker.grant(topic_prefix)
    wardview = connect(secure_kafka.bootstrap, kafka_client, secure_kafka.broker.client_security("wardview").properties())
    producer = wardview.producer(client_id="test-wardview", request_timeout_ms=15_000)
    try:
        producer.send_acked(topic_prefix + ALERTS_CONTROL, b"{}", key=b"P1").wait(30)  # acknowledgements: fine
        with pytest.raises(KafkaClientError) as denied:
            producer.send_acked(topic_prefix + VITALS_RAW, b'{"patient_id": "P1"}', key=b"P1").wait(30)
        assert _refused(denied), denied.value
    finally:
        producer.close(timeout_s=10)
    # It reads what it shows, nothing else.
    consumer = wardview.consumer(client_id="test-wardview", group_id=None)
    try:
        assert consumer.end_offsets([TopicPartition(topic_prefix + VITALS, 0)]) == {TopicPartition(topic_prefix + VITALS, 0): 0}
    finally:
        consumer.close()
    _cannot_read(wardview, topic_prefix + VITALS_DLQ)


def test_every_client_gets_the_process_settings_by_default(secure_kafka: Cluster, kafka_client: str) -> None:
    """`connect` without properties: the process's installed (or environment's) settings, here
    the test process's `admin`; an explicit `{}` is a plaintext client the TLS listener refuses."""
    from runtime.kafka.client import wait_for_broker

    wait_for_broker(connect(secure_kafka.bootstrap), timeout_s=30)
    security.install(security.KafkaSecurity(security_protocol="PLAINTEXT"))
    try:
        with pytest.raises(TimeoutError):
            wait_for_broker(connect(secure_kafka.bootstrap), timeout_s=3)
    finally:
        security.install(None)


def test_credentials_are_owner_only_files_and_never_on_a_command_line(secure_kafka: Cluster) -> None:
    broker = secure_kafka.broker
    files = [*broker.secrets_dir.iterdir(), broker.dir / "server.properties"]
    assert len(files) > 2 * len(SERVICES)
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert stat.S_IMODE(broker.secrets_dir.stat().st_mode) == 0o700
    passwords = [broker.password_file(p).read_text().strip() for p in ("admin", "broker", "keystore", *SERVICES)]
    cmdline = Path(f"/proc/{broker.pid()}/cmdline").read_bytes().decode(errors="replace")
    assert "kafka.Kafka" in cmdline
    assert not [p for p in passwords if p in cmdline]
    assert not (broker.dir / "format.args").exists()  # the SCRAM bootstrap file is gone
    # The env files name the password file; they hold no password themselves.
    env = broker.env_file("ingest").read_text()
    assert "WARDWATCH_KAFKA_PASSWORD_FILE=" in env and broker.password_file("ingest").read_text().strip() not in env


# -- the docker-compose model (deploy/kafka/secure-kafka.sh) ---------------------------------------
SCRIPT = REPO / "deploy" / "kafka" / "secure-kafka.sh"


def _script_acls(prefix: str = "") -> set[tuple[str, ACLOperation, ResourceType, str, ACLResourcePatternType]]:
    text = SCRIPT.read_text()
    table = text[text.index("# ACL TABLE BEGIN"):text.index("# ACL TABLE END")].split("'")[1]
    kinds = {"topic": ResourceType.TOPIC, "group": ResourceType.GROUP, "txn": ResourceType.TRANSACTIONAL_ID}
    out = set()
    for line in table.strip().splitlines():
        principal, pattern, kind, operations, *names = line.split()
        for op in operations.split(","):
            for name in names:
                out.add((f"User:{principal}", ACLOperation[op.upper()], kinds[kind], prefix + name,
                         ACLResourcePatternType[pattern.upper()]))
    return out


def test_the_compose_acl_table_is_the_launchers() -> None:
    launcher = {(a.principal, a.operation, a.resource_pattern.resource_type, a.resource_pattern.resource_name,
                 a.resource_pattern.pattern_type) for a in service_acls("")}
    assert _script_acls() == launcher


def test_every_compose_service_runs_as_its_own_kafka_user_and_sees_only_its_secrets() -> None:
    import yaml

    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    services = compose["services"]
    kafka_env = services["kafka"]["environment"]
    assert "PLAINTEXT" not in kafka_env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"]
    for name in SERVICES:
        service = services[name]
        env = service["environment"]
        assert env["WARDWATCH_SASL_USERNAME"] == name and env["WARDWATCH_SECURITY_PROTOCOL"] == "SASL_SSL"
        assert not [k for k in env if "PASSWORD" in k and not k.endswith("_FILE")]
        # Exactly one secrets volume, its own, read-only (a named volume per principal: Engine 20.10+).
        mounts = [m.split(":") for m in service["volumes"] if m.startswith("kafka-secrets")]
        assert mounts == [[f"kafka-secrets-{name}", "/run/wardwatch/kafka", "ro"]]
        assert env["WARDWATCH_KAFKA_PASSWORD_FILE"].startswith("/run/wardwatch/kafka/")
        assert service["depends_on"]["kafka-acls"]["condition"] == "service_completed_successfully"
    assert not any("subpath" in str(m) for s in services.values() for m in s.get("volumes", []))
    # The setup container writes every principal's volume; only it sees the CA key.
    holders = {n for n, s in services.items() for m in s.get("volumes", []) if str(m).startswith("kafka-secrets-ca:")}
    assert holders == {"kafka-setup"}
    # Nothing is published on every host interface.
    published = {name: port for name, s in services.items() for port in s.get("ports", [])}
    assert {name for name, port in published.items() if not str(port).startswith("127.0.0.1:")} == set()


def test_the_compose_setup_and_broker_start_with_real_kafka(tmp_path: Path) -> None:
    """setup + start of deploy/kafka/secure-kafka.sh, run here on the Maven-resolved jars with
    loopback listeners: the SCRAM users exist, TLS works on both listeners, and a service user
    without ACLs sees nothing."""
    import os
    import signal

    from wardwatch.broker import fetch_jars

    libs = fetch_jars(quiet=True)
    ports = []
    for _ in range(3):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            ports.append(s.getsockname()[1])
    internal, external, controller = ports
    secrets = tmp_path / "secrets"
    env = {
        "PATH": os.environ["PATH"], "SECRETS": str(secrets), "KAFKA_LIBS": str(libs), "KAFKA_HOME": str(tmp_path / "none"),
        "KAFKA_USER": str(os.getuid()), "WARDWATCH_UID": str(os.getuid()), "CLUSTER_ID": "4L6g3nShT-eMCtK--X86sw",
        "KAFKA_NODE_ID": "1", "KAFKA_PROCESS_ROLES": "broker,controller",
        "KAFKA_LISTENERS": f"INTERNAL://127.0.0.1:{internal},EXTERNAL://127.0.0.1:{external},CONTROLLER://127.0.0.1:{controller}",
        "KAFKA_ADVERTISED_LISTENERS": f"INTERNAL://127.0.0.1:{internal},EXTERNAL://localhost:{external}",
        "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP": "INTERNAL:SASL_SSL,EXTERNAL:SASL_SSL,CONTROLLER:SSL",
        "KAFKA_INTER_BROKER_LISTENER_NAME": "INTERNAL", "KAFKA_CONTROLLER_LISTENER_NAMES": "CONTROLLER",
        "KAFKA_CONTROLLER_QUORUM_VOTERS": f"1@127.0.0.1:{controller}", "KAFKA_LOG_DIRS": str(tmp_path / "data"),
        "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR": "1", "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR": "1",
        "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR": "1", "KAFKA_HEAP_OPTS": "-Xmx256m",
    }
    setup = subprocess.run(["sh", str(SCRIPT), "setup"], env=env, capture_output=True, text=True, timeout=300)
    assert setup.returncode == 0, setup.stdout + setup.stderr
    assert not list(tmp_path.glob("**/format.args"))
    for path in secrets.rglob("*"):
        assert stat.S_IMODE(path.stat().st_mode) == (0o700 if path.is_dir() else 0o600), path
    broker = subprocess.Popen(["sh", str(SCRIPT), "start"], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        def props(user: str, port: int, host: str = "127.0.0.1", password: str | None = None) -> dict[str, str]:
            secret = (secrets / user / "password").read_text().strip() if password is None else password
            return {"security.protocol": "SASL_SSL", "ssl.ca.location": str(secrets / user / "ca.pem"),
                    "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": user, "sasl.password": secret}

        cluster = Cluster(f"127.0.0.1:{internal}")
        deadline = time.monotonic() + 120
        while True:
            result, _ = _metadata(cluster, props("admin", internal))
            if not isinstance(result, Exception) or time.monotonic() > deadline:
                break
            assert broker.poll() is None, "the broker exited during start-up"
            time.sleep(1)
        assert not isinstance(result, Exception), result
        # The host's listener, by the name its certificate carries.
        host_result, _ = _metadata(Cluster(f"localhost:{external}"), props("admin", external))
        assert not isinstance(host_result, Exception), host_result
        refused, errors = _metadata(cluster, props("sim", internal, password="wrong"))
        assert isinstance(refused, KafkaException)
        assert any(e.code() == KafkaError._AUTHENTICATION for e in errors), errors
        admin = AdminClient({"bootstrap.servers": cluster.bootstrap, **props("admin", internal)})
        from confluent_kafka.admin import NewTopic

        admin.create_topics([NewTopic("vitals", 1, 1)])["vitals"].result(30)
        sim_view, _ = _metadata(cluster, props("sim", internal))
        assert not isinstance(sim_view, Exception) and "vitals" not in sim_view.topics  # no ACL, no topic
    finally:
        os.killpg(broker.pid, signal.SIGTERM)
        try:
            broker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(broker.pid, signal.SIGKILL)
            broker.wait()


def test_the_plaintext_switch_is_explicit_and_loud(tmp_path: Path) -> None:
    import os

    from wardwatch.broker import fetch_jars, jars_dir

    fetch_jars(quiet=True)
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / jars_dir().parent.name).symlink_to(jars_dir().parent)  # the jars, not a second download
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "PYTHONPATH": str(REPO), "WARDWATCH_CACHE_DIR": str(cache)}
    command = [sys.executable, "-m", "wardwatch", "broker"]
    started = subprocess.run([*command, "start", "--insecure-plaintext", "--port", str(port)],
                             capture_output=True, text=True, env=env, cwd=REPO, timeout=300)
    try:
        assert started.returncode == 0, started.stderr
        assert "WARNING: INSECURE PLAINTEXT Kafka broker" in started.stderr
        assert "WARDWATCH_SECURITY_PROTOCOL=PLAINTEXT" in started.stdout
        assert started.stdout.strip().splitlines()[-1] == f"127.0.0.1:{port}"
        assert not (cache / f"broker-{port}" / "secrets").exists()
        plain, _ = _metadata(Cluster(f"127.0.0.1:{port}"), {"security.protocol": "PLAINTEXT"})
        assert not isinstance(plain, Exception), plain
    finally:
        subprocess.run([*command, "stop", "--port", str(port)], env=env, cwd=REPO, timeout=120, capture_output=True)
