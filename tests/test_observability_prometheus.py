"""Metrics checked for real: the running pipeline's expositions pass `promtool check metrics`,
carry no patient id, and a real Prometheus server scraping them answers PromQL.

Needs Debian's `prometheus` package (prometheus + promtool); under CI=true a missing binary
fails the tests instead of skipping them.
"""

from __future__ import annotations

import json
import math
import re
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from runtime.topics import VITALS_RAW
from tests.support.kafka import Service, create_topics, produce_paced, spawn, wait_until
from tests.support.tools import require_tool
from wardwatch.users import new_user

pytestmark = pytest.mark.kafka

PATIENTS = [f"OBS{i:03d}" for i in range(6)]
URL = re.compile(r"(?:metrics|ward view) serving url=(http://[^\s\"]+)")


def require_binary(name: str) -> str:
    return require_tool(name, "prometheus")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def served_url(service: Service, timeout_s: float = 60.0) -> str:
    """The URL a service logged (`--metrics-port 0` / `--port 0` pick a free port)."""
    found: list[str] = []

    def logged() -> bool:
        assert service.alive(), service.log()
        found.extend(URL.findall(service.log()))
        return bool(found)

    wait_until(logged, timeout_s, message=f"{service.name} to log its URL")
    return found[0]


def fetch(url: str, timeout: float = 5.0) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.read().decode()


def readings(patients: list[str], n: int, deteriorating: str | None = None) -> list[tuple[bytes, bytes]]:
    """`n` readings a minute apart (event time) per patient, ending now; one patient very unwell."""
    end = int(time.time() * 1000)
    out = []
    for i in range(n):
        ts = end - (n - 1 - i) * 60_000
        for j, patient_id in enumerate(patients):
            sick = patient_id == deteriorating
            payload = {
                "patient_id": patient_id, "device_id": f"D-{patient_id}", "seq": i, "ts_ms": ts,
                "hr": 132.0 if sick else 70.0 + j, "rr": 27.0 if sick else 14.0, "spo2": 90.0 if sick else 97.0,
                "temp": 38.4 if sick else 36.8, "sbp": 98.0 if sick else 124.0, "dbp": 60.0 if sick else 78.0,
                "on_oxygen": False, "acvpu": "A",
            }
            out.append((patient_id.encode(), json.dumps(payload).encode()))
    return out


@dataclass
class Pipeline:
    services: dict[str, Service]
    metrics: dict[str, str]  # service name -> /metrics URL
    produced: int


@pytest.fixture(scope="module")
def pipeline(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline]:
    """ingest, score (untrained weights), alerts and the ward view on the real broker, fed a
    paced stream so that rates are non-zero while Prometheus scrapes."""
    require_binary("promtool")
    workdir = tmp_path_factory.mktemp("observability")
    prefix = f"obs{int(time.time() * 1000) % 10**9}."
    common = ["--bootstrap-servers", kafka_bootstrap, "--topic-prefix", prefix]
    create_topics(kafka_bootstrap, prefix)
    services = {
        "ingest": spawn("ingest", ["ingest", *common, "--metrics-port", "0"], workdir),
        "score": spawn("score", ["score", *common, "--metrics-port", "0", "--checkpoint", "untrained"], workdir),
        "alerts": spawn("alerts", ["alerts", *common, "--metrics-port", "0"], workdir),
        "wardview": spawn("wardview", ["wardview", *common, "--port", "0"], workdir,
                          env={"WARDWATCH_USERS": new_user("obs", "viewer", "observer-password").line()}),
    }
    try:
        urls = {name: served_url(s) for name, s in services.items()}
        urls["wardview"] = urls["wardview"].rstrip("/") + "/metrics"
        stream = readings(PATIENTS, 24, deteriorating=PATIENTS[0])
        # Spread over ~12 s of wall time: a stream, not a dump.
        feeder = produce_paced(kafka_bootstrap, prefix + VITALS_RAW, stream, chunks=12, pause_s=1.0)
        yield Pipeline(services, urls, len(stream))
        feeder.join()
    finally:
        for service in services.values():
            service.stop()


def test_every_service_exposition_passes_promtool(pipeline: Pipeline) -> None:
    promtool = require_binary("promtool")
    wait_until(lambda: "wardwatch_event_to_score_seconds_count" in fetch(pipeline.metrics["score"]), 60,
               message="the scorer's first observations")
    for name, url in pipeline.metrics.items():
        text = fetch(url)
        result = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=30)
        assert result.returncode == 0 and not (result.stdout + result.stderr).strip(), (
            f"{name}: promtool check metrics: {result.stdout}{result.stderr}"
        )


