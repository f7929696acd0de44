"""The exported step (ONNX Runtime) equals the PyTorch step within the contract; checkpoints carry it.

The contract (tests/support/equivalence.py): risk equal within 1e-5 absolute across runtimes.
Sequences have what the wards have: missing vitals, irregular time deltas, gaps of hours and
one longer than the 24 h delta cap; GRU and LSTM, with and without running means; one patient
at a time (batch 1) and many patients batched the way the scorer batches them.
"""

from __future__ import annotations

import json
import random
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from inference import checkpoint
from inference.export import export_step
from inference.features import SequenceInputs, sequence_inputs
from inference.model import ModelConfig, RiskModel, TorchStep
from inference.service import load_model
from inference.step import OnnxStep
from ingest import Reading
from runtime.config import ConfigError
from tests.support.equivalence import RISK_ABS_TOLERANCE
from tests.test_scorer import make_readings

HOUR = 3_600_000
CONFIGS = [
    ModelConfig("gru", 16),
    ModelConfig("gru", 24, trend_hours=(0.5, 2.0, 8.0)),
    ModelConfig("lstm", 16),
    ModelConfig("lstm", 12, trend_hours=(1.0, 6.0)),
]


def trained_like(config: ModelConfig, seed: int = 3) -> RiskModel:
    """Random but not-initial weights and a non-default normalisation: every gate and decay in play."""
    torch.manual_seed(seed)
    mean = torch.tensor([85.0, 18.0, 95.0, 37.2, 120.0, 70.0, 0.2, 0.1])
    std = torch.tensor([14.0, 5.0, 3.5, 0.8, 22.0, 11.0, 0.4, 0.3])
    model = RiskModel(config, mean, std)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return model.eval()


def ward_sequences(patients: int = 24, steps: int = 50) -> list[SequenceInputs]:
    """Irregular readings with missing vitals and gaps up to 3 h, and a few longer than a day."""
    readings = make_readings(patients=patients, steps=steps, seed=17)
    rng = random.Random(5)
    by_patient: dict[str, list[Reading]] = {}
    for r in readings:
        by_patient.setdefault(r.patient_id, []).append(r)
    sequences = []
    for i, mine in enumerate(by_patient.values()):
        if i % 4 == 0:  # a gap of 30 h somewhere: beyond the delta cap and every running mean's time constant
            cut = rng.randrange(5, len(mine) - 5)
            mine = mine[:cut] + [replace(r, ts_ms=r.ts_ms + 30 * HOUR) for r in mine[cut:]]
        if i % 6 == 1:
            mine = mine[: rng.randrange(3, 15)]  # short stays: patients leave the batch early
        sequences.append(sequence_inputs(mine))
    return sequences


def torch_risks(model: RiskModel, x: SequenceInputs) -> np.ndarray:
    """The reference: PyTorch over the whole sequence at once."""
    tensors = [torch.from_numpy(a).unsqueeze(0) for a in (x.values, x.mask, x.delta_hours, x.last_values, x.last_mask)]
    with torch.no_grad():
        logits, _ = model.forward_sequence(*tensors)
    return torch.sigmoid(logits[0]).numpy()


def stream_batched(step: OnnxStep | TorchStep, sequences: list[SequenceInputs]) -> list[np.ndarray]:
    """As the scorer does: round t steps every patient that has a t-th reading, in one call, with its state rows."""
    state = np.zeros((len(sequences), step.state_size), dtype=np.float32)
    risks = [np.zeros(len(x.values), dtype=np.float32) for x in sequences]
    for t in range(max(len(x.values) for x in sequences)):
        rows = np.array([i for i, x in enumerate(sequences) if t < len(x.values)])
        pick = lambda name, t=t, rows=rows: np.stack([getattr(sequences[i], name)[t] for i in rows])  # noqa: E731
        new_state, risk = step.step(state[rows], pick("values"), pick("mask"), pick("delta_hours"), pick("last_values"), pick("last_mask"))
        state[rows] = new_state
        for j, i in enumerate(rows):
            risks[i][t] = risk[j]
    return risks


