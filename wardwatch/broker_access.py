"""Who may do what on the local broker: principals, their ACLs, passwords and certificates.

`SERVICE_GRANTS` is the one table of what each service principal may read and write; `service_acls`
turns it into Kafka ACL bindings and `grant_service_acls` creates them as `admin`.
`ensure_credentials` makes, once per broker directory, a CA and a broker certificate (keytool from
the JDK), a random password per principal and the client files in `secrets/`, all 0600.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

from kafka.admin import ACL, ACLOperation, ACLPermissionType, ACLResourcePatternType, KafkaAdminClient, ResourcePattern, ResourceType

from runtime.kafka.client.kafka_python import translate_properties
from runtime.kafka.security import KafkaSecurity
from runtime.topics import (
    ALERTS, ALERTS_CONTROL, ALERTS_STATE, INGEST_STATE, RISK, SCORER_STATE, SIM_EVENTS, VITALS, VITALS_DLQ, VITALS_RAW,
)

if TYPE_CHECKING:
    from wardwatch.broker import LocalBroker

ADMIN = "admin"
BROKER_USER = "broker"
MECHANISM = "SCRAM-SHA-512"


class BrokerError(RuntimeError):
    """The local broker could not be fetched, started or stopped; the message says why."""


# What each service principal may do; topic names are logical (the deployment prefix is added).
# `groups`: the consumer groups it joins (and commits offsets for inside its transactions);
# `transactional`: it writes through transactions under the id prefix `<prefix>wardwatch-<name>-`.
_R, _W = "read", "write"
SERVICE_GRANTS: dict[str, dict[str, object]] = {
    "sim": {"topics": {VITALS_RAW: {_W}, SIM_EVENTS: {_W}}},
    "gateway": {"topics": {VITALS_RAW: {_W}}},
    "ingest": {
        "topics": {VITALS_RAW: {_R}, VITALS: {_W}, VITALS_DLQ: {_W}, INGEST_STATE: {_R, _W}},
        "group": True, "transactional": True,
    },
    "score": {
        "topics": {VITALS: {_R}, RISK: {_W}, VITALS_DLQ: {_W}, SCORER_STATE: {_R, _W}},
        "group": True, "transactional": True,
    },
    "alerts": {
        "topics": {RISK: {_R}, ALERTS_CONTROL: {_R}, ALERTS: {_W}, VITALS_DLQ: {_W}, ALERTS_STATE: {_R, _W}},
        "group": True, "transactional": True,
    },
    "wardview": {"topics": {VITALS: {_R}, RISK: {_R}, ALERTS: {_R}, ALERTS_CONTROL: {_W}}},
}
SERVICES = tuple(SERVICE_GRANTS)

def service_acls(prefix: str = "") -> list[ACL]:
    """The ACL bindings of every service principal for topics named `prefix` + logical name.

    Topics and groups are LITERAL names (a PREFIXED `vitals` would also match `vitals.raw` and
    `vitals.dlq`); transactional ids are PREFIXED `<prefix>wardwatch-<service>-`, one per
    instance. CREATE is granted on exactly the topics a service creates at start-up.
    """
    acls: list[ACL] = []
    for name, grant in SERVICE_GRANTS.items():

        def allow(op: ACLOperation, kind: ResourceType, resource: str,
                  pattern: ACLResourcePatternType = ACLResourcePatternType.LITERAL, principal: str = f"User:{name}") -> None:
            acls.append(ACL(principal, "*", op, ACLPermissionType.ALLOW, ResourcePattern(kind, resource, pattern)))

        topics: dict[str, set[str]] = grant["topics"]  # type: ignore[assignment]
        for topic, modes in topics.items():
            allow(ACLOperation.CREATE, ResourceType.TOPIC, prefix + topic)
            if _R in modes:
                allow(ACLOperation.READ, ResourceType.TOPIC, prefix + topic)
            if _W in modes:
                allow(ACLOperation.WRITE, ResourceType.TOPIC, prefix + topic)
        if grant.get("group"):
            allow(ACLOperation.READ, ResourceType.GROUP, f"{prefix}wardwatch-{name}")
        if grant.get("transactional"):
            for op in (ACLOperation.WRITE, ACLOperation.DESCRIBE):
                allow(op, ResourceType.TRANSACTIONAL_ID, f"{prefix}wardwatch-{name}-", ACLResourcePatternType.PREFIXED)
    return acls


def grant_service_acls(bootstrap: str, admin_security: KafkaSecurity, prefix: str = "") -> int:
    """Create the service ACLs for `prefix` as the admin principal (idempotent); returns how many."""
    acls = service_acls(prefix)
    # ACLs are not part of the client interface (no service manages them): kafka-python's admin
    # client, with the same standard properties translated as every other client.
    client = KafkaAdminClient(bootstrap_servers=[s.strip() for s in bootstrap.split(",") if s.strip()],
                              client_id="wardwatch-acl-bootstrap", **translate_properties(admin_security.properties()))
    try:
        result = client.create_acls(acls)
    finally:
        client.close()
    failed = result.get("failed") or []
    if failed:
        acl, error = failed[0]
        raise BrokerError(f"creating {len(failed)} ACL(s) failed, first {acl}: {error}")
    return len(acls)


def write_secret(path: Path, text: str) -> None:
    """Write `text` to a file only its owner can read (0600, whatever the umask)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def ensure_credentials(broker: LocalBroker) -> None:
    """CA, broker certificate, a password per principal and the client files: made once."""
    d = broker.secrets_dir
    d.mkdir(mode=0o700, exist_ok=True)
    d.chmod(0o700)
    for principal in (BROKER_USER, ADMIN, *SERVICES, "keystore"):
        if not broker.password_file(principal).exists():
            write_secret(broker.password_file(principal), secrets.token_urlsafe(24))
    if not (d / "broker.p12").exists():
        make_certificates(broker)
    for principal in (ADMIN, *SERVICES):
        env = broker.client_env(principal)
        write_secret(broker.env_file(principal), "".join(f"{k}={v}\n" for k, v in env.items()))
        # For Kafka's own tools (kafka-acls, kafka-console-consumer --command-config ...).
        password = broker.password_file(principal).read_text().strip()
        write_secret(d / f"{principal}.properties", (
            "security.protocol=SASL_SSL\n"
            f"sasl.mechanism={MECHANISM}\n"
            "sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required "
            f'username="{principal}" password="{password}";\n'
            "ssl.truststore.type=PEM\n"
            f"ssl.truststore.location={broker.ca_file}\n"
        ))

