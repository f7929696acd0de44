"""Idempotent topic creation: every service creates the topics it touches at start-up."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from runtime.kafka.client import KafkaClient, NewTopic, connect
from runtime.topics import TopicSpec

log = logging.getLogger(__name__)


def ensure_topics(
    kafka: KafkaClient | str, topics: Iterable[TopicSpec], partitions: int, replication_factor: int = 1, prefix: str = ""
) -> None:
    """Create missing topics; check existing ones have `partitions` (co-partitioning needs it).

    `kafka`: a client (`runtime.kafka.client.from_config`) or a bootstrap address (default client)."""
    kafka = connect(kafka) if isinstance(kafka, str) else kafka
    wanted = [TopicSpec(prefix + spec.name, spec.compacted, spec.retention_ms) for spec in topics]
    admin = kafka.admin()
    try:
        existing = admin.topic_partitions([s.name for s in wanted])
        missing = [spec for spec in wanted if spec.name not in existing]
        if missing:
            admin.create_topics([NewTopic(s.name, partitions, replication_factor, _configs(s)) for s in missing], timeout_s=30)
            log.info("topics created names=%s partitions=%d", ",".join(s.name for s in missing), partitions)
            existing = admin.topic_partitions([s.name for s in wanted])
        for spec in wanted:
            count = existing.get(spec.name)
            if count and count != partitions:
                raise RuntimeError(
                    f"topic {spec.name} has {count} partitions, expected {partitions}: "
                    "patient-keyed topics must share one partition count (set --partitions to match)"
                )
    finally:
        admin.close()


def _configs(spec: TopicSpec) -> dict[str, str]:
    configs: dict[str, str] = {}
    if spec.compacted:
        configs.update({"cleanup.policy": "compact", "min.cleanable.dirty.ratio": "0.1", "segment.ms": "600000"})
    if spec.retention_ms is not None:
        configs["retention.ms"] = str(spec.retention_ms)
    return configs
