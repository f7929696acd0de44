"""The compose stack, for real: build the image, `docker compose up`, and check what a user gets.

Real engine, real containers, real compose network, real Apache Kafka. Where Docker Hub cannot
be reached (CI here), `deploy/docker/ci/images.sh` builds stand-ins for the official images from
Debian packages and `deploy/docker/ci/compose.ci.yml` swaps them in; the project's compose file
is used unchanged otherwise. Without a Docker engine this module is skipped, except under CI,
where `.ci/run` starts one (`deploy/docker/ci/engine.sh`) and a missing engine fails.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import struct
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PROJECT = "wardwatch-citest"
OVERRIDE = REPO / "deploy" / "docker" / "ci" / "compose.ci.yml"
CI_PYTHON_BASE = "wardwatch-ci/python:3.11"
PIPELINE = ("ingest", "score", "alerts")
SCRAPED = ("sim", "ingest", "score", "alerts", "gateway", "wardview")

pytestmark = pytest.mark.compose


# Settings the compose file takes from the environment (or .env): set per test run.
ENV: dict[str, str] = {}


def _run(*args: str, timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=timeout, env={**os.environ, **ENV})
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(args)} exited {result.returncode}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


def _engine_answers() -> bool:
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=20).returncode == 0 and (
            subprocess.run(["docker", "compose", "version"], capture_output=True, timeout=20).returncode == 0
        )
    except (OSError, subprocess.TimeoutExpired):
        return False


def _image_exists(name: str) -> bool:
    return subprocess.run(["docker", "image", "inspect", name], capture_output=True).returncode == 0


class Stack:
    def __init__(self, files: list[Path]) -> None:
        self.files = files

    def compose(self, *args: str, timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess[str]:
        flags = [arg for f in self.files for arg in ("-f", str(f))]
        return _run("docker", "compose", "-p", PROJECT, *flags, *args, timeout=timeout, check=check)

    def services(self) -> dict[str, dict]:
        out = self.compose("ps", "--all", "--format", "json").stdout.strip()
        if not out:
            return {}
        rows = json.loads(out) if out.startswith("[") else [json.loads(line) for line in out.splitlines()]
        return {row["Service"]: row for row in rows}

    def container_id(self, service: str) -> str:
        return self.compose("ps", "-q", service).stdout.strip()


def _get(url: str, timeout: float = 5) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _query(expr: str) -> list[dict]:
    status, body = _get("http://127.0.0.1:9090/api/v1/query?query=" + urllib.parse.quote(expr))
    assert status == 200, body[:300]
    return json.loads(body)["data"]["result"]


def _scalar(expr: str) -> float:
    result = _query(expr)
    return float(result[0]["value"][1]) if result else 0.0


def _wait(condition, timeout_s: float, message: str, every: float = 2.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        try:
            last = condition()
            if last:
                return last
        except (OSError, AssertionError, KeyError, ValueError) as exc:  # not up yet
            last = exc
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {message} (last: {last!r})")


def _users_file(directory: Path) -> Path:
    """A ward view users file made the way the README says, readable by the image's user."""
    path = directory / "wardview-users"
    subprocess.run(
        [sys.executable, "-m", "wardwatch", "user", "add", "citest", "--role", "clinician", "--users-file", str(path)],
        cwd=REPO, env={**os.environ, "WARDWATCH_PASSWORD": secrets.token_urlsafe(16)}, check=True, capture_output=True,
    )
    if os.geteuid() == 0:
        os.chown(path, 10001, 10001)  # the image runs as uid 10001; compose mounts secrets as they are
    return path


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    if not _engine_answers():
        if os.environ.get("CI") == "true":
            pytest.fail("no Docker engine with Compose v2 answers: .ci/run starts one with deploy/docker/ci/engine.sh")
        pytest.skip("no Docker engine with Compose v2 (run deploy/docker/ci/engine.sh as root to get one)")
    ENV["WARDWATCH_USERS_FILE"] = str(_users_file(tmp_path_factory.mktemp("compose")))
    files = [REPO / "docker-compose.yml"]
    build_args: list[str] = []
    if _image_exists(CI_PYTHON_BASE):  # the Debian stand-ins from deploy/docker/ci/images.sh
        files.append(OVERRIDE)
        build_args = ["--build-arg", f"BASE_IMAGE={CI_PYTHON_BASE}"]
    _run("docker", "build", "-q", *build_args, "-t", "wardwatch:latest", ".", timeout=900)
    stack = Stack(files)
    stack.compose("down", "-v", "--remove-orphans", check=False)
    try:
        stack.compose("up", "-d", "--no-build", timeout=600)
        yield stack
    finally:
        logs = stack.compose("logs", "--no-color", "--tail", "40", check=False).stdout
        (REPO / ".wardwatch").mkdir(exist_ok=True)
        (REPO / ".wardwatch" / "compose-test.log").write_text(logs)
        stack.compose("down", "-v", "--remove-orphans", check=False)