@pytest.fixture(scope="module")
def sequences() -> list[SequenceInputs]:
    return ward_sequences()


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: f"{c.cell}-trends{len(c.trend_hours)}")
def test_exported_step_equals_the_torch_step_one_patient_at_a_time(config: ModelConfig, sequences) -> None:
    model = trained_like(config)
    step = OnnxStep(export_step(model, "test"), config)
    for x in sequences:
        expected = torch_risks(model, x)
        state = step.initial_state(1)
        for t in range(len(x.values)):
            state, risk = step.step(state, x.values[t : t + 1], x.mask[t : t + 1], x.delta_hours[t : t + 1], x.last_values[t : t + 1], x.last_mask[t : t + 1])
            assert risk.shape == (1,)
            assert abs(float(risk[0]) - float(expected[t])) <= RISK_ABS_TOLERANCE, f"step {t} of {len(x.values)}"


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: f"{c.cell}-trends{len(c.trend_hours)}")
def test_exported_step_equals_the_torch_step_with_many_patients_batched(config: ModelConfig, sequences) -> None:
    model = trained_like(config)
    step = OnnxStep(export_step(model, "test"), config)
    onnx_risks = stream_batched(step, sequences)
    torch_batched = stream_batched(TorchStep(model), sequences)
    for x, got, batched in zip(sequences, onnx_risks, torch_batched):
        expected = torch_risks(model, x)
        np.testing.assert_allclose(got, expected, rtol=0, atol=RISK_ABS_TOLERANCE)
        np.testing.assert_allclose(batched, expected, rtol=0, atol=RISK_ABS_TOLERANCE)


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_the_batch_dimension_is_dynamic_and_state_comes_out_as_the_torch_step_s(cell: str) -> None:
    config = ModelConfig(cell, 16, trend_hours=(1.0,))
    model = trained_like(config)
    step = OnnxStep(export_step(model, "test"), config)
    rng = np.random.default_rng(0)
    for batch in (1, 2, 7, 300, 2048):
        state = rng.standard_normal((batch, config.state_size), dtype=np.float32)
        values = rng.uniform(30, 130, (batch, 8)).astype(np.float32)
        mask = (rng.random((batch, 8)) < 0.6).astype(np.float32)
        delta = rng.uniform(0, 24, (batch, 8)).astype(np.float32)
        last_values = rng.uniform(30, 130, (batch, 8)).astype(np.float32)
        last_mask = (rng.random((batch, 8)) < 0.8).astype(np.float32)
        got_state, got_risk = step.step(state, values, mask, delta, last_values, last_mask)
        want_state, want_risk = TorchStep(model).step(state, values, mask, delta, last_values, last_mask)
        assert got_state.shape == (batch, config.state_size) and got_risk.shape == (batch,)
        assert got_state.dtype == np.float32 and got_risk.dtype == np.float32
        np.testing.assert_allclose(got_risk, want_risk, rtol=0, atol=RISK_ABS_TOLERANCE)
        np.testing.assert_allclose(got_state, want_state, rtol=1e-4, atol=1e-4)


def test_the_shipped_checkpoint_s_step_equals_its_weights(sequences) -> None:
    model, version = checkpoint.load_default()
    step, step_version = checkpoint.load_step(checkpoint.default_checkpoint_path())
    assert step_version == version == step.model_version
    for x, got in zip(sequences, stream_batched(step, sequences)):
        np.testing.assert_allclose(got, torch_risks(model, x), rtol=0, atol=RISK_ABS_TOLERANCE)


# -- the checkpoint carries the step ----------------------------------------------------------------
def save(path: Path, config: ModelConfig = CONFIGS[3], seed: int = 3) -> str:
    return checkpoint.save(path, trained_like(config, seed), {"note": "test"})


