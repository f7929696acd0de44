"""Checkpoints: weights, normalisation, config and metrics in one directory, tied by a manifest.

Layout of a checkpoint directory:

    model.pt            state dict (weights and the mean/std buffers)
    normalisation.json  the training cohort's input means and spreads
    config.json         the ModelConfig
    metrics.json        training and validation metrics
    manifest.json       sha256 of each file above, the weight hash and the model version

`load` re-hashes every file and checks that the normalisation in model.pt equals
normalisation.json, so a checkpoint assembled from different runs fails with one line.
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from typing import Any

import torch

from inference.features import FEATURES
from inference.model import ModelConfig, RiskModel

FILES = ("model.pt", "normalisation.json", "config.json", "metrics.json")
MANIFEST = "manifest.json"
FORMAT = 1


def default_checkpoint_path() -> Path:
    """The checkpoint shipped in the repository."""
    return Path(__file__).resolve().parent / "checkpoints" / "default"


def weight_hash(model: RiskModel) -> str:
    """sha256 over the state dict's names, shapes and bytes, in name order."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        digest.update(name.encode())
        digest.update(str(tuple(t.shape)).encode())
        digest.update(t.numpy().tobytes())
    return digest.hexdigest()


def model_version(model: RiskModel) -> str:
    """`<cell>-h<hidden>-<8 hex of the weight hash>`, e.g. gru-h48-1a2b3c4d."""
    return f"{model.config.cell}-h{model.config.hidden}-{weight_hash(model)[:8]}"


def _json_bytes(obj: Any) -> bytes:
    return (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode()


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def save(path: str | Path, model: RiskModel, metrics: dict[str, Any]) -> str:
    """Write a checkpoint directory for `model`; returns its model version."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, buffer)
    version = model_version(model)
    contents = {
        "model.pt": buffer.getvalue(),
        "normalisation.json": _json_bytes(
            {"features": list(FEATURES), "mean": model.mean.cpu().tolist(), "std": model.std.cpu().tolist()}
        ),
        "config.json": _json_bytes(model.config.to_dict()),
        "metrics.json": _json_bytes(metrics),
    }
    for name, data in contents.items():
        (path / name).write_bytes(data)
    manifest = {
        "format": FORMAT,
        "model_version": version,
        "weights_sha256": weight_hash(model),
        "files": {name: _sha256(data) for name, data in contents.items()},
    }
    (path / MANIFEST).write_bytes(_json_bytes(manifest))
    return version


def load(path: str | Path) -> tuple[RiskModel, str]:
    """Load and verify a checkpoint directory; returns (model in eval mode, model version).

    Raises FileNotFoundError if the directory or a file is missing, ValueError (one line) if
    the pieces do not belong together.
    """
    path = Path(path)
    manifest_path = path / MANIFEST
    if not manifest_path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}: {MANIFEST} missing")
    manifest = json.loads(manifest_path.read_text())
    if manifest.get("format") != FORMAT:
        raise ValueError(f"checkpoint {path}: format={manifest.get('format')!r}, expected {FORMAT}")
    data: dict[str, bytes] = {}
    for name in FILES:
        file = path / name
        if not file.is_file():
            raise FileNotFoundError(f"checkpoint {path}: {name} missing")
        data[name] = file.read_bytes()
        expected = manifest.get("files", {}).get(name)
        if _sha256(data[name]) != expected:
            raise ValueError(f"checkpoint {path}: {name} does not match the manifest (sha256 differs; files from different runs?)")
    config = ModelConfig(**json.loads(data["config.json"]))
    norm = json.loads(data["normalisation.json"])
    if norm.get("features") != list(FEATURES):
        raise ValueError(f"checkpoint {path}: features={norm.get('features')}, expected {list(FEATURES)}")
    state = torch.load(io.BytesIO(data["model.pt"]), map_location="cpu", weights_only=True)
    model = RiskModel(config)
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise ValueError(f"checkpoint {path}: weights do not fit config {config.to_dict()}: {first}") from None
    for name in ("mean", "std"):
        if not torch.allclose(getattr(model, name), torch.tensor(norm[name]), rtol=0, atol=1e-6):
            raise ValueError(f"checkpoint {path}: normalisation.json {name} differs from the one in model.pt")
    if weight_hash(model) != manifest.get("weights_sha256"):
        raise ValueError(f"checkpoint {path}: weight hash differs from the manifest")
    version = model_version(model)
    if version != manifest.get("model_version"):
        raise ValueError(f"checkpoint {path}: model_version={manifest.get('model_version')!r}, weights say {version!r}")
    return model.eval(), version


def load_default() -> tuple[RiskModel, str]:
    """The shipped checkpoint; FileNotFoundError (callers fall back to `untrained()`) if absent."""
    return load(default_checkpoint_path())


def load_metrics(path: str | Path) -> dict[str, Any]:
    """metrics.json of a checkpoint directory (training record: sources, split rule, calibration)."""
    return json.loads((Path(path) / "metrics.json").read_text())
