"""A process under test: `python -m bench.worker {passthrough|naive} [stream flags]`.

Runs the bench's processors through the same `run_stream` shell as `wardwatch score` (GC
tuning, signals, StreamLoop), so the only difference between scenarios is the processor.
"""

from __future__ import annotations

import argparse
import sys

from inference.processor import ScorerSettings
from inference.service import ScoreConfig, load_model
from runtime import logs
from runtime.config import add_arguments, load
from runtime.service import run_stream


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.worker")
    parser.add_argument("kind", choices=("passthrough", "naive"))
    add_arguments(parser, ScoreConfig)
    args = parser.parse_args(argv)
    config = load(ScoreConfig, args)
    if args.kind == "passthrough":
        from bench.ceiling import PassthroughProcessor

        stage = PassthroughProcessor.stage
        logs.setup(config.log_level, stage)
        return run_stream(config, lambda _metrics: PassthroughProcessor(), stage=stage)

    from bench.naive import NaiveScorerProcessor

    logs.setup(config.log_level, NaiveScorerProcessor.stage)
    model, version = load_model(config.checkpoint, config.model_threads)

    def build(metrics):  # build_scorer's settings, with the naive subclass
        settings = ScorerSettings(idle_timeout_ms=config.idle_timeout_ms, news2_max_age_ms=config.news2_max_age_ms)
        return NaiveScorerProcessor(model, version, metrics, settings)

    return run_stream(config, build, stage=NaiveScorerProcessor.stage)


if __name__ == "__main__":
    sys.exit(main())
