"""The HTTP gateway over real HTTP, in front of a real broker: named tokens and their rotation,
rate limits, read timeouts against slow clients (real sockets), HTTPS, per-item answers, and
exactly the accepted items on `vitals.raw`, each naming its client."""

from __future__ import annotations

import http.client
import json
import os
import selectors
import socket
import ssl
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from prometheus_client.parser import text_string_to_metric_families

from runtime.records import to_json
from runtime.topics import VITALS_RAW
from tests.support.https import client_context, self_signed
from tests.support.kafka import REPO, Service, create_topics, read_committed, spawn, wait_until

pytestmark = pytest.mark.kafka

TOKEN = "test-token-" + "x" * 24
CLOUD_A = "cloud-a-token-" + "a" * 24
CLOUD_B = "cloud-b-token-" + "b" * 24
BURST = "burst-token-" + "z" * 24
READ_TIMEOUT_S = 2.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[str, str]
    body: Any


@dataclass
class Running:
    service: Service
    port: int
    metrics_port: int
    topic: str
    tls: ssl.SSLContext | None = None

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None) -> Reply:
        conn = (http.client.HTTPSConnection("localhost", self.port, timeout=30, context=self.tls) if self.tls
                else http.client.HTTPConnection("127.0.0.1", self.port, timeout=30))
        try:
            conn.request(method, path, body=body, headers=headers or {})
            response = conn.getresponse()
            raw = response.read()
            return Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, json.loads(raw) if raw else None)
        finally:
            conn.close()

    def post(self, obj: Any, token: str | None = TOKEN, content_type: str = "application/json", raw: bytes | None = None) -> Reply:
        headers = {"Content-Type": content_type}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return self.request("POST", "/v1/readings", raw if raw is not None else to_json(obj), headers)


def start_gateway(name: str, bootstrap: str, prefix: str, workdir: Path, *extra: str, tls: ssl.SSLContext | None = None) -> Running:
    port, metrics_port = free_port(), free_port()
    service = spawn(name, ["gateway", "--bootstrap-servers", bootstrap, "--topic-prefix", prefix, "--host", "127.0.0.1",
                           "--port", str(port), "--metrics-port", str(metrics_port), "--metrics-host", "127.0.0.1", *extra],
                    workdir, env={"WARDWATCH_TOKEN": TOKEN})
    return Running(service, port, metrics_port, prefix + VITALS_RAW, tls)


def write_tokens(path: Path, entries: dict[str, str]) -> None:
    """Replace the token file in one step (as an operator's `mv` does), so no reader sees half of it."""
    staged = path.with_suffix(".new")
    staged.write_text("# name:token\n" + "".join(f"{name}:{token}\n" for name, token in entries.items()))
    os.replace(staged, path)


def answering(gateway: Running, want: int | None = None) -> bool:
    assert gateway.service.alive(), gateway.service.log()
    try:
        status = gateway.request("GET", "/healthz").status
    except OSError:
        return False
    return want is None or status == want


