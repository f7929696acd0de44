"""docker-compose.yml cannot run here (no Docker engine), so it is checked against the
official Compose schema and against the code's own defaults: services, ports, topics."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from tests.support.tools import require_tool
import yaml

from runtime.topics import ALL

REPO = Path(__file__).resolve().parents[1]
SERVICES = {"sim": 9101, "ingest": 9102, "score": 9103, "alerts": 9104}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())


def test_compose_file_is_valid_against_the_official_schema(compose: dict) -> None:
    schema = json.loads((REPO / "deploy" / "compose-spec.json").read_text())
    # The schema names draft-07 by an https URL jsonschema does not recognise; say so explicitly.
    jsonschema.Draft7Validator(schema).validate(compose)


def test_every_pipeline_service_runs_the_wardwatch_subcommand_of_its_name(compose: dict) -> None:
    for name in SERVICES:
        service = compose["services"][name]
        assert service["command"][0] == name
        assert service["build"] == "."


def test_metrics_ports_match_the_code_defaults_and_prometheus_scrapes_them(compose: dict) -> None:
    from alerts.service import AlertsConfig
    from inference.service import ScoreConfig
    from ingest.service import IngestConfig
    from wardwatch.commands.sim import SimConfig

    defaults = {"sim": SimConfig, "ingest": IngestConfig, "score": ScoreConfig, "alerts": AlertsConfig}
    prometheus = yaml.safe_load((REPO / "deploy" / "prometheus" / "prometheus.yml").read_text())
    targets = {t for job in prometheus["scrape_configs"] for group in job["static_configs"] for t in group["targets"]}
    for name, port in SERVICES.items():
        assert defaults[name]().metrics_port == port
        assert compose["services"][name]["environment"]["WARDWATCH_METRICS_PORT"] == str(port)
        assert f"{name}:{port}" in targets


def test_services_reach_the_broker_on_its_internal_listener(compose: dict) -> None:
    kafka = compose["services"]["kafka"]["environment"]
    assert "INTERNAL://kafka:19092" in kafka["KAFKA_ADVERTISED_LISTENERS"]
    assert kafka["KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR"] == "1"
    assert kafka["KAFKA_TRANSACTION_STATE_LOG_MIN_ISR"] == "1"
    for name in SERVICES:
        env = compose["services"][name]["environment"]
        assert env["KAFKA_BOOTSTRAP_SERVERS"] == "kafka:19092"
        assert compose["services"][name]["depends_on"]["kafka"]["condition"] == "service_healthy"


def test_the_gateway_listens_on_its_default_port_with_a_token_and_is_scraped(compose: dict) -> None:
    from ingest.gateway import GatewayConfig

    gateway = compose["services"]["gateway"]
    defaults = GatewayConfig(token="x" * 16)
    assert gateway["command"] == ["gateway"]
    assert f"127.0.0.1:{defaults.port}:{defaults.port}" in gateway["ports"]
    assert gateway["environment"]["WARDWATCH_METRICS_PORT"] == str(defaults.metrics_port)
    assert gateway["environment"]["WARDWATCH_TOKEN"]
    prometheus = yaml.safe_load((REPO / "deploy" / "prometheus" / "prometheus.yml").read_text())
    targets = {t for job in prometheus["scrape_configs"] for group in job["static_configs"] for t in group["targets"]}
    assert f"gateway:{defaults.metrics_port}" in targets


def test_topic_names_in_the_stack_are_the_codes_topics(compose: dict) -> None:
    text = (REPO / "docker-compose.yml").read_text()
    known = {spec.name for spec in ALL}
    for word in ("vitals.raw", "vitals.dlq", "scorer.state", "alerts.state"):
        assert word in known
        # The stack names no topic of its own: services create theirs from runtime.topics.
        assert word not in text


def test_every_service_has_a_health_check_and_a_restart_policy(compose: dict) -> None:
    for name, service in compose["services"].items():
        assert service.get("healthcheck", {}).get("test"), f"{name} has no health check"
        assert service.get("restart") in {"unless-stopped", "always", "on-failure", "no"}, f"{name} has no restart policy"
    # Long-running services come back; the simulator is a finite run.
    for name in ("kafka", "ingest", "score", "alerts", "wardview", "prometheus", "grafana"):
        assert compose["services"][name]["restart"] == "unless-stopped", name


def test_the_ward_view_is_served_on_its_default_port_and_scraped(compose: dict) -> None:
    from wardwatch.wardview import WardViewConfig

    port = WardViewConfig.__dataclass_fields__["port"].default  # (an instance needs users)
    service = compose["services"]["wardview"]
    assert service["command"][0] == "wardview" and "0.0.0.0" in service["command"]
    assert f"127.0.0.1:{port}:{port}" in service["ports"]  # no login yet: loopback only
    assert "/healthz" in " ".join(service["healthcheck"]["test"])
    prometheus = yaml.safe_load((REPO / "deploy" / "prometheus" / "prometheus.yml").read_text())
    targets = {t for job in prometheus["scrape_configs"] for group in job["static_configs"] for t in group["targets"]}
    assert f"wardview:{port}" in targets


def test_grafana_is_provisioned_with_the_dashboard_and_anonymous_viewing(compose: dict) -> None:
    grafana = compose["services"]["grafana"]
    assert grafana["image"].startswith("grafana/grafana:")
    assert "127.0.0.1:3000:3000" in grafana["ports"]  # anonymous viewing: loopback only
    assert grafana["environment"]["GF_AUTH_ANONYMOUS_ENABLED"] == "true"
    assert grafana["environment"]["GF_AUTH_ANONYMOUS_ORG_ROLE"] == "Viewer"
    for mount in grafana["volumes"]:
        source = mount.split(":")[0]
        if source.startswith("./"):
            assert (REPO / source).exists(), f"grafana mounts {source}, which is not in the repository"
    assert grafana["depends_on"]["prometheus"]["condition"] == "service_healthy"
    for mount in compose["services"]["prometheus"]["volumes"]:
        source = mount.split(":")[0]
        if source.startswith("./"):
            assert (REPO / source).exists(), source


def test_prometheus_config_is_valid_for_promtool() -> None:
    import subprocess

    promtool = require_tool("promtool", "prometheus")
    result = subprocess.run([promtool, "check", "config", str(REPO / "deploy" / "prometheus" / "prometheus.yml")],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stdout + result.stderr
