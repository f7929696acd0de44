"""The services run on numpy + ONNX Runtime alone: PyTorch (and onnx) made unimportable in a child.

A `sitecustomize.py` on the child's PYTHONPATH puts a finder first on `sys.meta_path` that
refuses `torch` and `onnx` (both training dependencies) as if they were not installed. The
child then scores readings the way `wardwatch score` does, and the parent, which has PyTorch,
checks the result against the PyTorch step within the equivalence contract.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from inference import checkpoint
from inference.model import TorchStep
from inference.processor import ScorerProcessor
from ingest import encode_reading
from runtime.metrics import StreamMetrics, new_registry
from runtime.records import InRecord
from runtime.topics import RISK, VITALS
from tests.support.equivalence import assert_same_risks
from tests.test_scorer import make_readings

REPO = Path(__file__).resolve().parents[1]

BLOCKER = '''
import sys

BLOCKED = ("torch", "onnx")


class TrainingPackagesAbsent:
    """Import `torch`/`onnx` (and their submodules) fails as on a serving-only install."""

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, TrainingPackagesAbsent())
'''

# Fails loudly if the blocker is not in effect, so the test cannot pass by accident.
PREAMBLE = """
import sys
try:
    import torch
except ModuleNotFoundError:
    pass
else:
    raise SystemExit("blocker not active: torch imported")
"""

SCORE = PREAMBLE + """
import json
from inference.service import ScoreConfig, build_scorer, load_model
from runtime.metrics import StreamMetrics, new_registry
from runtime.records import InRecord
from runtime.topics import RISK, VITALS

lines = open(sys.argv[1], "rb").read().splitlines()
config = ScoreConfig(metrics_port=-1)
model, version = load_model(config.checkpoint, config.model_threads)
scorer = build_scorer(config, StreamMetrics(new_registry(), "score"), model, version)
items = [InRecord(VITALS, 0, i, None, line, 0) for i, line in enumerate(lines)]
out = []
for i in range(0, len(items), 37):  # poll-sized batches, not the whole input at once
    out.extend(r.value.decode() for r in scorer.process(items[i : i + 37]) if r.topic == RISK)
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "onnx"))
print(json.dumps({"runtime": model.runtime, "version": version, "risk": out, "heavy_modules": heavy}))
"""


@pytest.fixture(scope="module")
def no_torch_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    blocker = tmp_path_factory.mktemp("blocker")
    (blocker / "sitecustomize.py").write_text(BLOCKER)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = os.pathsep.join([str(blocker), str(REPO)])
    return env


def run_child(args: list[str], env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)


def test_the_blocker_really_hides_torch(no_torch_env: dict[str, str]) -> None:
    child = run_child(["-c", "import torch"], no_torch_env)
    assert child.returncode == 1 and "No module named 'torch'" in child.stderr


def by_key(lines: list[str]) -> dict[tuple[str, int], dict]:
    records = [json.loads(line) for line in lines]
    return {(r["patient_id"], r["seq"]): r for r in records}


def torch_reference(lines: list[bytes]) -> list[str]:
    """The same readings through the same scorer with the PyTorch step of the shipped checkpoint."""
    model, version = checkpoint.load_default()
    scorer = ScorerProcessor(TorchStep(model), version, StreamMetrics(new_registry(), "score"))
    items = [InRecord(VITALS, 0, i, None, line, 0) for i, line in enumerate(lines)]
    return [r.value.decode() for r in scorer.process(items) if r.topic == RISK]


def test_the_scorer_scores_with_onnxruntime_and_no_torch_equal_to_the_torch_step(
    no_torch_env: dict[str, str], tmp_path: Path
) -> None:
    lines = [encode_reading(r) for r in make_readings(patients=5, steps=25, seed=11)]
    vitals = tmp_path / "vitals.jsonl"
    vitals.write_bytes(b"\n".join(lines) + b"\n")
    child = run_child(["-c", SCORE, str(vitals)], no_torch_env)
    assert child.returncode == 0, child.stderr[-2000:]
    result = json.loads(child.stdout.strip().splitlines()[-1])
    assert result["runtime"] == "onnxruntime" and result["heavy_modules"] == []

    got, expected = by_key(result["risk"]), by_key(torch_reference(lines))
    assert len(result["risk"]) == len(lines) == len(got)
    assert_same_risks({k: r["risk"] for k, r in got.items()}, {k: r["risk"] for k, r in expected.items()})
    strip = lambda r: {k: v for k, v in r.items() if k != "risk"}  # noqa: E731 - everything else exact
    assert {k: strip(r) for k, r in got.items()} == {k: strip(r) for k, r in expected.items()}
    assert {r["model"] for r in got.values()} == {result["version"]} == {checkpoint.load_step(checkpoint.default_checkpoint_path())[1]}


def test_wardwatch_score_in_file_mode_runs_without_torch(no_torch_env: dict[str, str], tmp_path: Path) -> None:
    lines = [encode_reading(r) for r in make_readings(patients=3, steps=10, seed=2)]
    vitals, risk = tmp_path / "vitals.jsonl", tmp_path / "risk.jsonl"
    vitals.write_bytes(b"\n".join(lines) + b"\n")
    child = run_child(["-m", "wardwatch", "score", "--input", str(vitals), "--output", str(risk)], no_torch_env)
    assert child.returncode == 0, child.stderr[-2000:]
    got = by_key(risk.read_text().splitlines())
    expected = by_key(torch_reference(lines))
    assert_same_risks({k: r["risk"] for k, r in got.items()}, {k: r["risk"] for k, r in expected.items()})


SERVING_COMMANDS = ["score", "ingest", "gateway", "alerts", "sim", "wardview", "demo", "broker", "evaluate-alerts"]


def test_the_cli_and_every_serving_command_load_without_torch(no_torch_env: dict[str, str]) -> None:
    top = run_child(["-m", "wardwatch", "--help"], no_torch_env)
    assert top.returncode == 0, top.stderr[-2000:]
    for name in [*SERVING_COMMANDS, "train", "evaluate"]:
        assert f"\n    {name} " in top.stdout or f"\n    {name}\n" in top.stdout, f"{name} missing from --help"
    for name in SERVING_COMMANDS:
        child = run_child(["-m", "wardwatch", name, "--help"], no_torch_env)
        assert child.returncode == 0, f"wardwatch {name} --help: {child.stderr[-2000:]}"


@pytest.mark.parametrize("command", ["train", "evaluate"])
def test_training_commands_without_torch_say_what_is_missing_in_one_line(no_torch_env: dict[str, str], command: str) -> None:
    child = run_child(["-m", "wardwatch", command, "--help"], no_torch_env)
    assert child.returncode == 2
    assert child.stderr.strip().splitlines() == [
        f"wardwatch {command}: needs the training dependencies (torch is not installed): pip install 'wardwatch[train]'"
    ]


def test_untrained_weights_without_torch_are_a_configuration_error(no_torch_env: dict[str, str], tmp_path: Path) -> None:
    vitals = tmp_path / "vitals.jsonl"
    vitals.write_bytes(b"")
    child = run_child(
        ["-m", "wardwatch", "score", "--checkpoint", "untrained", "--input", str(vitals), "--output", str(tmp_path / "r.jsonl")],
        no_torch_env,
    )
    assert child.returncode == 2
    assert child.stderr.strip().splitlines()[-1].startswith("wardwatch score: configuration error: untrained weights are made with PyTorch")