@pytest.fixture(scope="module")
def gateway(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    prefix = f"t{uuid.uuid4().hex[:10]}."
    create_topics(kafka_bootstrap, prefix)
    workdir = tmp_path_factory.mktemp("gateway")
    write_tokens(workdir / "tokens", {"cloud-a": CLOUD_A, "cloud-b": CLOUD_B})
    running = start_gateway("gateway", kafka_bootstrap, prefix, workdir, "--max-request-bytes", "65536",
                            "--tokens-file", str(workdir / "tokens"), "--read-timeout-s", str(READ_TIMEOUT_S))
    running.tokens_file = workdir / "tokens"  # type: ignore[attr-defined]
    try:
        wait_until(lambda: answering(running, 200), timeout_s=60, message="the gateway to connect to Kafka")
        yield running
    finally:
        assert running.service.stop() == 0, running.service.log()


@pytest.fixture(scope="module")
def unreachable(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    """A gateway whose Kafka is a closed port, serving HTTPS, with a tight rate limit."""
    workdir = tmp_path_factory.mktemp("gateway-no-kafka")
    cert, key = self_signed(workdir)
    write_tokens(workdir / "tokens", {"burst": BURST})
    running = start_gateway("gateway-no-kafka", "127.0.0.1:1", "nokafka.", workdir, "--tls-certfile", str(cert), "--tls-keyfile", str(key),
                            "--tokens-file", str(workdir / "tokens"),
                            "--rate-limit", "0.2", "--rate-burst", "3", tls=client_context(cert))
    try:
        wait_until(lambda: answering(running), timeout_s=30, message="the gateway to answer HTTP")
        yield running
    finally:
        running.service.stop()


def reading(patient: str, seq: int, **vitals: Any) -> dict[str, Any]:
    return {"patient_id": patient, "device_id": f"D-{patient}", "seq": seq, "ts_ms": int(time.time() * 1000), **vitals}


def observation(patient: str, loinc: str, value: float, unit: str, code: str) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": f"{patient}-{loinc}",
        "status": "final",
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "vital-signs"}]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": loinc}]},
        "subject": {"reference": f"Patient/{patient}"},
        "device": {"reference": f"Device/D-{patient}"},
        "effectiveDateTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "valueQuantity": {"value": value, "unit": unit, "system": "http://unitsofmeasure.org", "code": code},
    }


def landed(bootstrap: str, topic: str, expect: int) -> list[Any]:
    return read_committed(bootstrap, topic, expect=expect, timeout_s=20, quiet_s=2)


# -- authentication and limits -------------------------------------------------------------------
def test_a_request_without_the_token_is_refused_with_401(gateway: Running) -> None:
    reply = gateway.post(reading("P-auth", 1, hr=80), token=None)
    assert reply.status == 401
    assert reply.headers["www-authenticate"].startswith("Bearer")
    assert reply.body["reason"] == "unauthorized"


def test_a_request_with_a_wrong_token_is_refused_with_401(gateway: Running) -> None:
    reply = gateway.post(reading("P-auth", 2, hr=80), token=TOKEN[:-1] + "y")
    assert reply.status == 401
    assert 'error="invalid_token"' in reply.headers["www-authenticate"]


def test_an_oversized_request_is_refused_before_its_body_is_read(gateway: Running) -> None:
    # Declared 1 GB, nothing sent: an answer proves the gateway did not wait for the body.
    reply = gateway.request("POST", "/v1/readings", None, {
        "Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}", "Content-Length": str(10**9)})
    assert reply.status == 413
    assert reply.body["reason"] == "too_large"


def test_a_body_that_is_not_json_is_a_400_with_the_reason(gateway: Running) -> None:
    reply = gateway.post(None, raw=b'{"patient_id": "P1", "seq": ')
    assert reply.status == 400
    assert reply.body["reason"] == "undecodable"


def test_an_unknown_path_is_404_and_a_wrong_method_405(gateway: Running) -> None:
    assert gateway.request("GET", "/v1/nothing").status == 404
    assert gateway.request("POST", "/v2/readings", b"{}", {"Content-Type": "application/json"}).status == 404
    wrong = gateway.request("GET", "/v1/readings")
    assert wrong.status == 405 and wrong.body["reason"] == "method_not_allowed" and "POST" in wrong.headers["allow"]


