"""The streaming step as the services run it: ONNX Runtime, numpy in and out, no PyTorch.

A checkpoint's `step.onnx` is `RiskModel.step` exported (inference/export.py), one reading per
row and a dynamic batch dimension B:

    inputs   state [B, S], values [B, D], mask [B, D], delta [B, D], last_values [B, D], last_mask [B, D]
    outputs  new_state [B, S], logit [B], risk [B]          (all float32; S = ModelConfig.state_size)

`OnnxStep` runs it. `inference.model.TorchStep` puts the PyTorch step behind the same
interface (`StepRuntime`): the reference the export is tested against, and the bench baseline.
"""

from __future__ import annotations

from typing import Final, Protocol

import numpy as np
import onnxruntime as ort

from inference.features import N_FEATURES
from inference.model_config import ModelConfig

INPUTS: Final = ("state", "values", "mask", "delta", "last_values", "last_mask")
OUTPUTS: Final = ("new_state", "logit", "risk")
# Keys of the ONNX metadata the export writes.
META_MODEL_VERSION: Final = "wardwatch.model_version"
META_INTERFACE: Final = "wardwatch.step_interface"
INTERFACE: Final = "1"  # bump when INPUTS/OUTPUTS change


class StepRuntime(Protocol):
    """One batched model step: each patient's state and reading in, new state and risk out."""

    runtime: str
    config: ModelConfig
    state_size: int

    def step(
        self, state: np.ndarray, values: np.ndarray, mask: np.ndarray, delta: np.ndarray, last_values: np.ndarray, last_mask: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """All float32; state [B, S], the rest [B, D]. Returns (new state [B, S], risk [B])."""
        ...


class OnnxStep:
    """The exported step on an ONNX Runtime CPU session."""

    runtime = "onnxruntime"

    def __init__(self, onnx_model: bytes, config: ModelConfig, threads: int = 1) -> None:
        """Raises ValueError (one line) if the graph does not have the interface for `config`."""
        options = ort.SessionOptions()
        # One thread by default: the model is small (a few hundred µs per batch), a thread pool's
        # hand-offs cost more than they save, and the Kafka client threads need the other core.
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Idle pool threads would otherwise spin, burning the core the Kafka clients share.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.log_severity_level = 3  # warnings from graph optimisation are not the operator's business
        try:
            self.session = ort.InferenceSession(onnx_model, options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types for a bad graph
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ValueError(f"step.onnx is not a loadable ONNX model: {first}") from None
        self.config = config
        self.state_size = config.state_size
        self.threads = threads
        self.metadata: dict[str, str] = dict(self.session.get_modelmeta().custom_metadata_map)
        self._check_interface()

    @property
    def model_version(self) -> str | None:
        """The model version the export wrote into the graph's metadata."""
        return self.metadata.get(META_MODEL_VERSION)

    def initial_state(self, batch: int) -> np.ndarray:
        return np.zeros((batch, self.state_size), dtype=np.float32)

    def step(
        self, state: np.ndarray, values: np.ndarray, mask: np.ndarray, delta: np.ndarray, last_values: np.ndarray, last_mask: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """All float32; state [B, S], the rest [B, D]. Returns (new state [B, S], risk [B])."""
        new_state, risk = self.session.run(
            ["new_state", "risk"],
            {"state": state, "values": values, "mask": mask, "delta": delta, "last_values": last_values, "last_mask": last_mask},
        )
        return new_state, risk

    def _check_interface(self) -> None:
        if self.metadata.get(META_INTERFACE) != INTERFACE:
            raise ValueError(f"step.onnx has step interface {self.metadata.get(META_INTERFACE)!r}, expected {INTERFACE!r}")
        inputs = {i.name: i.shape for i in self.session.get_inputs()}
        outputs = {o.name for o in self.session.get_outputs()}
        if tuple(inputs) != INPUTS or not set(OUTPUTS) <= outputs:
            raise ValueError(f"step.onnx has inputs {list(inputs)} and outputs {sorted(outputs)}, expected {list(INPUTS)} and {list(OUTPUTS)}")
        widths = {name: shape[1] for name, shape in inputs.items()}
        expected = {name: self.state_size if name == "state" else N_FEATURES for name in INPUTS}
        if widths != expected:
            raise ValueError(f"step.onnx input widths {widths} do not fit the config (expected {expected})")
