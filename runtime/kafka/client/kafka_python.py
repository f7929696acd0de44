"""The kafka-python implementation of the client interface (pure Python)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import kafka
from kafka.coordinator.assignors.cooperative_sticky import CooperativeStickyAssignor
from kafka.coordinator.assignors.range import RangePartitionAssignor
from kafka.errors import (
    AuthorizationError,
    FencedInstanceIdError,
    IllegalStateError,
    InvalidProducerEpochError,
    InvalidTxnStateError,
    KafkaConfigurationError,
    KafkaError,
    ProducerFencedError,
    TopicAlreadyExistsError,
    UnsupportedVersionError,
)
from kafka.structs import OffsetAndMetadata

from runtime.kafka.client.base import (
    BEGINNING,
    COOPERATIVE_STICKY,
    END,
    HEARTBEAT_INTERVAL_MS,
    FatalKafkaError,
    RANGE,
    SESSION_TIMEOUT_MS,
    TXN_RETRY_BACKOFF_MS,
    GroupFencedError,
    Headers,
    KafkaClientError,
    NewTopic,
    Partitions,
    Record,
    TopicPartition,
    error_class,
    read_until_end,
)

log = logging.getLogger(__name__)

METADATA_MAX_AGE_MS = 30_000

NAME = "kafka-python"
# This producer instance is beyond use: its epoch was fenced (a newer producer, or the broker's
# abort of a timed-out transaction), or its transaction state machine is stuck (kafka-python
# reports "Invalid transition attempted from state BUMPING_PRODUCER_EPOCH ..." as IllegalStateError).
FATAL = (ProducerFencedError, InvalidProducerEpochError, InvalidTxnStateError, IllegalStateError)
# No new instance can fix these: the configuration must change.
CONFIG = (AuthorizationError, UnsupportedVersionError, KafkaConfigurationError)
ASSIGNOR_CLASSES = {RANGE: RangePartitionAssignor, COOPERATIVE_STICKY: CooperativeStickyAssignor}

# Standard Kafka client property -> kafka-python keyword argument.
_PROPERTY_NAMES = {
    "security.protocol": "security_protocol",
    "ssl.ca.location": "ssl_cafile",
    "ssl.certificate.location": "ssl_certfile",
    "ssl.key.location": "ssl_keyfile",
    "ssl.key.password": "ssl_password",
    "ssl.crl.location": "ssl_crlfile",
    "ssl.cipher.suites": "ssl_ciphers",
    "sasl.mechanism": "sasl_mechanism",
    "sasl.mechanisms": "sasl_mechanism",
    "sasl.username": "sasl_plain_username",
    "sasl.password": "sasl_plain_password",
    "sasl.kerberos.service.name": "sasl_kerberos_service_name",
}


def translate_properties(properties: Mapping[str, str] | None) -> dict[str, Any]:
    """Standard client properties (security.protocol, ssl.ca.location, sasl.username, ...) as
    kafka-python keyword arguments. An unknown property is an error naming it (never its value)."""
    out: dict[str, Any] = {}
    for name, value in (properties or {}).items():
        if name == "ssl.endpoint.identification.algorithm":
            out["ssl_check_hostname"] = str(value).lower() == "https"
        elif name in _PROPERTY_NAMES:
            out[_PROPERTY_NAMES[name]] = value
        else:
            raise ValueError(f"Kafka client property {name!r} has no kafka-python equivalent")
    return out


def _tp(tp: TopicPartition) -> kafka.TopicPartition:
    return kafka.TopicPartition(tp.topic, tp.partition)


def _ours(tp: Any) -> TopicPartition:
    return TopicPartition(tp.topic, tp.partition)


def _group_fenced(exc: BaseException) -> bool:
    """FencedInstanceIdError, also where the producer wraps it in the error that poisoned its
    transaction ("... error state: FencedInstanceIdError")."""
    text = str(exc)
    return isinstance(exc, FencedInstanceIdError) or "FencedInstanceId" in text or "FENCED_INSTANCE_ID" in text


def _error(exc: KafkaError) -> KafkaClientError:
    cls = error_class(fenced=_group_fenced(exc), misconfigured=isinstance(exc, CONFIG), fatal=isinstance(exc, FATAL))
    return cls(repr(exc))


class _Delivery:
    def __init__(self, future: Any) -> None:
        self._future = future

    def wait(self, timeout_s: float) -> tuple[int, int]:
        try:
            meta = self._future.get(timeout=max(0.001, timeout_s))
        except KafkaError as exc:
            raise _error(exc) from exc
        return meta.partition, meta.offset


class KafkaPythonProducer:
    def __init__(self, config: dict[str, Any]) -> None:
        self._p = kafka.KafkaProducer(**config)
        self._futures: list[Any] = []
        self._transactional = "transactional_id" in config
        # How long a transactional call may take: a record's delivery plus one request. kafka-python's
        # own commit, abort and offset calls wait without a limit, and once its sender is stuck (an
        # expired batch in a transaction crashes it, and the broker's return does not revive it)
        # they wait for ever; past this the producer is given up and replaced.
        self._txn_timeout_ms = int(config.get("delivery_timeout_ms", 120_000)) + int(config.get("request_timeout_ms", 30_000))

    def send(self, topic: str, value: bytes | None, key: bytes | None = None, headers: Headers | None = None,
             partition: int | None = None, timestamp_ms: int | None = None) -> None:
        try:
            future = self._p.send(topic, key=key, value=value, headers=headers or [], partition=partition, timestamp_ms=timestamp_ms)
        except KafkaError as exc:
            raise _error(exc) from exc
        self._futures.append(future)
        if not self._transactional and len(self._futures) > 100_000:
            self._futures = [f for f in self._futures if not f.is_done or f.failed()]

    def send_acked(self, topic: str, value: bytes | None, key: bytes | None = None, headers: Headers | None = None) -> _Delivery:
        try:
            return _Delivery(self._p.send(topic, key=key, value=value, headers=headers or []))
        except KafkaError as exc:
            raise _error(exc) from exc

    def flush(self, timeout_s: float) -> None:
        try:
            self._p.flush(timeout=timeout_s)
        except KafkaError as exc:
            raise _error(exc) from exc
        futures, self._futures = self._futures, []
        for f in futures:
            if not f.is_done:
                raise KafkaClientError(f"records not acknowledged within {timeout_s:g}s")
            if f.failed():
                raise _error(f.exception) if isinstance(f.exception, KafkaError) else KafkaClientError(repr(f.exception))

    def _call(self, fn: Any, *args: Any) -> None:
        try:
            fn(*args)
        except KafkaError as exc:
            raise _error(exc) from exc

    def init_transactions(self) -> None:
        self._call(self._p.init_transactions)

    def begin_transaction(self) -> None:
        self._futures = []
        self._forget_refused_offsets()
        self._call(self._p.begin_transaction)

    def _forget_refused_offsets(self) -> None:
        """kafka-python keeps the offsets of a TxnOffsetCommit the group refused (UNKNOWN_MEMBER_ID,
        ILLEGAL_GENERATION: the consumer left the group, say after a pause past its session
        timeout) in its pending set after the transaction aborts, and sends them again with the
        next transaction's offsets. That transaction then commits offsets of records whose
        outputs were aborted: a partition the new transaction did not read jumps past them and
        they are lost. A new transaction starts with none. (Private API of the pinned
        kafka-python; nothing is pending between transactions that should survive.)"""
        manager = getattr(self._p, "_transaction_manager", None)
        pending = getattr(manager, "_pending_txn_offset_commits", None)
        if pending:
            log.warning("offsets of an aborted transaction dropped partitions=%d", len(pending))
            pending.clear()

    def send_offsets_to_transaction(self, offsets: Mapping[TopicPartition, int], group_metadata: Any) -> None:
        native = {_tp(tp): OffsetAndMetadata(off, "", -1) for tp, off in offsets.items()}
        self._finish(lambda tm: tm.send_offsets_to_transaction(native, group_metadata),
                     lambda: self._p.send_offsets_to_transaction(native, group_metadata), "sending the offsets")

    def commit_transaction(self) -> None:
        # kafka-python commits a transaction even when one of its batches failed without an
        # abortable error (a retriable error past the delivery timeout, the in-flight batches
        # of a KIP-360 epoch bump): the offsets would commit without those records. So every
        # record of the transaction must be acknowledged before the commit is sent, as the
        # Java client and librdkafka guarantee themselves. One that failed leaves this producer
        # beyond trust (its sender may be stuck): the transaction is not committed, and the
        # loop replaces the producer, whose successor aborts it.
        futures, self._futures = self._futures, []
        try:
            self._p.flush(timeout=self._txn_timeout_ms / 1000)
        except KafkaError as exc:
            raise FatalKafkaError(f"records of the transaction not acknowledged: {exc!r}") from exc
        for f in futures:
            if not f.is_done:
                raise FatalKafkaError("a record of the transaction was not acknowledged before the commit")
            if f.failed():
                raise FatalKafkaError(f"a record of the transaction failed: {f.exception!r}")
        self._finish(lambda tm: tm.begin_commit(), self._p.commit_transaction, "committing")

    def abort_transaction(self) -> None:
        self._futures = []
        self._finish(lambda tm: tm.begin_abort(), self._p.abort_transaction, "aborting")

    def _finish(self, start: Any, unbounded: Any, what: str) -> None:
        """Run one of the transaction manager's requests (what kafka-python's `commit_transaction`,
        `abort_transaction` and `send_offsets_to_transaction` do) with a time limit."""
        manager, sender = getattr(self._p, "_transaction_manager", None), getattr(self._p, "_sender", None)
        try:
            if manager is None or sender is None:  # not the pinned kafka-python: its own calls
                unbounded()
                return
            result = start(manager)
            sender.wakeup()
            done = result.wait(timeout_ms=self._txn_timeout_ms)
        except KafkaError as exc:
            raise _error(exc) from exc
        if not done:
            raise FatalKafkaError(f"{what} the transaction did not finish within {self._txn_timeout_ms / 1000:g}s")

    def close(self, timeout_s: float) -> None:
        try:
            self._p.close(timeout=timeout_s)
        except KafkaError:
            # Records left unsent past the timeout: kafka-python raises before it stops its sender.
            sender = getattr(self._p, "_sender", None)
            if sender is not None and sender.is_alive():
                sender.force_close()


class _Listener(kafka.ConsumerRebalanceListener):
    def __init__(self, on_assigned: Partitions, on_revoked: Partitions) -> None:
        self._assigned, self._revoked = on_assigned, on_revoked

    def on_partitions_revoked(self, revoked: Any) -> None:
        self._revoked([_ours(tp) for tp in revoked])

    def on_partitions_assigned(self, assigned: Any) -> None:
        self._assigned([_ours(tp) for tp in assigned])


class KafkaPythonConsumer:
    def __init__(self, config: dict[str, Any]) -> None:
        self._c = kafka.KafkaConsumer(**config)
        self._fenced: BaseException | None = None
        if config.get("group_instance_id") is not None:
            self._watch_heartbeat_fencing()

    def _watch_heartbeat_fencing(self) -> None:
        """kafka-python's heartbeat thread meets FENCED_INSTANCE_ID (another consumer registered
        our group instance id), stops heartbeating and tells no one: `poll` goes on fetching the
        partitions the group gave to the other consumer. Note it here so `poll` raises it.
        (Private API of the pinned kafka-python; without it, fencing still shows when this
        member's next transaction commits its offsets.)"""
        coordinator = getattr(self._c, "_coordinator", None)
        send = getattr(coordinator, "_send_heartbeat_request", None)
        if coordinator is None or send is None:
            return

        async def watched() -> Any:
            try:
                return await send()
            except FencedInstanceIdError as exc:
                self._fenced = exc
                raise

        coordinator._send_heartbeat_request = watched

    def subscribe(self, topics: Sequence[str], *, on_assigned: Partitions, on_revoked: Partitions) -> None:
        self._c.subscribe(topics=list(topics), listener=_Listener(on_assigned, on_revoked))

    def poll(self, timeout_s: float, max_records: int) -> list[Record]:
        if self._fenced is not None:
            raise GroupFencedError(repr(self._fenced))
        try:
            polled = self._c.poll(timeout_ms=int(timeout_s * 1000), max_records=max_records)
        except KafkaError as exc:
            raise _error(exc) from exc
        return [
            Record(r.topic, r.partition, r.offset, r.key, r.value, r.timestamp, list(r.headers or []))
            for batch in polled.values()
            for r in batch
        ]

    def assign(self, starts: Mapping[TopicPartition, int]) -> None:
        self._c.assign([_tp(tp) for tp in starts])
        for tp, offset in starts.items():
            self.seek(tp, offset)

    def assignment(self) -> list[TopicPartition]:
        return [_ours(tp) for tp in self._c.assignment()]

    def seek(self, tp: TopicPartition, offset: int) -> None:
        if offset == BEGINNING:
            self._c.seek_to_beginning(_tp(tp))
        elif offset == END:
            self._c.seek_to_end(_tp(tp))
        else:
            self._c.seek(_tp(tp), offset)

    def pause(self, tps: Sequence[TopicPartition]) -> None:
        # kafka-python returns no record of a paused partition, even one fetched before the pause.
        self._c.pause(*[_tp(tp) for tp in tps])

    def resume(self, tps: Sequence[TopicPartition]) -> None:
        self._c.resume(*[_tp(tp) for tp in tps])

    def committed(self, tps: Sequence[TopicPartition]) -> dict[TopicPartition, int | None]:
        try:
            return {tp: self._c.committed(_tp(tp)) for tp in tps}
        except KafkaError as exc:
            raise _error(exc) from exc

    def position(self, tp: TopicPartition) -> int | None:
        try:
            return self._c.position(_tp(tp), timeout_ms=0)
        except KafkaError:
            return None

    def highwater(self, tp: TopicPartition) -> int | None:
        return self._c.highwater(_tp(tp))

    def end_offsets(self, tps: Sequence[TopicPartition]) -> dict[TopicPartition, int]:
        try:
            ends = self._c.end_offsets([_tp(tp) for tp in tps])
        except KafkaError as exc:
            raise _error(exc) from exc
        return {_ours(tp): off for tp, off in ends.items() if off is not None}

    def partitions_for(self, topic: str) -> list[int]:
        return sorted(self._c.partitions_for_topic(topic) or ())

    def read_to_end(self, tps: Sequence[TopicPartition], timeout_s: float, max_records: int,
                    on_end: Callable[[TopicPartition], None] | None = None) -> Iterator[list[Record]]:
        self.assign({tp: BEGINNING for tp in tps})
        # Under read_committed this is the last stable offset: everything committed so far.
        end = self.end_offsets(tps)
        pending = {tp for tp in tps if end.get(tp, 0) > 0 and self._c.position(_tp(tp)) < end[tp]}
        # The position steps over transaction markers, so it reaches the end even when the last
        # records of a partition are a commit marker.
        yield from read_until_end(self.poll, tps, end, pending, lambda tp: self._c.position(_tp(tp)) >= end[tp],
                                  timeout_s, max_records, on_end)

    def group_metadata(self) -> Any:
        return self._c.group_metadata()

    def close(self) -> None:
        self._c.close(autocommit=False)


class KafkaPythonAdmin:
    def __init__(self, config: dict[str, Any]) -> None:
        self._a = kafka.KafkaAdminClient(**config)

    def topic_partitions(self, names: Sequence[str] | None = None) -> dict[str, int]:
        try:
            existing = self._a.list_topics()
            if names is not None:
                existing = [n for n in existing if n in set(names)]
            described = self._a.describe_topics(existing) if existing else []
        except KafkaError as exc:
            raise _error(exc) from exc
        return {t["name"]: len(t.get("partitions") or []) for t in described if t.get("error_code", 0) == 0}

    def create_topics(self, topics: Sequence[NewTopic], timeout_s: float) -> None:
        new = {t.name: {"num_partitions": t.partitions, "replication_factor": t.replication_factor, "configs": t.configs} for t in topics}
        try:
            result = self._a.create_topics(new, raise_errors=False)
            for topic in result.get("topics", []):
                # Already there: another service created it first.
                if topic.get("error_code", 0) not in (0, TopicAlreadyExistsError.errno):
                    raise KafkaClientError(f"cannot create topic {topic.get('name')}: {topic.get('error_message') or topic.get('error_code')}")
            self._a.wait_for_topics([t.name for t in topics], timeout_ms=int(timeout_s * 1000))
        except KafkaError as exc:
            raise _error(exc) from exc

    def probe(self, timeout_s: float) -> None:
        try:
            self._a.describe_cluster()
        except KafkaError as exc:
            raise _error(exc) from exc

    def close(self) -> None:
        self._a.close()


def _build(cls: Any, config: dict[str, Any]) -> Any:
    try:
        return cls(config)
    except KafkaError as exc:  # NoBrokersAvailable while bootstrapping, say
        raise _error(exc) from exc


class KafkaPythonClient:
    """Builds kafka-python clients for one cluster."""

    name = NAME

    def __init__(self, bootstrap: str, properties: Mapping[str, str] | None = None) -> None:
        self.bootstrap = bootstrap
        self._common = {"bootstrap_servers": [s.strip() for s in bootstrap.split(",") if s.strip()],
                        **translate_properties(properties)}

    def producer(self, *, client_id: str, transactional_id: str | None = None, transaction_timeout_ms: int | None = None,
                 linger_ms: int = 5, delivery_timeout_ms: int = 120_000, request_timeout_ms: int | None = None) -> KafkaPythonProducer:
        config: dict[str, Any] = dict(
            self._common, client_id=client_id, acks="all", enable_idempotence=True, linger_ms=linger_ms,
            max_in_flight_requests_per_connection=5, retries=2**31 - 1, delivery_timeout_ms=delivery_timeout_ms,
        )
        if transactional_id is not None:
            config["transactional_id"] = transactional_id
            config["retry_backoff_ms"] = TXN_RETRY_BACKOFF_MS
        if transaction_timeout_ms is not None:
            config["transaction_timeout_ms"] = transaction_timeout_ms
        if request_timeout_ms is not None:
            config["request_timeout_ms"] = request_timeout_ms
            # send() blocks at most this long for metadata or buffer space.
            config["max_block_ms"] = request_timeout_ms * 2
        return _build(KafkaPythonProducer, config)

    def consumer(self, *, client_id: str, group_id: str | None, assignor: str | None = None, max_poll_records: int = 10_000,
                 auto_offset_reset: str = "earliest", large_fetches: bool = False,
                 instance_id: str | None = None) -> KafkaPythonConsumer:
        config: dict[str, Any] = dict(
            self._common, client_id=client_id, group_id=group_id, enable_auto_commit=False,
            isolation_level="read_committed", auto_offset_reset=auto_offset_reset, max_poll_records=max_poll_records,
            session_timeout_ms=SESSION_TIMEOUT_MS, heartbeat_interval_ms=HEARTBEAT_INTERVAL_MS,
            # kafka-python's group leader assigns from the metadata it has; one that assigned before
            # it knew a subscribed topic's partitions gets nothing, and only rejoins once its metadata
            # changes. One full-suite run saw a scorer sit like that (`No partition metadata for
            # topic`) past its test's 240 s. The default refresh is 5 min; 30 s bounds the wait.
            metadata_max_age_ms=METADATA_MAX_AGE_MS,
        )
        if instance_id is not None:
            config["group_instance_id"] = instance_id
        if assignor is not None:
            config["partition_assignment_strategy"] = [ASSIGNOR_CLASSES[assignor]]
        if large_fetches:
            config.update(max_partition_fetch_bytes=8 * 1024 * 1024, fetch_max_bytes=64 * 1024 * 1024)
        return _build(KafkaPythonConsumer, config)

    def admin(self, *, client_id: str = "wardwatch-admin", timeout_s: float | None = None) -> KafkaPythonAdmin:
        config: dict[str, Any] = dict(self._common, client_id=client_id)
        if timeout_s is not None:
            config.update(request_timeout_ms=int(timeout_s * 1000), bootstrap_timeout_ms=int(timeout_s * 1000))
        return _build(KafkaPythonAdmin, config)