def test_every_service_becomes_healthy(stack: Stack) -> None:
    expected = {"kafka", "ingest", "score", "alerts", "sim", "wardview", "gateway", "prometheus"}

    def all_healthy() -> bool:
        rows = stack.services()
        return expected <= set(rows) and all(rows[name].get("Health") == "healthy" for name in expected)

    _wait(all_healthy, 300, "every service to be healthy")


def test_prometheus_has_every_wardwatch_target_up(stack: Stack) -> None:
    def targets_up() -> bool:
        status, body = _get("http://127.0.0.1:9090/api/v1/targets")
        active = json.loads(body)["data"]["activeTargets"]
        up = {t["labels"].get("service") for t in active if t["health"] == "up"}
        return set(SCRAPED) <= up

    _wait(targets_up, 180, "Prometheus to scrape every wardwatch service")


def test_readings_flow_through_ingest_score_and_alerts(stack: Stack) -> None:
    def flowing() -> bool:
        scored = _scalar('sum(wardwatch_records_out_total{stage="score",topic="risk"})')
        ingested = _scalar('sum(wardwatch_records_out_total{stage="ingest",topic="vitals"})')
        alerted = _scalar('sum(wardwatch_records_in_total{stage="alerts",topic="risk"})')
        return scored > 50 and ingested > 50 and alerted > 50

    _wait(flowing, 240, "readings to be ingested, scored and read by the alert service")


def test_the_ward_view_answers(stack: Stack) -> None:
    status, _ = _wait(lambda: (lambda r: r if r[0] == 200 else None)(_get("http://127.0.0.1:8080/healthz")), 120, "the ward view")
    assert status == 200


def test_the_broker_is_secured(stack: Stack) -> None:
    """TLS on the published listener, SCRAM logins and ACLs: a plaintext client gets no Kafka
    answer, and the alerts principal (its own container, its own secrets) reads `risk` but not `vitals`."""
    with socket.create_connection(("127.0.0.1", 9092), timeout=15) as plain:
        # An ApiVersions request in clear: a TLS listener never answers it in Kafka's protocol.
        header = struct.pack(">hhih", 18, 0, 7, 5) + b"probe"
        plain.sendall(struct.pack(">i", len(header)) + header)
        plain.settimeout(15)
        try:
            answer = plain.recv(65536)
        except (ConnectionResetError, TimeoutError):
            answer = b""
    assert answer == b"" or answer[0] == 0x15, answer[:16]  # nothing, or a TLS alert record
    # Run in the alerts container with its environment: `connect` takes its settings from there.
    probe = (
        "import time\n"
        "from runtime.kafka.client import BEGINNING, KafkaClientError, TopicPartition, connect\n"
        "kafka = connect('kafka:19092')\n"
        "def attempt(name, action):\n"
        "    try:\n"
        "        print(name, 'ok', action())\n"
        "    except KafkaClientError as exc:\n"
        "        print(name, 'refused', exc)\n"
        "def records(topic):\n"
        "    consumer = kafka.consumer(client_id='citest-acl', group_id=None)\n"
        "    consumer.assign({TopicPartition(topic, p): BEGINNING for p in range(6)})\n"
        "    got, deadline = 0, time.monotonic() + 10\n"
        "    while time.monotonic() < deadline and not got:\n"
        "        got += len(consumer.poll(0.5, 100))\n"
        "    return got\n"
        "attempt('read-risk', lambda: records('risk'))\n"
        "attempt('read-vitals', lambda: records('vitals'))\n"
        "producer = kafka.producer(client_id='citest-acl', request_timeout_ms=15000)\n"
        "attempt('write-vitals.raw', lambda: producer.send_acked('vitals.raw', b'{}', key=b'P1').wait(30))\n"
    )
    run = stack.compose("run", "--rm", "--no-deps", "--entrypoint", "python", "alerts", "-c", probe, timeout=180)
    results = {name: rest for name, rest in (line.split(" ", 1) for line in run.stdout.strip().splitlines() if " " in line)}
    # `risk` and `vitals` both hold records by now (the flow test): alerts reads its input only.
    assert _scalar('sum(wardwatch_records_out_total{stage="ingest",topic="vitals"})') > 0
    assert results["read-risk"].startswith("ok") and int(results["read-risk"].split()[1]) > 0, run.stdout
    assert results["read-vitals"] in ("ok 0",) or results["read-vitals"].startswith("refused"), run.stdout
    assert results["write-vitals.raw"].startswith("refused") and "TopicAuthorizationFailed" in results["write-vitals.raw"], run.stdout


