"""Checkpoints: weights, the exported step, normalisation, config and metrics in one directory, tied by a manifest.

Layout of a checkpoint directory (format 2):

    model.pt            state dict (weights and the mean/std buffers): training and evaluation
    step.onnx           `RiskModel.step` exported to ONNX (inference/export.py): what the services
                        run, with ONNX Runtime and no PyTorch; its metadata names the model version
    normalisation.json  the training cohort's input means and spreads
    config.json         the ModelConfig
    metrics.json        training and validation metrics
    manifest.json       sha256 of each file above, the weight hash and the model version

Format 1 was the same without step.onnx; `python -m inference.checkpoint export DIR` exports
the step of an existing checkpoint (either format) from its model.pt and rewrites the manifest.

Two loaders, both re-hashing every file against the manifest, so a checkpoint assembled from
different runs fails with one line:
- `load` (PyTorch): the RiskModel, also checking that the normalisation in model.pt equals
  normalisation.json and that the weights hash to the manifest's model version.
- `load_step` (numpy + ONNX Runtime, the services): the step, also checking that step.onnx
  names the manifest's model version and takes the config's state size.
PyTorch is imported inside the functions that need it, so the services import this module without it.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from inference.features import FEATURES
from inference.model_config import ModelConfig
from inference.step import OnnxStep

if TYPE_CHECKING:
    from inference.model import RiskModel

STEP = "step.onnx"
FILES = ("model.pt", STEP, "normalisation.json", "config.json", "metrics.json")
MANIFEST = "manifest.json"
FORMAT = 2


class CheckpointError(ValueError):
    """A checkpoint whose pieces do not belong together (one-line message)."""


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


def _write_manifest(path: Path, version: str, weights_sha256: str, contents: dict[str, bytes]) -> None:
    manifest = {
        "format": FORMAT,
        "model_version": version,
        "weights_sha256": weights_sha256,
        "files": {name: _sha256(contents[name]) for name in FILES},
    }
    (path / MANIFEST).write_bytes(_json_bytes(manifest))


def save(path: str | Path, model: RiskModel, metrics: dict[str, Any]) -> str:
    """Write a checkpoint directory for `model`, its exported step included; returns its model version."""
    import torch

    from inference.export import export_step

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, buffer)
    version = model_version(model)
    contents = {
        "model.pt": buffer.getvalue(),
        STEP: export_step(model, version),
        "normalisation.json": _json_bytes(
            {"features": list(FEATURES), "mean": model.mean.cpu().tolist(), "std": model.std.cpu().tolist()}
        ),
        "config.json": _json_bytes(model.config.to_dict()),
        "metrics.json": _json_bytes(metrics),
    }
    for name, data in contents.items():
        (path / name).write_bytes(data)
    _write_manifest(path, version, weight_hash(model), contents)  # last: it is what ties the files together
    return version


def _verified(path: Path, *, step_required: bool = True) -> tuple[dict[str, Any], dict[str, bytes]]:
    """The manifest and every file's bytes, each checked against the manifest's sha256.

    FileNotFoundError if there is no checkpoint (no manifest) at all; CheckpointError for
    anything else, a listed file missing included: a half-copied checkpoint is not "none".
    With `step_required=False` (re-export), a format-1 checkpoint or a missing or stale
    step.onnx is accepted and step.onnx is left out of the result.
    """
    manifest_path = path / MANIFEST
    if not manifest_path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}: {MANIFEST} missing")
    manifest = json.loads(manifest_path.read_text())
    fmt = manifest.get("format")
    if fmt == 1 and not step_required:
        pass
    elif fmt == 1:
        raise CheckpointError(f"checkpoint {path}: format 1 has no {STEP}; export it with `python -m inference.checkpoint export {path}`")
    elif fmt != FORMAT:
        raise CheckpointError(f"checkpoint {path}: format={fmt!r}, expected {FORMAT}")
    data: dict[str, bytes] = {}
    for name in FILES:
        if name == STEP and not step_required:
            continue
        file = path / name
        if not file.is_file():
            hint = f"; export it with `python -m inference.checkpoint export {path}`" if name == STEP else ""
            raise CheckpointError(f"checkpoint {path}: {name} missing{hint}")
        data[name] = file.read_bytes()
        if _sha256(data[name]) != manifest.get("files", {}).get(name):
            raise CheckpointError(f"checkpoint {path}: {name} does not match the manifest (sha256 differs; files from different runs?)")
    return manifest, data


def _config(path: Path, data: dict[str, bytes]) -> ModelConfig:
    try:
        config = ModelConfig(**json.loads(data["config.json"]))
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"checkpoint {path}: config.json: {exc}") from None
    norm = json.loads(data["normalisation.json"])
    if norm.get("features") != list(FEATURES):
        raise CheckpointError(f"checkpoint {path}: features={norm.get('features')}, expected {list(FEATURES)}")
    return config


def load_step(path: str | Path, threads: int = 1) -> tuple[OnnxStep, str]:
    """Load and verify a checkpoint's exported step for serving (no PyTorch); returns (step, model version).

    FileNotFoundError if there is no checkpoint at `path`, CheckpointError (a ValueError, one
    line) if the pieces do not belong together. model.pt is hash-checked but not read.
    """
    path = Path(path)
    manifest, data = _verified(path)
    config = _config(path, data)
    try:
        step = OnnxStep(data[STEP], config, threads)
    except ValueError as exc:
        raise CheckpointError(f"checkpoint {path}: {exc}") from None
    version = manifest.get("model_version")
    if step.model_version != version:
        raise CheckpointError(f"checkpoint {path}: {STEP} was exported from model {step.model_version!r}, the manifest says {version!r}")
    return step, str(version)


def _load(path: Path, *, step_required: bool) -> tuple[RiskModel, str]:
    import torch

    from inference.model import RiskModel

    manifest, data = _verified(path, step_required=step_required)
    config = _config(path, data)
    norm = json.loads(data["normalisation.json"])
    state = torch.load(io.BytesIO(data["model.pt"]), map_location="cpu", weights_only=True)
    model = RiskModel(config)
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise CheckpointError(f"checkpoint {path}: weights do not fit config {config.to_dict()}: {first}") from None
    for name in ("mean", "std"):
        if not torch.allclose(getattr(model, name), torch.tensor(norm[name]), rtol=0, atol=1e-6):
            raise CheckpointError(f"checkpoint {path}: normalisation.json {name} differs from the one in model.pt")
    if weight_hash(model) != manifest.get("weights_sha256"):
        raise CheckpointError(f"checkpoint {path}: weight hash differs from the manifest")
    version = model_version(model)
    if version != manifest.get("model_version"):
        raise CheckpointError(f"checkpoint {path}: model_version={manifest.get('model_version')!r}, weights say {version!r}")
    return model.eval(), version


def load(path: str | Path) -> tuple[RiskModel, str]:
    """Load and verify a checkpoint directory with PyTorch; returns (model in eval mode, model version).

    Raises FileNotFoundError if there is no checkpoint at `path`, CheckpointError (a ValueError,
    one line) if the pieces do not belong together.
    """
    return _load(Path(path), step_required=True)


def load_default() -> tuple[RiskModel, str]:
    """The shipped checkpoint; FileNotFoundError (callers fall back to `untrained()`) if absent."""
    return load(default_checkpoint_path())


def load_metrics(path: str | Path) -> dict[str, Any]:
    """metrics.json of a checkpoint directory (training record: sources, split rule, calibration)."""
    return json.loads((Path(path) / "metrics.json").read_text())


def export(path: str | Path) -> str:
    """(Re-)export step.onnx of an existing checkpoint from its model.pt and rewrite the manifest at format 2.

    Every other file is verified against the old manifest first and left as it is; returns the model version.
    """
    from inference.export import export_step

    path = Path(path)
    model, version = _load(path, step_required=False)
    contents = {name: (path / name).read_bytes() for name in FILES if name != STEP}
    contents[STEP] = export_step(model, version)
    (path / STEP).write_bytes(contents[STEP])
    _write_manifest(path, version, weight_hash(model), contents)
    return version


def main(argv: list[str] | None = None) -> int:
    """`python -m inference.checkpoint export [DIR]`: export the step of a checkpoint (the shipped one by default)."""
    parser = argparse.ArgumentParser(prog="python -m inference.checkpoint", description=main.__doc__)
    sub = parser.add_subparsers(dest="action", required=True)
    p = sub.add_parser("export", help="export step.onnx from model.pt and rewrite the manifest")
    p.add_argument("path", nargs="?", type=Path, default=default_checkpoint_path(), help="checkpoint directory")
    args = parser.parse_args(argv)
    try:
        version = export(args.path)
    except (FileNotFoundError, ValueError) as exc:
        print(f"cannot export: {exc}", file=sys.stderr)
        return 2
    print(f"exported {args.path / STEP} for model {version}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
