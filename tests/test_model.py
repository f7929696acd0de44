"""The risk model streams: one reading at a time equals the whole sequence; checkpoints verify."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from inference import checkpoint
from inference.dataset import cohort_series, make_cohort, pad
from inference.model import ModelConfig, RiskModel, untrained


@pytest.fixture(scope="module")
def cohort_tensors():
    """Four simulated patients of uneven length (deteriorating ones are cut at their event)."""
    _, cohort = make_cohort(patients=4, hours=2.0, seed=7, deteriorating_fraction=0.5)
    series = cohort_series(cohort, horizon_hours=6.0)
    return series, pad(series)


def trained_like(cell: str, trend_hours: tuple[float, ...] = (0.5, 4.0)) -> RiskModel:
    """Random but not-initial weights, so decays and gates are all exercised."""
    torch.manual_seed(3)
    model = RiskModel(ModelConfig(cell=cell, hidden=16, trend_hours=trend_hours))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return model.eval()


@pytest.mark.parametrize("cell", ["gru", "lstm"])
@pytest.mark.parametrize("trend_hours", [(), (0.5, 4.0)])
def test_streaming_one_patient_at_a_time_equals_forward_sequence(cell: str, trend_hours: tuple[float, ...], cohort_tensors) -> None:
    series, p = cohort_tensors
    model = trained_like(cell, trend_hours)
    with torch.no_grad():
        whole, _ = model.forward_sequence(p.values, p.mask, p.delta, p.last_values, p.last_mask)
        for i, s in enumerate(series):
            state = model.initial_state(1)
            for t in range(len(s)):
                row = slice(i, i + 1)
                state, logit = model.step(state, p.values[row, t], p.mask[row, t], p.delta[row, t], p.last_values[row, t], p.last_mask[row, t])
                assert abs(float(logit) - float(whole[i, t])) < 1e-5


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_streaming_several_patients_batched_as_the_scorer_does_equals_forward_sequence(cell: str, cohort_tensors) -> None:
    # The scorer steps whichever patients have a reading in a round, in one batched call, with
    # their own rows of a state table; patients drop out of rounds as their stays end.
    series, p = cohort_tensors
    model = trained_like(cell)
    lengths = [len(s) for s in series]
    table = model.initial_state(len(series))
    with torch.no_grad():
        whole, _ = model.forward_sequence(p.values, p.mask, p.delta, p.last_values, p.last_mask)
        for t in range(max(lengths)):
            rows = torch.tensor([i for i, n in enumerate(lengths) if t < n])
            state, logits = model.step(
                table.index_select(0, rows), p.values[rows, t], p.mask[rows, t], p.delta[rows, t], p.last_values[rows, t], p.last_mask[rows, t]
            )
            table.index_copy_(0, rows, state)
            torch.testing.assert_close(logits, whole[rows, t], rtol=0, atol=1e-5)


def test_forward_sequence_in_chunks_with_carried_state_equals_one_pass(cohort_tensors) -> None:
    _, p = cohort_tensors
    model = trained_like("gru")
    with torch.no_grad():
        whole, final = model.forward_sequence(p.values, p.mask, p.delta, p.last_values, p.last_mask)
        state, parts = None, []
        for chunk in p.chunks(17):
            logits, state = model.forward_sequence(chunk.values, chunk.mask, chunk.delta, chunk.last_values, chunk.last_mask, state)
            parts.append(logits)
    torch.testing.assert_close(torch.cat(parts, dim=1), whole[:, : sum(x.shape[1] for x in parts)], rtol=0, atol=1e-5)


def test_state_size_matches_cell_and_running_means() -> None:
    assert RiskModel(ModelConfig("gru", 16)).initial_state(3).shape == (3, 16)
    assert RiskModel(ModelConfig("lstm", 16)).initial_state(3).shape == (3, 32)
    assert RiskModel(ModelConfig("gru", 16, trend_hours=(1.0, 8.0))).state_size == 16 + 2 * 8


def save_untrained(path: Path, seed: int) -> str:
    return checkpoint.save(path, untrained(seed), {"note": f"seed {seed}"})


def test_checkpoint_round_trip_keeps_weights_normalisation_and_version(tmp_path: Path, cohort_tensors) -> None:
    _, p = cohort_tensors
    mean, std = torch.arange(1.0, 9.0), torch.full((8,), 2.0)
    original = RiskModel(ModelConfig("lstm", 12, 4.0, (1.0, 6.0)), mean, std).eval()
    version = checkpoint.save(tmp_path / "ck", original, {"val": 1})
    loaded, loaded_version = checkpoint.load(tmp_path / "ck")
    assert loaded_version == version and version.startswith("lstm-h12-") and len(version.split("-")[-1]) == 8
    assert loaded.config == original.config
    torch.testing.assert_close(loaded.mean, mean)
    with torch.no_grad():
        a, _ = original.forward_sequence(p.values, p.mask, p.delta, p.last_values, p.last_mask)
        b, _ = loaded.forward_sequence(p.values, p.mask, p.delta, p.last_values, p.last_mask)
    torch.testing.assert_close(a, b, rtol=0, atol=0)


@pytest.mark.parametrize("piece", ["model.pt", "step.onnx", "normalisation.json", "config.json", "metrics.json"])
def test_checkpoint_assembled_from_two_runs_is_refused(tmp_path: Path, piece: str) -> None:
    save_untrained(tmp_path / "a", 0)
    b = tmp_path / "b"
    checkpoint.save(b, RiskModel(ModelConfig("gru", 32), torch.ones(8), torch.ones(8)), {"note": "other"})
    (tmp_path / "a" / piece).write_bytes((b / piece).read_bytes())
    with pytest.raises(ValueError, match=piece.replace(".", r"\.")):
        checkpoint.load(tmp_path / "a")


def test_checkpoint_with_rehashed_but_inconsistent_normalisation_is_refused(tmp_path: Path) -> None:
    save_untrained(tmp_path / "a", 0)
    norm_path = tmp_path / "a" / "normalisation.json"
    norm = json.loads(norm_path.read_text())
    norm["mean"][0] += 1.0
    norm_path.write_text(json.dumps(norm))
    manifest_path = tmp_path / "a" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["files"]["normalisation.json"] = checkpoint._sha256(norm_path.read_bytes())
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="normalisation"):
        checkpoint.load(tmp_path / "a")


def test_missing_checkpoint_is_file_not_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(FileNotFoundError):
        checkpoint.load(tmp_path / "nowhere")
    monkeypatch.setattr(checkpoint, "default_checkpoint_path", lambda: tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError):
        checkpoint.load_default()


def test_shipped_checkpoint_loads_and_names_itself() -> None:
    path = checkpoint.default_checkpoint_path()
    if not (path / "manifest.json").exists():
        pytest.fail(f"no shipped checkpoint at {path}: run `wardwatch train`")
    model, version = checkpoint.load_default()
    assert version.startswith(f"{model.config.cell}-h{model.config.hidden}-")
    assert (path / "model.pt").stat().st_size < 1_000_000