def test_a_killed_service_comes_back_by_its_restart_policy_and_nothing_is_doubled(stack: Stack) -> None:
    before = _scalar('sum(wardwatch_records_out_total{stage="score",topic="risk"})')
    container = stack.container_id("score")
    pid = _run("docker", "inspect", "-f", "{{.State.Pid}}", container).stdout.strip()
    _run("kill", "-KILL", pid)  # a crash, not a `docker stop`: the restart policy must act
    _wait(lambda: _run("docker", "inspect", "-f", "{{.RestartCount}}", container).stdout.strip() not in ("", "0"),
          60, "the restart policy to restart the scorer")
    _wait(lambda: stack.services()["score"]["Health"] == "healthy", 180, "the restarted scorer to be healthy")
    _wait(lambda: _scalar('sum(wardwatch_records_out_total{stage="score",topic="risk"})') > 0, 120,
          "the restarted scorer to score again")
    assert before > 0

    # Stop the devices, let the pipeline drain, then account for every reading on the topics.
    # The check reads vitals, risk and vitals.dlq, more than any one service may: it runs in the
    # alerts image as the operator's `admin` principal (the kafka-secrets-operator volume), the
    # way the README says to run wardwatch's tools against the secured stack.
    stack.compose("stop", "sim")
    operator = "/run/wardwatch/operator"
    check = stack.compose(
        "run", "--rm", "--no-deps", "-v", f"{PROJECT}_kafka-secrets-operator:{operator}:ro",
        "-e", "WARDWATCH_SASL_USERNAME=admin", "-e", f"WARDWATCH_KAFKA_PASSWORD_FILE={operator}/password",
        "-e", f"WARDWATCH_SSL_CA_LOCATION={operator}/ca.pem",
        "--entrypoint", "python", "alerts", "-m", "wardwatch.composecheck",
        timeout=300, check=False,
    )
    assert check.returncode == 0, check.stdout[-3000:] + check.stderr[-3000:]
    report = json.loads(check.stdout.strip().splitlines()[-1])
    assert report["vitals"] > 0
    assert report["duplicates"] == 0, report
    assert report["missing"] == 0, report
    assert report["risk"] + report["late"] == report["vitals"], report


def test_compose_down_leaves_nothing_behind(stack: Stack) -> None:
    stack.compose("down", "-v", "--remove-orphans")
    label = f"label=com.docker.compose.project={PROJECT}"
    assert _run("docker", "ps", "-aq", "--filter", label).stdout.strip() == ""
    assert _run("docker", "volume", "ls", "-q", "--filter", label).stdout.strip() == ""
    assert _run("docker", "network", "ls", "-q", "--filter", label).stdout.strip() == ""