# -- per-item answers and what lands on vitals.raw ----------------------------------------------
def test_a_partial_batch_answers_per_item_and_only_the_accepted_items_land(kafka_bootstrap: str, gateway: Running) -> None:
    batch = [
        reading("P-batch-1", 1, hr=72, spo2=97),
        reading("P-batch-2", 1, hr=900),  # out of physiological range
        reading("P-batch-3", 1, rr=16, temp=36.8),
        {**reading("P-batch-4", 1), "sp02": 97},  # misspelt vital
        reading("P-batch-5", 1, sbp=120, dbp=80),
    ]
    reply = gateway.post(batch)
    assert reply.status == 207, reply.body
    assert (reply.body["accepted"], reply.body["rejected"]) == (3, 2)
    assert [item["status"] for item in reply.body["items"]] == ["accepted", "rejected", "accepted", "rejected", "accepted"]
    assert [item["index"] for item in reply.body["items"]] == [0, 1, 2, 3, 4]
    assert reply.body["items"][1]["reason"] == "out_of_range"
    assert reply.body["items"][3]["reason"] == "unknown_field"
    assert all(item["detail"] for item in reply.body["items"] if item["status"] == "rejected")

    records = [r for r in landed(kafka_bootstrap, gateway.topic, expect=3) if r.key and r.key.startswith(b"P-batch")]
    assert sorted(r.json()["patient_id"] for r in records) == ["P-batch-1", "P-batch-3", "P-batch-5"]
    by_patient = {r.key.decode(): r for r in records}
    for item in (batch[0], batch[2], batch[4]):
        record = by_patient[item["patient_id"]]
        assert record.value == to_json(item)  # as sent, compact
        assert record.headers["content-type"] == b"application/json"
        assert record.headers["gateway-client"] == b"default"  # the token's name (WARDWATCH_TOKEN), never the token
        assert TOKEN.encode() not in b"".join(record.headers.values())


def test_a_batch_with_nothing_valid_is_a_400_and_writes_nothing(gateway: Running) -> None:
    reply = gateway.post([reading("P-none", 1, hr=5), {"patient_id": "P-none"}])
    assert reply.status == 400
    assert reply.body["accepted"] == 0
    assert [item["reason"] for item in reply.body["items"]] == ["out_of_range", "missing_field"]


def test_a_fhir_bundle_is_accepted_and_its_observations_land(kafka_bootstrap: str, gateway: Running) -> None:
    bundle = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [
            {"resource": observation("P-fhir", "8867-4", 88, "beats/minute", "/min")},
            {"resource": observation("P-fhir", "8310-5", 98.6, "degF", "[degF]")},
        ],
    }
    reply = gateway.post(bundle, content_type="application/fhir+json")
    assert reply.status == 202, reply.body
    assert reply.body["accepted"] == 2
    records = [r for r in landed(kafka_bootstrap, gateway.topic, expect=5) if r.key == b"P-fhir"]
    assert sorted(r.json()["code"]["coding"][0]["code"] for r in records) == ["8310-5", "8867-4"]
    assert all(r.json()["resourceType"] == "Observation" for r in records)


def test_nothing_refused_ever_reaches_vitals_raw(kafka_bootstrap: str, gateway: Running) -> None:
    keys = {r.key for r in read_committed(kafka_bootstrap, gateway.topic, quiet_s=2)}
    assert not keys & {b"P-auth", b"P-none", b"P-batch-2", b"P-batch-4"}


# -- named tokens, rotation, rate limits ---------------------------------------------------------
def test_each_device_cloud_has_its_own_token_and_its_name_is_on_every_record(kafka_bootstrap: str, gateway: Running) -> None:
    assert gateway.post(reading("P-cloud-a", 1, hr=71), token=CLOUD_A).status == 202
    assert gateway.post(reading("P-cloud-b", 1, hr=72), token=CLOUD_B).status == 202
    records = {r.key: r for r in read_committed(kafka_bootstrap, gateway.topic, quiet_s=2) if r.key in (b"P-cloud-a", b"P-cloud-b")}
    assert records[b"P-cloud-a"].headers["gateway-client"] == b"cloud-a"
    assert records[b"P-cloud-b"].headers["gateway-client"] == b"cloud-b"
    for record in records.values():
        assert not any(secret.encode() in value for secret in (CLOUD_A, CLOUD_B) for value in record.headers.values())
    assert CLOUD_A not in gateway.service.log() and CLOUD_B not in gateway.service.log()


