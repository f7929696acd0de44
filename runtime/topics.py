"""Topic names and their kinds: the one place a topic is named (contracts: docs/topics.md)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

VITALS_RAW: Final = "vitals.raw"
VITALS: Final = "vitals"
VITALS_DLQ: Final = "vitals.dlq"
RISK: Final = "risk"
ALERTS: Final = "alerts"
ALERTS_CONTROL: Final = "alerts.control"
SCORER_STATE: Final = "scorer.state"
ALERTS_STATE: Final = "alerts.state"
INGEST_STATE: Final = "ingest.state"
SIM_EVENTS: Final = "sim.events"


@dataclass(frozen=True, slots=True)
class TopicSpec:
    name: str
    compacted: bool = False
    retention_ms: int | None = None


# Every topic keyed by patient id shares one partition count (co-partitioning, docs/topics.md).
ALL: Final = (
    TopicSpec(VITALS_RAW),
    TopicSpec(VITALS),
    TopicSpec(VITALS_DLQ),
    TopicSpec(RISK),
    TopicSpec(ALERTS),
    TopicSpec(ALERTS_CONTROL),
    TopicSpec(SIM_EVENTS),
    TopicSpec(SCORER_STATE, compacted=True),
    TopicSpec(ALERTS_STATE, compacted=True),
    TopicSpec(INGEST_STATE, compacted=True),
)
BY_NAME: Final = {spec.name: spec for spec in ALL}


def specs(*names: str) -> list[TopicSpec]:
    """The specs of the named topics, for a service to create the topics it touches."""
    return [BY_NAME[name] for name in names]
