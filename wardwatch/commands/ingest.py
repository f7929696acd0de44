"""`wardwatch ingest`: validate vitals.raw into vitals, rejects to vitals.dlq."""

from __future__ import annotations

import argparse

from ingest.processor import STAGE
from ingest.service import IngestConfig, build_ingest
from runtime.service import run_stream
from wardwatch.commands import settings_command


def register(sub: argparse._SubParsersAction) -> None:
    settings_command(
        sub,
        "ingest",
        IngestConfig,
        run,
        log_name=STAGE,
        help="validate raw device readings (vitals.raw -> vitals, rejects -> vitals.dlq)",
        description="The front door: every vitals.raw record ends up exactly once in vitals (valid, normalised) "
        "or vitals.dlq (with the reason in headers); accepts plain JSON readings and FHIR R4 vital-signs "
        "Observations or Bundles; de-duplicates by (patient, device, seq). File mode: --input RAW.jsonl --output VITALS.jsonl.",
    )


def run(config: IngestConfig) -> int:
    return run_stream(config, lambda metrics: build_ingest(config, metrics), stage=STAGE)