def test_a_token_is_rotated_without_a_restart_and_the_revoked_one_is_refused(gateway: Running) -> None:
    tokens: Path = gateway.tokens_file  # type: ignore[attr-defined]
    rotated = "cloud-b-rotated-" + "r" * 24
    pid = gateway.service.process.pid
    assert gateway.post(reading("P-rotate", 1, hr=70), token=rotated).status == 401
    write_tokens(tokens, {"cloud-a": CLOUD_A, "cloud-b": CLOUD_B, "cloud-b-next": rotated})  # issue the new one
    wait_until(lambda: gateway.post(reading("P-rotate", 2, hr=70), token=rotated).status == 202, timeout_s=20,
               message="the new token to be accepted")
    write_tokens(tokens, {"cloud-a": CLOUD_A, "cloud-b-next": rotated})  # revoke the old one
    wait_until(lambda: gateway.post(reading("P-rotate", 3, hr=70), token=CLOUD_B).status == 401, timeout_s=20,
               message="the revoked token to be refused")
    assert gateway.post(reading("P-rotate", 4, hr=70), token=rotated).status == 202
    assert gateway.post(reading("P-rotate", 5, hr=70), token=CLOUD_A).status == 202
    assert gateway.service.alive() and gateway.service.process.pid == pid  # the same process throughout
    write_tokens(tokens, {"cloud-a": CLOUD_A, "cloud-b": CLOUD_B})


def test_a_client_past_its_rate_limit_gets_429_with_retry_after(unreachable: Running) -> None:
    # 3 at once, then one per 5 s: the fourth request in a row is refused before Kafka is involved.
    answers = [unreachable.post(reading("P-rate", i, hr=80), token=BURST) for i in range(4)]
    assert [a.status for a in answers[:3]] == [503, 503, 503]
    assert answers[3].status == 429
    assert answers[3].body["reason"] == "rate_limited"
    assert 1 <= int(answers[3].headers["retry-after"]) <= 5
    assert unreachable.post(reading("P-rate", 5, hr=80)).status == 503  # another client's budget is its own


# -- slow clients (slow-loris) over real sockets -------------------------------------------------
def test_a_thousand_half_open_slow_connections_are_dropped_while_a_normal_request_succeeds(gateway: Running) -> None:
    n = 1000
    opened: list[socket.socket] = []
    try:
        for _ in range(n):
            s = socket.create_connection(("127.0.0.1", gateway.port), timeout=10)
            s.sendall(b"POST /v1/readings HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Ty")  # half a request, then nothing
            opened.append(s)
        started = time.monotonic()
        # During the attack an honest client is served.
        assert gateway.post(reading("P-loris", 1, hr=75), token=CLOUD_A).status == 202
        # Every slow connection is closed by the server: EOF (or a reset) on each socket.
        selector = selectors.DefaultSelector()
        for s in opened:
            s.setblocking(False)
            selector.register(s, selectors.EVENT_READ)
        closed = 0
        deadline = started + READ_TIMEOUT_S + 20  # bounded: the stated timeout plus slack for a busy machine
        while closed < n and time.monotonic() < deadline:
            for key, _ in selector.select(timeout=0.5):
                try:
                    data = key.fileobj.recv(4096)  # type: ignore[union-attr]
                except (ConnectionResetError, BlockingIOError):
                    data = b""
                if not data:
                    selector.unregister(key.fileobj)
                    closed += 1
        selector.close()
        assert closed == n, f"{n - closed} of {n} slow connections still open"
    finally:
        for s in opened:
            s.close()
    assert gateway.service.alive(), gateway.service.log()
    assert gateway.post(reading("P-loris", 2, hr=75), token=CLOUD_A).status == 202
    slow = metric_samples(gateway).get(("wardwatch_gateway_slow_clients_total", ()), 0)
    assert slow >= n


def test_https_is_served_when_given_a_certificate(unreachable: Running) -> None:
    assert unreachable.tls is not None
    assert unreachable.request("GET", "/openapi.json").status == 200  # over TLS, certificate verified
    with pytest.raises((http.client.RemoteDisconnected, ConnectionResetError, http.client.BadStatusLine)):
        conn = http.client.HTTPConnection("127.0.0.1", unreachable.port, timeout=10)  # plain HTTP to the TLS port
        conn.request("GET", "/healthz")
        conn.getresponse()


