"""A short soak (bench/soak.py) in CI: the whole pipeline through a handful of seeded real
faults, then nothing lost, nothing doubled, and every stage's output equal to its offline run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.kafka

REPO = Path(__file__).resolve().parents[1]
STAGES = ("ingest", "score", "alerts")


def test_a_short_soak_loses_and_doubles_nothing(tmp_path: Path) -> None:
    """Seed 27 draws a broker restart, connection resets and a cut, a zombie, a pause past the
    transaction and session timeouts and a SIGKILL, over all three stages, in its first six."""
    # Its own broker and proxies, in its own process: the soak sets that process's Kafka login,
    # so none of the test session's is passed on.
    login = ("KAFKA_BOOTSTRAP_SERVERS", "WARDWATCH_SECURITY_", "WARDWATCH_SSL_", "WARDWATCH_SASL_", "WARDWATCH_KAFKA_PASSWORD")
    env = {k: v for k, v in os.environ.items() if not k.startswith(login)}
    env["PYTHONPATH"] = str(REPO)
    done = subprocess.run(
        [sys.executable, "-m", "bench.soak", "--minutes", "3", "--seed", "27", "--fault-every", "22", "--results", str(tmp_path)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=900,
    )
    assert (tmp_path / "soak.json").exists(), done.stderr[-3000:]
    result = json.loads((tmp_path / "soak.json").read_text())
    a = result["accounting"]
    assert {f["kind"] for f in result["faults"]} >= {"broker_restart", "zombie", "pause", "kill", "network_cut"}
    assert a["sent"] == result["feeder_sent"] > 0
    assert a["valid"] > 0 and a["rejected"] > 0 and a["scored"] == a["valid"] and a["alerts"] > 0
    assert a["lost"] == dict.fromkeys(STAGES, 0), a
    assert a["duplicated"] == dict.fromkeys(STAGES, 0), a
    assert a["equal"] == dict.fromkeys(STAGES, True), a
    for fault in result["faults"]:
        assert not fault["note"].startswith("FAILED"), fault
        assert all(v is not None for v in fault["recovery_s"].values()), fault
    assert all(result["alive_at_end"].values()), result["alive_at_end"]
    assert done.returncode == 0, done.stderr[-3000:]
