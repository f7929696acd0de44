"""Scenario 2 (and 7): the wardwatch scorer as it is deployed, `python -m wardwatch score`.

The shipped checkpoint when present (`inference/checkpoints/default`), else untrained weights
of the default size (`load_model` falls back and says so).
"""

from __future__ import annotations

from bench.common import stream_flags

CHECKPOINT = "default"
GROUP = "{prefix}wardwatch-score"


def command(bootstrap: str, checkpoint: str = CHECKPOINT) -> list[str]:
    """The scorer service's command line; `{prefix}`/`{instance}` filled in per run."""
    return ["-m", "wardwatch", "score", *stream_flags(bootstrap, "{prefix}", "{instance}"), "--checkpoint", checkpoint]


def ceiling_command(bootstrap: str) -> list[str]:
    return ["-m", "bench.worker", "passthrough", *stream_flags(bootstrap, "{prefix}", "{instance}")]


def naive_command(bootstrap: str, checkpoint: str = CHECKPOINT) -> list[str]:
    return ["-m", "bench.worker", "naive", *stream_flags(bootstrap, "{prefix}", "{instance}"), "--checkpoint", checkpoint]
