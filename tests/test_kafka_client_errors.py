"""Each client sorts its failures into the four kinds the stream loop answers differently
(runtime/kafka/client/base.py): retry, replace the producer, exit because fenced, exit because
misconfigured. A wrong kind either kills a stage that could recover or keeps a zombie alive."""

from __future__ import annotations

import pytest
from confluent_kafka import KafkaError as ConfluentError
from kafka import errors as kp

from runtime.kafka.client import FatalKafkaError, GroupFencedError, KafkaClientError, KafkaConfigError
from runtime.kafka.client import confluent, kafka_python


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (kp.KafkaConnectionError("connection reset"), KafkaClientError),
        (kp.KafkaTimeoutError("timed out"), KafkaClientError),
        (kp.ProducerFencedError(), FatalKafkaError),
        (kp.InvalidProducerEpochError(), FatalKafkaError),
        # The producer stuck mid epoch-bump after the broker aborted its timed-out transaction.
        (kp.IllegalStateError("Invalid transition attempted from state BUMPING_PRODUCER_EPOCH to state ABORTING_TRANSACTION"),
         FatalKafkaError),
        (kp.FencedInstanceIdError(), GroupFencedError),
        # The producer's poisoned transaction names the group fencing only in its message.
        (kp.KafkaError("Cannot execute transactional method because we are in an error state: FencedInstanceIdError"),
         GroupFencedError),
        (kp.TopicAuthorizationFailedError(), KafkaConfigError),
        (kp.UnsupportedVersionError(), KafkaConfigError),
    ],
)
def test_kafka_python_errors_are_sorted_by_what_the_loop_must_do(exc: kp.KafkaError, kind: type) -> None:
    assert type(kafka_python._error(exc)) is kind


@pytest.mark.parametrize(
    ("err", "kind"),
    [
        (ConfluentError(ConfluentError._TRANSPORT, "broker down"), KafkaClientError),
        (ConfluentError(ConfluentError._TIMED_OUT, "timed out", retriable=True), KafkaClientError),
        (ConfluentError(ConfluentError._FENCED, "This instance has been fenced by a newer instance", fatal=True), FatalKafkaError),
        (ConfluentError(ConfluentError.PRODUCER_FENCED, "fenced"), FatalKafkaError),
        (ConfluentError(ConfluentError.INVALID_PRODUCER_EPOCH, "old epoch"), FatalKafkaError),
        (ConfluentError(ConfluentError.OUT_OF_ORDER_SEQUENCE_NUMBER, "idempotence broken", fatal=True), FatalKafkaError),
        (ConfluentError(ConfluentError.FENCED_INSTANCE_ID, "fenced instance"), GroupFencedError),
        # librdkafka's fatal consumer event: the cause is only in its text.
        (ConfluentError(ConfluentError._FATAL,
                        "Fatal consumer error: Broker: Static consumer fenced by other consumer with same group.instance.id",
                        fatal=True), GroupFencedError),
        (ConfluentError(ConfluentError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED, "denied", fatal=True), KafkaConfigError),
        (ConfluentError(ConfluentError.TOPIC_AUTHORIZATION_FAILED, "denied"), KafkaConfigError),
    ],
)
def test_confluent_errors_are_sorted_by_what_the_loop_must_do(err: ConfluentError, kind: type) -> None:
    assert type(confluent._from_kafka_error(err)) is kind


def test_the_kinds_nest_so_a_broad_handler_still_catches_them() -> None:
    assert issubclass(GroupFencedError, FatalKafkaError)
    assert issubclass(KafkaConfigError, FatalKafkaError)
    assert issubclass(FatalKafkaError, KafkaClientError)
