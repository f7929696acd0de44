"""Running the scorer as a service: its settings and how the model is chosen.

The service runs the checkpoint's exported step on ONNX Runtime (inference/step.py) and
imports no PyTorch; only `--checkpoint untrained` (random weights, made and exported on the
spot) needs it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from inference import checkpoint as checkpoints
from inference.news2 import NEWS2_MAX_AGE_MS
from inference.processor import EXPLAIN_POLICIES, IDLE_TIMEOUT_MS, ScorerProcessor, ScorerSettings
from inference.step import OnnxStep, StepRuntime
from runtime.config import ConfigError, StreamConfig, require, setting
from runtime.metrics import StreamMetrics

log = logging.getLogger(__name__)

UNTRAINED_VERSION = "gru-untrained-seed0"


@dataclass(frozen=True)
class ScoreConfig(StreamConfig):
    metrics_port: int = setting(9103, "port for Prometheus /metrics (0 = any free port, -1 = off)")
    checkpoint: str = setting("default", "model checkpoint directory ('default' = the shipped one, 'untrained' = random weights, needs PyTorch)")
    idle_timeout_ms: int = setting(IDLE_TIMEOUT_MS, "evict a patient's state after this much event time without readings, ms")
    news2_max_age_ms: int = setting(NEWS2_MAX_AGE_MS, "NEWS2 uses carried-forward values up to this old, ms")
    model_threads: int = setting(1, "ONNX Runtime intra-op threads for the model step")
    explain: str = setting("selected", "which risk records carry an explanation (docs/model.md): selected, all or off",
                           choices=EXPLAIN_POLICIES)
    explain_risk_at: float = setting(0.4, "with --explain selected: explain readings with model risk at or above this")
    explain_news2_at: int = setting(4, "with --explain selected: explain readings with NEWS2 at or above this (and any single 3)")
    explain_every_ms: int = setting(900_000, "with --explain selected: explain each patient's first reading in each this much event time, ms")

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self.idle_timeout_ms >= 60_000, f"--idle-timeout-ms={self.idle_timeout_ms}: expected at least 60000")
        require(self.news2_max_age_ms > 0, f"--news2-max-age-ms={self.news2_max_age_ms}: expected more than 0")
        require(1 <= self.model_threads <= 64, f"--model-threads={self.model_threads}: expected 1-64")
        require(0.0 <= self.explain_risk_at <= 1.0, f"--explain-risk-at={self.explain_risk_at}: expected 0-1")
        require(0 <= self.explain_news2_at <= 21, f"--explain-news2-at={self.explain_news2_at}: expected 0-21 (21 = never)")
        require(self.explain_every_ms >= 60_000, f"--explain-every-ms={self.explain_every_ms}: expected at least 60000")


def untrained_step(threads: int = 1) -> OnnxStep:
    """`inference.model.untrained(0)` exported on the spot; ConfigError if PyTorch is not installed."""
    try:
        from inference.export import export_step
        from inference.model import untrained
    except ImportError as exc:
        raise ConfigError(f"untrained weights are made with PyTorch, which this install lacks ({exc}); use a checkpoint") from None
    model = untrained(0)
    return OnnxStep(export_step(model, UNTRAINED_VERSION), model.config, threads)


def load_model(checkpoint: str, threads: int = 1) -> tuple[OnnxStep, str]:
    """The model step and its version: a checkpoint directory, the shipped default, or untrained."""
    if checkpoint == "untrained":
        return untrained_step(threads), UNTRAINED_VERSION
    path = checkpoints.default_checkpoint_path() if checkpoint == "default" else checkpoint
    try:
        return checkpoints.load_step(path, threads)
    except FileNotFoundError:
        if checkpoint == "default":
            log.warning("shipped checkpoint missing: scoring with untrained weights model=%s", UNTRAINED_VERSION)
            return untrained_step(threads), UNTRAINED_VERSION
        raise ConfigError(f"--checkpoint={checkpoint!r}: no checkpoint there") from None
    except ValueError as exc:
        raise ConfigError(f"--checkpoint={checkpoint!r}: {exc}") from None


def build_scorer(config: ScoreConfig, metrics: StreamMetrics, model: StepRuntime, version: str) -> ScorerProcessor:
    settings = ScorerSettings(
        idle_timeout_ms=config.idle_timeout_ms, news2_max_age_ms=config.news2_max_age_ms, explain=config.explain,
        explain_risk_at=config.explain_risk_at, explain_news2_at=config.explain_news2_at, explain_every_ms=config.explain_every_ms,
    )
    return ScorerProcessor(model, version, metrics, settings)