def metric_samples(gateway: Running) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    conn = http.client.HTTPConnection("127.0.0.1", gateway.metrics_port, timeout=10)
    conn.request("GET", "/metrics")
    text = conn.getresponse().read().decode()
    conn.close()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for family in text_string_to_metric_families(text) for s in family.samples}


# -- the OpenAPI description ---------------------------------------------------------------------
def test_the_openapi_document_describes_the_answers_the_gateway_gives(gateway: Running) -> None:
    doc = gateway.request("GET", "/openapi.json").body
    assert doc["openapi"].startswith("3.0")
    assert "/v1/readings" in doc["paths"] and "/healthz" in doc["paths"]
    responses = doc["paths"]["/v1/readings"]["post"]["responses"]
    answers = [
        gateway.post(reading("P-doc-1", 1, hr=70)),
        gateway.post([reading("P-doc-2", 1, hr=70), reading("P-doc-3", 1, hr=1)]),
        gateway.post([reading("P-doc-4", 1, hr=1)]),
        gateway.post(None, raw=b"not json"),
        gateway.post(reading("P-doc-5", 1), token=None),
        gateway.post(reading("P-doc-6", 1), content_type="text/plain"),
        gateway.request("POST", "/v1/readings", b"2\r\n{}\r\n0\r\n\r\n", {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json",
                                                       "Transfer-Encoding": "chunked"}),
        gateway.request("POST", "/v1/readings", None, {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json",
                                                      "Content-Length": str(10**9)}),
    ]
    assert [a.status for a in answers] == [202, 207, 400, 400, 401, 415, 411, 413]
    for answer in answers:
        schema = responses[str(answer.status)]["content"]["application/json"]["schema"]
        jsonschema.validate(answer.body, {"components": doc["components"], "allOf": [schema]})
    health = doc["paths"]["/healthz"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    jsonschema.validate(gateway.request("GET", "/healthz").body, {"components": doc["components"], "allOf": [health]})
    # The reading schema comes from the contract and accepts what the gateway accepts.
    jsonschema.validate(reading("P-doc-7", 1, hr=70, acvpu="A"), {"components": doc["components"], "$ref": "#/components/schemas/Reading"})


def test_metrics_count_requests_and_items_without_patient_ids(gateway: Running) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", gateway.metrics_port, timeout=10)
    conn.request("GET", "/metrics")
    text = conn.getresponse().read().decode()
    conn.close()
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(text) for s in family.samples}
    assert samples[("wardwatch_gateway_requests_total", (("code", "207"), ("route", "/v1/readings")))] >= 1
    assert samples[("wardwatch_rejects_total", (("reason", "out_of_range"), ("stage", "gateway")))] >= 2
    assert samples[("wardwatch_gateway_request_duration_seconds_count", (("route", "/v1/readings"),))] >= 3
    assert "P-batch" not in text and "P-fhir" not in text


# -- Kafka unavailable, bad configuration --------------------------------------------------------
def test_kafka_unreachable_is_a_503_with_retry_after_and_nothing_accepted(unreachable: Running) -> None:
    reply = unreachable.post(reading("P-down", 1, hr=80))
    assert reply.status == 503
    assert reply.headers["retry-after"] == "5"
    assert reply.body["reason"] == "kafka_unavailable"
    assert "accepted" not in reply.body
    assert unreachable.request("GET", "/healthz").status == 503


def test_the_gateway_refuses_to_start_without_a_token() -> None:
    env = {k: v for k, v in os.environ.items() if k != "WARDWATCH_TOKEN"}
    done = subprocess.run([sys.executable, "-m", "wardwatch", "gateway", "--port", "0", "--metrics-port", "-1"],
                          cwd=REPO, env={**env, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "WARDWATCH_TOKEN" in lines[0] and "--no-auth" in lines[0], done.stderr