def test_metrics_follow_the_design_and_name_no_patient(pipeline: Pipeline) -> None:
    wait_until(lambda: f"wardwatch_wardview_patients {len(PATIENTS)}.0" in fetch(pipeline.metrics["wardview"]), 60,
               message="the ward view to see the patients")
    names: dict[str, set[str]] = {}
    for name, url in pipeline.metrics.items():
        text = fetch(url)
        for patient_id in PATIENTS:
            assert patient_id not in text, f"{name} exposes a patient id ({patient_id}) in its metrics"
        families = list(text_string_to_metric_families(text))
        names[name] = {f.name for f in families}
        build = [s for f in families if f.name == "wardwatch_build_info" for s in f.samples]
        assert len(build) == 1, f"{name}: expected one wardwatch_build_info sample, got {build}"
        labels = build[0].labels
        assert labels["version"] and labels["version"] != "unknown", f"{name}: build info without a version: {labels}"
        assert {"model", "stage"} <= labels.keys(), f"{name}: build info lacks model/stage: {labels}"
        for family in families:
            assert family.name.startswith(("wardwatch_", "process_")), f"{name}: {family.name} is not wardwatch_<what>_<unit>"
            if family.type == "counter":
                assert all(s.name.endswith("_total") for s in family.samples), family.name
            if family.type == "histogram":
                assert family.name.endswith(("_seconds", "_records")), f"{family.name}: histogram without a unit"
    every_stage = {"wardwatch_records_in", "wardwatch_records_out", "wardwatch_rejects", "wardwatch_batch_size_records",
                   "wardwatch_batch_duration_seconds", "wardwatch_consumer_lag_records", "wardwatch_rebalances",
                   "wardwatch_assigned_partitions", "wardwatch_build_info"}
    for name in ("ingest", "score", "alerts"):
        missing = every_stage - names[name]
        assert not missing, f"{name} lacks {sorted(missing)}"
    assert {"wardwatch_inference_duration_seconds", "wardwatch_event_to_score_seconds", "wardwatch_active_patients",
            "wardwatch_restore_duration_seconds"} <= names["score"]
    assert {"wardwatch_alerts", "wardwatch_active_alerts", "wardwatch_restore_duration_seconds"} <= names["alerts"]

    def lag_partitions() -> set[str]:
        return set(re.findall(r'^wardwatch_consumer_lag_records\{[^}]*partition="(\d+)"', fetch(pipeline.metrics["score"]), re.M))

    wait_until(lambda: len(lag_partitions()) > 1, 30, message="consumer lag series for several partitions")


def test_real_prometheus_scrapes_the_pipeline_and_answers_promql(pipeline: Pipeline, tmp_path: Path) -> None:
    prometheus = require_binary("prometheus")
    targets = [urllib.parse.urlparse(url).netloc for url in pipeline.metrics.values()]
    config = tmp_path / "prometheus.yml"
    config.write_text(json.dumps({  # JSON is YAML
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [{"job_name": "wardwatch", "scrape_interval": "1s", "static_configs": [{"targets": targets}]}],
    }))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = open(tmp_path / "prometheus.log", "wb")
    server = subprocess.Popen(
        [prometheus, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{port}", "--storage.tsdb.retention.time=1h"],
        stdout=log, stderr=subprocess.STDOUT,
    )

    def query(promql: str) -> list[dict]:
        body = json.loads(fetch(f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": promql})))
        assert body["status"] == "success", body
        return body["data"]["result"]

    def answered(promql: str, check) -> bool:  # noqa: ANN001
        assert server.poll() is None, (tmp_path / "prometheus.log").read_text()
        try:
            result = query(promql)
        except OSError:
            return False  # not listening yet
        return bool(result) and all(check(float(r["value"][1])) for r in result)

    try:
        wait_until(lambda: answered('count(up{job="wardwatch"} == 1)', lambda v: v == len(targets)), 60,
                   message=f"Prometheus to scrape all {len(targets)} targets")
        wait_until(lambda: answered('sum(rate(wardwatch_records_out_total{stage="score",topic="risk"}[30s]))', lambda v: v > 0),
                   60, message="a positive rate of risk records")
        p99 = "histogram_quantile(0.99, sum by (le) (rate(wardwatch_event_to_score_seconds_bucket[30s])))"
        wait_until(lambda: answered(p99, lambda v: math.isfinite(v) and 0 <= v < 30), 60,
                   message="a finite p99 event-to-score latency")
        assert answered('sum by (stage) (rate(wardwatch_records_in_total[30s])) > 0', lambda v: v > 0)
        stages = {r["metric"]["stage"] for r in query("sum by (stage) (wardwatch_build_info)")}
        assert {"ingest", "score", "alerts", "wardview"} <= stages
        assert answered('max(wardwatch_active_patients{stage="score"})', lambda v: v == len(PATIENTS))
        assert query("sum by (topic, partition) (wardwatch_consumer_lag_records)"), "no per-partition lag series"
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()
