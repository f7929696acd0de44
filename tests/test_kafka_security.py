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
from pathlib import Path

import pytest
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient
from kafka import TopicPartition
from kafka.admin import ACLOperation, ACLResourcePatternType, ResourceType
from kafka.errors import TopicAuthorizationFailedError

from runtime.config import ConfigError, KafkaSecurityConfig, load
from runtime.kafka import clients, security
from runtime.topics import ALERTS, ALERTS_CONTROL, VITALS, VITALS_DLQ, VITALS_RAW
from tests.support.kafka import REPO, Cluster, create_topics
from wardwatch.broker import SERVICES, service_acls


# -- settings (no broker) --------------------------------------------------------------------------
def test_settings_give_the_standard_properties_and_their_kafka_python_names(tmp_path: Path) -> None:
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
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "ingest",
        "sasl.password": "s3cret",
    }
    assert "s3cret" not in repr(resolved)
    assert security.kafka_python(resolved.properties()) == {
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


def test_the_sim_cannot_write_alerts_or_read_vitals(secure_kafka: Cluster, topic_prefix: str) -> None:
    create_topics(secure_kafka.bootstrap, topic_prefix, partitions=1)
    secure_kafka.broker.grant(topic_prefix)
    sim = secure_kafka.broker.client_security("sim").properties()
    producer = clients.producer(secure_kafka.bootstrap, client_id="test-sim", security=sim, max_block_ms=15000)
    try:
        producer.send(topic_prefix + VITALS_RAW, key=b"P1", value=b"{}").get(timeout=30)  # its own topic: fine
        with pytest.raises(TopicAuthorizationFailedError):
            producer.send(topic_prefix + ALERTS, key=b"P1", value=b'{"status": "resolved"}').get(timeout=30)
    finally:
        producer.close()
    consumer = clients.consumer(secure_kafka.bootstrap, client_id="test-sim", group_id=None, security=sim)
    try:
        with pytest.raises(TopicAuthorizationFailedError):
            consumer.beginning_offsets([TopicPartition(topic_prefix + VITALS, 0)])
    finally:
        consumer.close()
    # Its metadata shows only its own topics.
    visible, _ = _metadata(secure_kafka, sim)
    assert {t for t in visible.topics if t.startswith(topic_prefix)} == {topic_prefix + VITALS_RAW, topic_prefix + "sim.events"}


def test_the_ward_view_cannot_write_vitals_raw(secure_kafka: Cluster, topic_prefix: str) -> None:
    create_topics(secure_kafka.bootstrap, topic_prefix, partitions=1)
    secure_kafka.broker.grant(topic_prefix)
    wardview = secure_kafka.broker.client_security("wardview").properties()
    producer = clients.producer(secure_kafka.bootstrap, client_id="test-wardview", security=wardview, max_block_ms=15000)
    try:
        producer.send(topic_prefix + ALERTS_CONTROL, key=b"P1", value=b"{}").get(timeout=30)  # acknowledgements: fine
        with pytest.raises(TopicAuthorizationFailedError):
            producer.send(topic_prefix + VITALS_RAW, key=b"P1", value=b'{"patient_id": "P1"}').get(timeout=30)
    finally:
        producer.close()
    for topic, allowed in ((VITALS, True), (VITALS_DLQ, False)):  # it reads what it shows, nothing else
        consumer = clients.consumer(secure_kafka.bootstrap, client_id="test-wardview", group_id=None, security=wardview)
        try:
            if allowed:
                assert consumer.beginning_offsets([TopicPartition(topic_prefix + topic, 0)])
            else:
                with pytest.raises(TopicAuthorizationFailedError):
                    consumer.beginning_offsets([TopicPartition(topic_prefix + topic, 0)])
        finally:
            consumer.close()


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
