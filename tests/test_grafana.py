"""The provisioned Grafana dashboard: well-formed, wired to the provisioned datasource, every
PromQL expression parses (promtool) and names only metrics the code actually exports."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from tests.support.tools import require_tool
import yaml

REPO = Path(__file__).resolve().parents[1]
GRAFANA = REPO / "deploy" / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "wardwatch.json"
METRIC = re.compile(r"\bwardwatch_[a-z0-9_]+\b")
# Panels the issue asks for, by a word of their title.
REQUIRED_PANELS = ("Records in per stage", "Consumer lag", "Event-to-score latency", "Rejects by reason",
                   "Alert events by severity", "Active patients")


@pytest.fixture(scope="module")
def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def exported_series() -> set[str]:
    """Every sample name the services register, built in-process from the real classes."""
    from alerts.processor import AlertMetrics
    from inference.processor import ScorerMetrics
    from runtime.metrics import StreamMetrics, new_registry
    from wardwatch.wardview import WardMetrics

    names: set[str] = set()
    for stage in ("ingest", "score", "alerts"):
        registry = new_registry()
        stream = StreamMetrics(registry, stage)
        if stage == "score":
            ScorerMetrics(stream)
        if stage == "alerts":
            AlertMetrics(stream)
        stream.rejects.labels(stage, "x").inc()  # children with labels appear once used
        stream.records_in.labels(stage, "t").inc()
        stream.records_out.labels(stage, "t").inc()
        stream.lag.labels(stage, "t", "0").set(0)
        stream.rebalances.labels(stage, "assigned").inc()
        stream.assigned.labels(stage).set(1)
        stream.restore_seconds.labels(stage).observe(0.1)
        stream.restore_records.labels(stage).inc()
        stream.commit_seconds.labels(stage).observe(0.01)
        for family in registry.collect():
            names.update(sample.name for sample in family.samples)
    view = WardMetrics(new_registry())
    view.patients.set(1)
    for family in view.stream.registry.collect():
        names.update(sample.name for sample in family.samples)
    return names


def expressions(dashboard: dict) -> list[tuple[str, str]]:
    return [(p["title"], t["expr"]) for p in dashboard["panels"] if p["type"] != "row" for t in p["targets"]]


def test_dashboard_is_well_formed_and_uses_the_provisioned_datasource(dashboard: dict) -> None:
    datasources = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text())["datasources"]
    uid = datasources[0]["uid"]
    assert datasources[0]["type"] == "prometheus" and datasources[0]["url"] == "http://prometheus:9090"
    assert dashboard["uid"] == "wardwatch" and dashboard["title"] and dashboard["schemaVersion"] >= 36
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in dashboard["panels"]:
        grid = panel["gridPos"]
        assert 0 <= grid["x"] and grid["x"] + grid["w"] <= 24 and grid["h"] > 0, panel["title"]
        if panel["type"] == "row":
            continue
        assert panel["type"] in {"timeseries", "stat", "table", "gauge", "bargauge"}, panel["type"]
        assert panel["datasource"]["uid"] == uid, panel["title"]
        assert panel["targets"], f"{panel['title']}: no query"
        ref_ids = [t["refId"] for t in panel["targets"]]
        assert len(ref_ids) == len(set(ref_ids)), panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == uid and target["expr"].strip(), panel["title"]
    titles = " | ".join(p["title"] for p in dashboard["panels"])
    for word in REQUIRED_PANELS:
        assert word in titles, f"no panel for {word!r}"


def test_dashboard_provider_loads_the_folder_compose_mounts() -> None:
    provider = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "wardwatch.yml").read_text())["providers"][0]
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    mounts = compose["services"]["grafana"]["volumes"]
    assert f"./deploy/grafana/dashboards:{provider['options']['path']}:ro" in mounts
    assert "./deploy/grafana/provisioning:/etc/grafana/provisioning:ro" in mounts


def test_every_query_names_only_metrics_the_code_exports(dashboard: dict) -> None:
    exported = exported_series()
    used = set()
    for title, expr in expressions(dashboard):
        names = set(METRIC.findall(expr))
        assert names, f"{title}: {expr!r} names no wardwatch metric"
        unknown = names - exported
        assert not unknown, f"{title}: {sorted(unknown)} are not exported (exported: {sorted(exported)})"
        used |= names
    for series in ("wardwatch_event_to_score_seconds_bucket", "wardwatch_consumer_lag_records", "wardwatch_rejects_total",
                   "wardwatch_alerts_total", "wardwatch_active_patients", "wardwatch_records_in_total"):
        assert series in used


def test_every_query_is_valid_promql(dashboard: dict, tmp_path: Path) -> None:
    promtool = require_tool("promtool", "prometheus")
    # $__rate_interval is Grafana's; Prometheus sees it already replaced by a duration.
    rules = [{"record": f"wardwatch:panel_{i}", "expr": expr.replace("$__rate_interval", "1m")}
             for i, (_, expr) in enumerate(expressions(dashboard))]
    path = tmp_path / "rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stdout + result.stderr
