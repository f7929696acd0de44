"""Rules files: the shipped default loads; a bad file fails with one line naming key and value."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from alerts.service import AlertsConfig
from alerts.rules import DEFAULT_RULES_PATH, HOURLY_NEWS2_RULES_PATH, HOURLY_RULES_PATH, NEWS2_RULES_PATH, RulesError, load_rules, parse_rules
from runtime.config import ConfigError, load


def default_doc() -> dict[str, Any]:
    return yaml.safe_load(DEFAULT_RULES_PATH.read_text())


def test_shipped_default_has_model_news2_single3_and_data_gap_rules() -> None:
    rules = load_rules()
    assert {r.signal for r in rules.rules} == {"risk", "news2", "news2_single3"}
    news2 = next(r for r in rules.rules if r.signal == "news2")
    assert [(lv.severity, lv.raise_at) for lv in news2.levels] == [("urgent", 5), ("emergency", 7)]
    assert rules.data_gap.after_ms > 0
    assert rules.only("news2").rules == (news2,)


@pytest.mark.parametrize(("rules_path", "baseline_path"), [(DEFAULT_RULES_PATH, NEWS2_RULES_PATH), (HOURLY_RULES_PATH, HOURLY_NEWS2_RULES_PATH)])
def test_each_shipped_rule_set_and_its_news2_baseline_differ_only_in_the_model_rule_and_hysteresis(rules_path: Path, baseline_path: Path) -> None:
    rules, baseline = load_rules(rules_path), load_rules(baseline_path)
    assert {r.signal for r in rules.rules} == {"risk", "news2", "news2_single3"}
    assert {r.signal for r in baseline.rules} == {"news2", "news2_single3"}
    assert rules.data_gap == baseline.data_gap, "technical alerts compare like for like"
    for rule in baseline.rules:
        mine = rules.rule(rule.name)
        assert [(lv.severity, lv.raise_at) for lv in mine.levels] == [(lv.severity, lv.raise_at) for lv in rule.levels]


def test_hourly_rules_raise_within_three_readings_where_the_default_needs_ten_minutes_of_them() -> None:
    hourly, default = load_rules(HOURLY_RULES_PATH), load_rules(DEFAULT_RULES_PATH)
    for rule in hourly.rules:
        assert rule.debounce.of_last <= 3 and rule.debounce.min_duration_ms == 0, rule.name
        assert default.rule(rule.name).debounce.min_duration_ms >= 600_000
    assert hourly.data_gap.after_ms == 4 * 3_600_000 > default.data_gap.after_ms
    assert hourly.rule("model_risk").levels[0].raise_at < default.rule("model_risk").levels[0].raise_at


def test_levels_are_ordered_by_severity_not_by_file_order() -> None:
    doc = default_doc()
    levels = doc["rules"]["model_risk"]["levels"]
    doc["rules"]["model_risk"]["levels"] = {"emergency": levels["emergency"], "urgent": levels["urgent"]}
    assert [lv.severity for lv in parse_rules(doc).rule("model_risk").levels] == ["urgent", "emergency"]


def test_rule_inherits_default_debounce_and_cooldown() -> None:
    doc = {"defaults": {"debounce": {"readings": 2, "of_last": 4}, "cooldown_s": 60},
           "rules": {"r": {"signal": "news2", "levels": {"urgent": {"raise_at": 5, "clear_below": 4}}, "debounce": {"min_duration_s": 30}}}}
    rule = parse_rules(doc).rule("r")
    assert (rule.debounce.readings, rule.debounce.of_last, rule.debounce.min_duration_ms, rule.cooldown_ms) == (2, 4, 30_000, 60_000)


def _set(doc: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    doc = copy.deepcopy(doc)
    *parents, last = path.split(".")
    node = doc
    for key in parents:
        node = node[key]
    node[last] = value
    return doc


BAD = [
    ("rules.model_risk.signal", "heart_rate", "rules.model_risk.signal='heart_rate'"),
    ("rules.model_risk.levels.urgent.raise_at", 1.5, "rules.model_risk.levels.urgent.raise_at=1.5"),
    ("rules.model_risk.levels.urgent.raise_at", "high", "rules.model_risk.levels.urgent.raise_at='high'"),
    ("rules.model_risk.levels.urgent.clear_below", 0.65, "rules.model_risk.levels.urgent.clear_below=0.65"),
    ("rules.model_risk.levels.urgent.raise_at", 0.9, "rules.model_risk.levels.emergency.raise_at=0.85: expected more than urgent"),
    ("rules.model_risk.levels.severe", {"raise_at": 0.9, "clear_below": 0.8}, "rules.model_risk.levels.severe="),
    ("rules.model_risk.debounce.readings", 11, "rules.model_risk.debounce.readings=11"),
    ("rules.model_risk.debounce.of_last", 0, "rules.model_risk.debounce.of_last=0"),
    ("rules.model_risk.debounce.min_duration_s", -5, "rules.model_risk.debounce.min_duration_s=-5"),
    ("rules.model_risk.cooldown_s", "1h", "rules.model_risk.cooldown_s='1h'"),
    ("rules.model_risk.threshold", 0.5, "rules.model_risk.threshold=0.5"),
    ("rules.news2_aggregate.levels", {}, "rules.news2_aggregate.levels={}"),
    ("data_gap.after_s", 0, "data_gap.after_s=0"),
    ("data_gap.forget_after_s", 60, "data_gap.forget_after_s=60"),
    ("version", 2, "version=2"),
]


@pytest.mark.parametrize("path, value, named", BAD, ids=[b[0] + "=" + repr(b[1]) for b in BAD])
def test_bad_value_is_one_line_naming_key_and_value(path: str, value: Any, named: str) -> None:
    with pytest.raises(RulesError) as err:
        parse_rules(_set(default_doc(), path, value), source="rules.yaml")
    message = str(err.value)
    assert "\n" not in message
    assert named in message and "expected" in message


def test_unreadable_or_invalid_yaml_files(tmp_path: Path) -> None:
    with pytest.raises(RulesError, match="cannot read"):
        load_rules(tmp_path / "missing.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("rules: [unclosed\n")
    with pytest.raises(RulesError, match="not valid YAML at line"):
        load_rules(broken)


def test_config_rejects_a_bad_rules_file_at_load(tmp_path: Path) -> None:
    bad = tmp_path / "rules.yaml"
    bad.write_text(yaml.safe_dump(_set(default_doc(), "rules.model_risk.signal", "pulse")))
    with pytest.raises(ConfigError, match="signal='pulse'"):
        load(AlertsConfig, environ={"WARDWATCH_RULES": str(bad)})
    config = load(AlertsConfig, environ={})
    assert config.metrics_port == 9104 and Path(config.rules) == DEFAULT_RULES_PATH
