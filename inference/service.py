"""Running the scorer as a service: its settings and how the model is chosen."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch

from inference import checkpoint as checkpoints
from inference.model import RiskModel, untrained
from inference.news2 import NEWS2_MAX_AGE_MS
from inference.scorer import ScorerProcessor, ScorerSettings
from runtime.config import ConfigError, StreamConfig, require, setting
from runtime.metrics import StreamMetrics

log = logging.getLogger(__name__)

UNTRAINED_VERSION = "gru-untrained-seed0"


@dataclass(frozen=True)
class ScoreConfig(StreamConfig):
    metrics_port: int = setting(9103, "port for Prometheus /metrics (0 = any free port, -1 = off)")
    checkpoint: str = setting("default", "model checkpoint directory ('default' = the shipped one, 'untrained' = random weights)")
    idle_timeout_ms: int = setting(24 * 3_600_000, "evict a patient's state after this much event time without readings, ms")
    news2_max_age_ms: int = setting(NEWS2_MAX_AGE_MS, "NEWS2 uses carried-forward values up to this old, ms")
    torch_threads: int = setting(1, "PyTorch intra-op threads for the model step")

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self.idle_timeout_ms >= 60_000, f"--idle-timeout-ms={self.idle_timeout_ms}: expected at least 60000")
        require(self.news2_max_age_ms > 0, f"--news2-max-age-ms={self.news2_max_age_ms}: expected more than 0")
        require(1 <= self.torch_threads <= 64, f"--torch-threads={self.torch_threads}: expected 1-64")


def load_model(checkpoint: str) -> tuple[RiskModel, str]:
    """The model and its version: a checkpoint directory, the shipped default, or untrained."""
    if checkpoint == "untrained":
        return untrained(0), UNTRAINED_VERSION
    path = checkpoints.default_checkpoint_path() if checkpoint == "default" else checkpoint
    try:
        return checkpoints.load(path)
    except FileNotFoundError:
        if checkpoint == "default":
            log.warning("shipped checkpoint missing: scoring with untrained weights model=%s", UNTRAINED_VERSION)
            return untrained(0), UNTRAINED_VERSION
        raise ConfigError(f"--checkpoint={checkpoint!r}: no checkpoint there") from None
    except ValueError as exc:
        raise ConfigError(f"--checkpoint={checkpoint!r}: {exc}") from None


def build_scorer(config: ScoreConfig, metrics: StreamMetrics, model: RiskModel, version: str) -> ScorerProcessor:
    torch.set_num_threads(config.torch_threads)
    settings = ScorerSettings(idle_timeout_ms=config.idle_timeout_ms, news2_max_age_ms=config.news2_max_age_ms)
    return ScorerProcessor(model, version, metrics, settings)
