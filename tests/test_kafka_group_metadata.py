"""A kafka-python group leader assigns partitions from the metadata it holds, and looks at the
topic again only when that metadata is refreshed. One full test run saw a scorer whose first
assignment came before its metadata held the input topic: it owned nothing, for minutes
(kafka-python refreshes every 5 minutes by default). The client layer refreshes every
`METADATA_MAX_AGE_MS` instead. The same staleness, made on purpose: partitions added to a topic
a group already reads reach a member only through that refresh."""

from __future__ import annotations

import time

import pytest
from confluent_kafka.admin import AdminClient, NewPartitions

from runtime.kafka import security
from runtime.kafka.admin import ensure_topics
from runtime.kafka.client import TopicPartition, connect
from runtime.kafka.client.kafka_python import METADATA_MAX_AGE_MS
from runtime.topics import VITALS, specs

pytestmark = pytest.mark.kafka


def test_a_kafka_python_member_is_given_partitions_added_to_its_topic_within_the_metadata_age(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    topic = topic_prefix + VITALS
    ensure_topics(kafka_bootstrap, specs(VITALS), 2, 1, topic_prefix)
    consumer = connect(kafka_bootstrap, "kafka-python").consumer(client_id=f"{topic_prefix}probe", group_id=f"{topic_prefix}group")
    owned: set[TopicPartition] = set()
    consumer.subscribe([topic], on_assigned=owned.update, on_revoked=owned.difference_update)
    try:
        deadline = time.monotonic() + 60
        while len(owned) < 2 and time.monotonic() < deadline:
            consumer.poll(0.2, 100)
        assert {tp.partition for tp in owned} == {0, 1}, owned

        admin = AdminClient({"bootstrap.servers": kafka_bootstrap, **security.current_properties()})
        admin.create_partitions([NewPartitions(topic, 4)])[topic].result(30)
        added = time.monotonic()
        limit_s = METADATA_MAX_AGE_MS / 1000 + 20  # the refresh, then a rebalance
        while len(owned) < 4 and time.monotonic() - added < limit_s:
            consumer.poll(0.2, 100)
        assert {tp.partition for tp in owned} == {0, 1, 2, 3}, f"after {time.monotonic() - added:.0f} s: {sorted(owned)}"
    finally:
        consumer.close()
