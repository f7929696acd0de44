"""The risk model: a recurrent network over irregularly sampled vitals (GRU-D style).

Per step it sees each input's value, whether it was observed (mask) and how long ago it was
last seen (delta). Missing inputs decay from their last value towards the population mean,
and the hidden state decays with elapsed time before the recurrent update (Che et al. 2018).
Optionally (`trend_hours`) the state also keeps per-input running means over a few time
constants, and each step sees how far the new value is from them: its trend, and its
distance from the patient's own baseline. The cell is a GRU by default or an LSTM; both
stream through the same interface:

    state = model.initial_state(batch)
    state, logit = model.step(state, values, mask, delta, last_values, last_mask)

`forward_sequence` runs the same `step` over a whole sequence, which is what makes streaming
one reading at a time equal to scoring the sequence at once.

PyTorch is for training and evaluation: the services run the same step exported to ONNX
(inference/export.py, inference/step.py). `TorchStep` is this step behind the services'
numpy interface, the reference the export is tested and benchmarked against.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from inference.features import MAX_DELTA_HOURS, N_FEATURES
from inference.model_config import ModelConfig

__all__ = ["DEFAULT_MEAN", "DEFAULT_STD", "ModelConfig", "RiskModel", "TorchStep", "risk_from_logit", "untrained"]

# Population means and spreads of the inputs (adult ward), replaced by the training cohort's.
DEFAULT_MEAN = (80.0, 16.0, 96.0, 37.0, 125.0, 75.0, 0.1, 0.05)
DEFAULT_STD = (15.0, 4.0, 3.0, 0.7, 20.0, 12.0, 0.3, 0.2)


class RiskModel(nn.Module):
    """GRU-D-style recurrent risk model; `step` is the streaming interface."""

    # Buffers (register_buffer below), declared for the type checker.
    mean: Tensor
    std: Tensor
    trend_tau: Tensor

    def __init__(self, config: ModelConfig = ModelConfig(), mean: Tensor | None = None, std: Tensor | None = None) -> None:
        super().__init__()
        self.config = config
        d, h = N_FEATURES, config.hidden
        self.register_buffer("mean", torch.tensor(DEFAULT_MEAN) if mean is None else mean.float().clone())
        self.register_buffer("std", torch.tensor(DEFAULT_STD) if std is None else std.float().clone().clamp_min(1e-3))
        # Input decay is diagonal (one rate per input), hidden decay is full (GRU-D).
        self.input_decay_w = nn.Parameter(torch.full((d,), 0.1))
        self.input_decay_b = nn.Parameter(torch.zeros(d))
        self.hidden_decay = nn.Linear(d, h)
        self.register_buffer("trend_tau", torch.tensor(config.trend_hours, dtype=torch.float32).reshape(-1, 1))
        inputs = 3 * d + len(config.trend_hours) * d + int(config.elapsed)  # imputed values, mask, time since seen, trends, stay time
        self.cell: nn.Module = nn.GRUCell(inputs, h) if config.cell == "gru" else nn.LSTMCell(inputs, h)
        self.head = nn.Linear(h, 1)

    @property
    def recurrent_size(self) -> int:
        return self.config.recurrent_size

    @property
    def state_size(self) -> int:
        """Recurrent state, then the running means [K, D] flattened, then hours since the first reading."""
        return self.config.state_size

    def initial_state(self, batch: int) -> Tensor:
        return torch.zeros(batch, self.state_size, device=self.mean.device)

    def step(
        self, state: Tensor, values: Tensor, mask: Tensor, delta: Tensor, last_values: Tensor, last_mask: Tensor
    ) -> tuple[Tensor, Tensor]:
        """One reading per row: all tensors [B, D] except state [B, S]. Returns (state, logit [B])."""
        x = (values - self.mean) / self.std
        x_last = (last_values - self.mean) / self.std * last_mask  # never seen: the mean (0)
        gamma_x = torch.exp(-torch.relu(self.input_decay_w * delta + self.input_decay_b))
        x_hat = mask * x + (1.0 - mask) * gamma_x * x_last
        gamma_h = torch.exp(-torch.relu(self.hidden_decay(delta)))
        parts = [x_hat, mask, delta / MAX_DELTA_HOURS]
        k_means = len(self.config.trend_hours) * N_FEATURES
        recurrent = state[:, : self.recurrent_size]
        running = state[:, self.recurrent_size : self.recurrent_size + k_means]
        tail = []
        if self.config.elapsed:
            # Time since the previous reading: the freshest input seen before (0 at the first).
            since = torch.where(last_mask > 0, delta, torch.full_like(delta, MAX_DELTA_HOURS)).amin(dim=1)
            since = torch.where(last_mask.amax(dim=1) > 0, since, torch.zeros_like(since))
            elapsed = state[:, -1] + since
            parts_elapsed = torch.log1p(elapsed)[:, None] / 4.0
            tail.append(elapsed[:, None])
        if self.config.trend_hours:
            k = len(self.config.trend_hours)
            running = running.reshape(-1, k, N_FEATURES)
            # A running mean over irregular samples: weight by the time since the vital was last
            # seen; the first observation sets it. Unobserved vitals leave it unchanged.
            alpha = torch.where(last_mask[:, None] > 0, 1.0 - torch.exp(-delta[:, None] / self.trend_tau), torch.ones_like(running))
            alpha = alpha * mask[:, None]
            parts.append(((x[:, None] - running) * mask[:, None] * last_mask[:, None]).reshape(-1, k * N_FEATURES))
            running = (running + alpha * (x[:, None] - running)).reshape(-1, k * N_FEATURES)
        if self.config.elapsed:
            parts.append(parts_elapsed)
        inputs = torch.cat(parts, dim=1)
        if self.config.cell == "gru":
            h = self.cell(inputs, recurrent * gamma_h)
            new_recurrent = h
        else:
            h_prev, c_prev = recurrent.chunk(2, dim=1)
            h, c = self.cell(inputs, (h_prev * gamma_h, c_prev))
            new_recurrent = torch.cat([h, c], dim=1)
        return torch.cat([new_recurrent, running, *tail], dim=1), self.head(h).squeeze(1)

    def forward_sequence(
        self,
        values: Tensor,
        mask: Tensor,
        delta: Tensor,
        last_values: Tensor,
        last_mask: Tensor,
        state: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Run `step` over [B, T, D] inputs; returns (logits [B, T], final state)."""
        batch, steps, _ = values.shape
        state = self.initial_state(batch) if state is None else state
        logits = []
        for t in range(steps):
            state, logit = self.step(state, values[:, t], mask[:, t], delta[:, t], last_values[:, t], last_mask[:, t])
            logits.append(logit)
        return torch.stack(logits, dim=1), state


def untrained(seed: int = 0, config: ModelConfig = ModelConfig()) -> RiskModel:
    """A deterministic randomly initialised model (for tests, and before a checkpoint exists)."""
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        model = RiskModel(config)
    finally:
        torch.random.set_rng_state(generator_state)
    return model.eval()


class TorchStep:
    """`RiskModel.step` behind the services' step interface (inference.step.StepRuntime)."""

    runtime = "torch"

    def __init__(self, model: RiskModel) -> None:
        self.model = model.eval()
        self.config = model.config
        self.state_size = model.state_size

    def step(
        self, state: np.ndarray, values: np.ndarray, mask: np.ndarray, delta: np.ndarray, last_values: np.ndarray, last_mask: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """All float32; state [B, S], the rest [B, D]. Returns (new state [B, S], risk [B])."""
        with torch.inference_mode():
            arrays = (state, values, mask, delta, last_values, last_mask)
            new_state, logit = self.model.step(*(torch.from_numpy(a) for a in arrays))
            return new_state.numpy(), torch.sigmoid(logit).numpy()


def risk_from_logit(logit: Tensor) -> Tensor:
    return torch.sigmoid(logit)