def make_certificates(broker: LocalBroker) -> None:
    if shutil.which("keytool") is None:
        raise BrokerError("keytool (from the JDK) is not on PATH: install Java 17+ (openjdk-17-jre-headless)")
    d = broker.secrets_dir
    pw = ["-storepass:file", str(broker.password_file("keystore"))]
    staging = d / "broker.tmp.p12"
    for path in (d / "ca.p12", staging, d / "broker.csr", d / "broker.pem", broker.ca_file):
        path.unlink(missing_ok=True)
    san = "SAN=ip:127.0.0.1,dns:localhost"
    steps = [
        ["-genkeypair", "-keystore", str(d / "ca.p12"), "-storetype", "PKCS12", *pw, "-alias", "ca",
         "-dname", "CN=wardwatch-local-ca", "-keyalg", "RSA", "-keysize", "2048", "-validity", "825",
         "-ext", "bc:c=ca:true", "-ext", "ku:c=keyCertSign,cRLSign"],
        ["-exportcert", "-keystore", str(d / "ca.p12"), *pw, "-alias", "ca", "-rfc", "-file", str(broker.ca_file)],
        ["-genkeypair", "-keystore", str(staging), "-storetype", "PKCS12", *pw, "-alias", BROKER_USER,
         "-dname", f"CN={BROKER_USER}", "-keyalg", "RSA", "-keysize", "2048", "-validity", "825"],
        ["-certreq", "-keystore", str(staging), *pw, "-alias", BROKER_USER, "-file", str(d / "broker.csr")],
        ["-gencert", "-keystore", str(d / "ca.p12"), *pw, "-alias", "ca", "-infile", str(d / "broker.csr"),
         "-outfile", str(d / "broker.pem"), "-rfc", "-validity", "825", "-ext", san,
         "-ext", "ku:c=digitalSignature,keyEncipherment", "-ext", "eku=serverAuth,clientAuth"],
        ["-importcert", "-keystore", str(staging), *pw, "-alias", "ca", "-file", str(broker.ca_file), "-noprompt"],
        ["-importcert", "-keystore", str(staging), *pw, "-alias", BROKER_USER, "-file", str(d / "broker.pem"), "-noprompt"],
    ]
    old_umask = os.umask(0o077)
    try:
        for step in steps:
            result = subprocess.run(["keytool", *step], capture_output=True, text=True)
            if result.returncode != 0:
                raise BrokerError(f"keytool {step[0]} failed: {(result.stdout + result.stderr).strip()[-300:]}")
    finally:
        os.umask(old_umask)
    (d / "broker.csr").unlink(missing_ok=True)
    staging.rename(d / "broker.p12")