def test_saving_a_checkpoint_exports_its_step(tmp_path: Path, sequences) -> None:
    version = save(tmp_path / "ck")
    manifest = json.loads((tmp_path / "ck" / "manifest.json").read_text())
    assert manifest["format"] == 2 and set(manifest["files"]) == set(checkpoint.FILES)
    step, loaded_version = checkpoint.load_step(tmp_path / "ck")
    model, _ = checkpoint.load(tmp_path / "ck")
    assert loaded_version == version == step.model_version and step.config == model.config
    for x, got in zip(sequences[:6], stream_batched(step, sequences[:6])):
        np.testing.assert_allclose(got, torch_risks(model, x), rtol=0, atol=RISK_ABS_TOLERANCE)


@pytest.mark.parametrize("loader", [checkpoint.load, checkpoint.load_step])
def test_a_missing_step_is_a_one_line_error_not_a_missing_checkpoint(tmp_path: Path, loader) -> None:
    save(tmp_path / "ck")
    (tmp_path / "ck" / "step.onnx").unlink()
    with pytest.raises(checkpoint.CheckpointError) as error:  # not FileNotFoundError: no fallback to untrained weights
        loader(tmp_path / "ck")
    message = str(error.value)
    assert "\n" not in message and "step.onnx missing" in message and "python -m inference.checkpoint export" in message


@pytest.mark.parametrize("loader", [checkpoint.load, checkpoint.load_step])
def test_a_step_from_another_run_is_refused(tmp_path: Path, loader) -> None:
    save(tmp_path / "a")
    save(tmp_path / "b", seed=4)
    (tmp_path / "a" / "step.onnx").write_bytes((tmp_path / "b" / "step.onnx").read_bytes())
    with pytest.raises(ValueError, match=r"^checkpoint .*: step\.onnx does not match the manifest \(sha256 differs"):
        loader(tmp_path / "a")


def test_a_step_from_another_run_with_the_manifest_rehashed_is_still_refused(tmp_path: Path) -> None:
    save(tmp_path / "a")
    other = save(tmp_path / "b", seed=4)
    step_path = tmp_path / "a" / "step.onnx"
    step_path.write_bytes((tmp_path / "b" / "step.onnx").read_bytes())
    manifest_path = tmp_path / "a" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["files"]["step.onnx"] = checkpoint._sha256(step_path.read_bytes())
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match=f"exported from model '{other}'"):
        checkpoint.load_step(tmp_path / "a")


def test_the_service_reports_a_bad_step_as_a_configuration_error(tmp_path: Path) -> None:
    save(tmp_path / "ck")
    (tmp_path / "ck" / "step.onnx").write_bytes(b"not onnx")
    with pytest.raises(ConfigError, match=r"step\.onnx does not match the manifest"):
        load_model(str(tmp_path / "ck"))


def test_a_format_1_checkpoint_is_refused_until_exported_then_serves(tmp_path: Path, sequences) -> None:
    path = tmp_path / "old"
    version = save(path)
    (path / "step.onnx").unlink()  # what format 1 was: no step, and a manifest that does not list one
    manifest = json.loads((path / "manifest.json").read_text())
    manifest["format"] = 1
    del manifest["files"]["step.onnx"]
    (path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(checkpoint.CheckpointError, match=r"format 1 has no step\.onnx; export it with"):
        checkpoint.load_step(path)

    assert checkpoint.main(["export", str(path)]) == 0
    step, loaded_version = checkpoint.load_step(path)
    assert loaded_version == version and json.loads((path / "manifest.json").read_text())["format"] == 2
    model, _ = checkpoint.load(path)
    for x, got in zip(sequences[:4], stream_batched(step, sequences[:4])):
        np.testing.assert_allclose(got, torch_risks(model, x), rtol=0, atol=RISK_ABS_TOLERANCE)


def test_export_refuses_a_checkpoint_whose_weights_do_not_match_its_manifest(tmp_path: Path) -> None:
    save(tmp_path / "a")
    save(tmp_path / "b", seed=4)
    (tmp_path / "a" / "model.pt").write_bytes((tmp_path / "b" / "model.pt").read_bytes())
    before = (tmp_path / "a" / "step.onnx").read_bytes()
    assert checkpoint.main(["export", str(tmp_path / "a")]) == 2
    assert (tmp_path / "a" / "step.onnx").read_bytes() == before
