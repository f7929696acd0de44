"""Idempotent topic creation: every service creates the topics it touches at start-up."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from kafka.errors import TopicAlreadyExistsError

from runtime.kafka.clients import admin
from runtime.topics import TopicSpec

log = logging.getLogger(__name__)


def ensure_topics(
    bootstrap: str, topics: Iterable[TopicSpec], partitions: int, replication_factor: int = 1, prefix: str = ""
) -> None:
    """Create missing topics; check existing ones have `partitions` (co-partitioning needs it)."""
    wanted = [TopicSpec(prefix + spec.name, spec.compacted, spec.retention_ms) for spec in topics]
    client = admin(bootstrap)
    try:
        existing = set(client.list_topics())
        missing = [spec for spec in wanted if spec.name not in existing]
        if missing:
            new = {
                spec.name: {"num_partitions": partitions, "replication_factor": replication_factor, "configs": _configs(spec)}
                for spec in missing
            }
            result = client.create_topics(new, raise_errors=False)
            for topic in result.get("topics", []):
                # 36: another service created it first; the partition check below still applies.
                if topic.get("error_code", 0) not in (0, TopicAlreadyExistsError.errno):
                    raise RuntimeError(f"cannot create topic {topic.get('name')}: {topic.get('error_message') or topic.get('error_code')}")
            client.wait_for_topics([spec.name for spec in missing])
            log.info("topics created names=%s partitions=%d", ",".join(s.name for s in missing), partitions)
        described = client.describe_topics([spec.name for spec in wanted])
        for topic in described:
            count = len(topic.get("partitions") or [])
            if topic.get("error_code", 0) == 0 and count and count != partitions:
                raise RuntimeError(
                    f"topic {topic['name']} has {count} partitions, expected {partitions}: "
                    "patient-keyed topics must share one partition count (set --partitions to match)"
                )
    finally:
        client.close()


def _configs(spec: TopicSpec) -> dict[str, str]:
    configs: dict[str, str] = {}
    if spec.compacted:
        configs.update({"cleanup.policy": "compact", "min.cleanable.dirty.ratio": "0.1", "segment.ms": "600000"})
    if spec.retention_ms is not None:
        configs["retention.ms"] = str(spec.retention_ms)
    return configs
