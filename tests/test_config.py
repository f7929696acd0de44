"""Configuration: flags, environment and defaults; bad values stop with one line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from runtime.config import ConfigError, StreamConfig, load

REPO = Path(__file__).resolve().parents[1]


def test_environment_then_defaults() -> None:
    config = load(StreamConfig, None, {"KAFKA_BOOTSTRAP_SERVERS": "kafka:19092", "WARDWATCH_PARTITIONS": "12"})
    assert config.bootstrap_servers == "kafka:19092"
    assert config.partitions == 12
    assert config.commit_interval_ms == 100
    assert config.overlap_commits is True
    assert load(StreamConfig, None, {"WARDWATCH_OVERLAP_COMMITS": "false"}).overlap_commits is False


@pytest.mark.parametrize(
    ("env", "fragment"),
    [
        ({"WARDWATCH_PARTITIONS": "six"}, "WARDWATCH_PARTITIONS='six': expected an integer"),
        ({"WARDWATCH_PARTITIONS": "0"}, "--partitions=0"),
        ({"KAFKA_BOOTSTRAP_SERVERS": "nohostport"}, "KAFKA_BOOTSTRAP_SERVERS='nohostport'"),
        ({"WARDWATCH_LOG_LEVEL": "LOUD"}, "expected one of DEBUG"),
        ({"WARDWATCH_TOPIC_PREFIX": "a b"}, "--topic-prefix='a b'"),
    ],
)
def test_bad_values_name_the_setting(env: dict[str, str], fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        load(StreamConfig, None, env)
    assert fragment in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("stage", ["ingest", "score", "sim"])
def test_a_service_with_bad_config_stops_at_start_with_one_line(stage: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "wardwatch", stage, "--partitions", "lots"],
        capture_output=True, text=True, cwd=REPO, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}, timeout=120,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "--partitions='lots': expected an integer" in lines[0]
