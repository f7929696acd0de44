"""The confluent-kafka implementation of the client interface (librdkafka, C).

librdkafka specifics handled here, so the loop stays client-neutral:
- rebalance callbacks must (re)assign themselves: `incremental_assign`/`incremental_unassign`
  under cooperative-sticky, `assign`/`unassign` under eager assignors;
- partition ends are signalled by `enable.partition.eof` events (a transactional partition ends
  in a commit marker, which the application's position never reaches), so restores read to EOF;
- the producer's queue is bounded (`BufferError` when full: serve delivery reports and retry);
- a failed commit says itself whether to retry (`retriable`), abort (`txn_requires_abort`) or
  give up (`fatal`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import confluent_kafka
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient
from confluent_kafka.admin import NewTopic as _NewTopic

from runtime.kafka.client.base import (
    COOPERATIVE_STICKY,
    HEARTBEAT_INTERVAL_MS,
    SESSION_TIMEOUT_MS,
    TXN_RETRY_BACKOFF_MS,
    Headers,
    KafkaClientError,
    NewTopic,
    Partitions,
    Record,
    TopicPartition,
    error_class,
    read_until_end,
)

NAME = "confluent"
log = logging.getLogger("runtime.kafka.librdkafka")

# Errors after which this producer instance must not go on: its epoch was fenced (by the
# broker's abort of a timed-out transaction, or a newer producer). librdkafka marks most of them
# fatal (`err.fatal()`); a fatal error can only be cleared by a new producer instance.
_FATAL_CODES = {
    KafkaError._FENCED,
    KafkaError.PRODUCER_FENCED,
    KafkaError.INVALID_PRODUCER_EPOCH,
}
# No new instance can fix these: the configuration must change.
_CONFIG_CODES = {
    KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
    KafkaError.CLUSTER_AUTHORIZATION_FAILED,
    KafkaError.TOPIC_AUTHORIZATION_FAILED,
    KafkaError.GROUP_AUTHORIZATION_FAILED,
    KafkaError.UNSUPPORTED_VERSION,
    KafkaError.SASL_AUTHENTICATION_FAILED,
    KafkaError._AUTHENTICATION,
}
_OP_TIMEOUT_S = 30.0
_RETRY_FOR_S = 300.0


def translate_properties(properties: Mapping[str, str] | None) -> dict[str, Any]:
    """Standard client properties pass through: librdkafka uses the standard names."""
    return dict(properties or {})


def _tp(tp: TopicPartition, offset: int | None = None) -> confluent_kafka.TopicPartition:
    if offset is None:
        return confluent_kafka.TopicPartition(tp.topic, tp.partition)
    return confluent_kafka.TopicPartition(tp.topic, tp.partition, offset)


def _error(exc: BaseException) -> KafkaClientError:
    err = exc.args[0] if exc.args and isinstance(exc.args[0], KafkaError) else None
    if err is None:
        return KafkaClientError(repr(exc))
    return _from_kafka_error(err)


def _group_fenced(err: KafkaError) -> bool:
    """FENCED_INSTANCE_ID, also as librdkafka's fatal consumer error (code _FATAL) whose text
    names the cause ("Static consumer fenced by other consumer with same group.instance.id")."""
    text = err.str()
    return err.code() == KafkaError.FENCED_INSTANCE_ID or "Static consumer fenced" in text or "FENCED_INSTANCE_ID" in text


def _from_kafka_error(err: KafkaError) -> KafkaClientError:
    cls = error_class(fenced=_group_fenced(err), misconfigured=err.code() in _CONFIG_CODES,
                      fatal=err.fatal() or err.code() in _FATAL_CODES)
    return cls(f"{err.name()}: {err.str()}")


class _Delivery:
    def __init__(self, producer: confluent_kafka.Producer) -> None:
        self._producer = producer
        self._done = threading.Event()
        self._err: KafkaError | None = None
        self._where = (-1, -1)

    def __call__(self, err: KafkaError | None, msg: Any) -> None:
        self._err = err
        if err is None:
            self._where = (msg.partition(), msg.offset())
        self._done.set()

    def wait(self, timeout_s: float) -> tuple[int, int]:
        deadline = time.monotonic() + timeout_s
        while not self._done.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                raise KafkaClientError(f"record not acknowledged within {timeout_s:g}s")
            self._producer.poll(min(0.05, left))  # serves delivery reports (thread-safe)
        if self._err is not None:
            raise _from_kafka_error(self._err)
        return self._where


class ConfluentProducer:
    def __init__(self, config: dict[str, Any], transactional: bool) -> None:
        self._transactional = transactional
        self._failed: KafkaError | None = None
        if not transactional:
            # Fire-and-forget sends report their first failure at flush().
            config = {**config, "on_delivery": self._on_delivery}
        self._p = confluent_kafka.Producer(config)
        self._queued = 0

    def _on_delivery(self, err: KafkaError | None, _msg: Any) -> None:
        if err is not None and self._failed is None:
            self._failed = err

    def _produce(self, topic: str, value: bytes | None, key: bytes | None, headers: Headers | None,
                 partition: int | None, timestamp_ms: int | None, on_delivery: Any = None) -> None:
        kwargs: dict[str, Any] = {}
        if headers:
            kwargs["headers"] = headers
        if partition is not None:
            kwargs["partition"] = partition
        if timestamp_ms is not None:
            kwargs["timestamp"] = timestamp_ms
        if on_delivery is not None:
            kwargs["on_delivery"] = on_delivery
        while True:
            try:
                self._p.produce(topic, value, key, **kwargs)
                break
            except BufferError:  # queue.buffering.max.messages reached: let deliveries drain
                self._p.poll(0.05)
            except KafkaException as exc:
                raise _error(exc) from exc
        self._queued += 1
        if self._queued >= 10_000:
            self._queued = 0
            self._p.poll(0)  # serve delivery reports so their queue stays short

    def send(self, topic: str, value: bytes | None, key: bytes | None = None, headers: Headers | None = None,
             partition: int | None = None, timestamp_ms: int | None = None) -> None:
        self._produce(topic, value, key, headers, partition, timestamp_ms)

    def send_acked(self, topic: str, value: bytes | None, key: bytes | None = None, headers: Headers | None = None) -> _Delivery:
        delivery = _Delivery(self._p)
        self._produce(topic, value, key, headers, None, None, delivery)
        return delivery

    def flush(self, timeout_s: float) -> None:
        left = self._p.flush(timeout_s)
        if self._failed is not None:
            err, self._failed = self._failed, None
            raise _from_kafka_error(err)
        if left:
            raise KafkaClientError(f"{left} records not acknowledged within {timeout_s:g}s")

    def _retrying(self, what: str, fn: Any, *args: Any) -> None:
        """Call a transactional API, retrying while librdkafka says the error is retriable."""
        deadline = time.monotonic() + _RETRY_FOR_S
        while True:
            try:
                fn(*args)
                return
            except KafkaException as exc:
                err = exc.args[0] if exc.args and isinstance(exc.args[0], KafkaError) else None
                if err is not None and err.retriable() and not err.txn_requires_abort() and time.monotonic() < deadline:
                    log.warning("%s failed, retrying error=%s", what, err.name())
                    continue
                raise _error(exc) from exc

    def init_transactions(self) -> None:
        self._retrying("init_transactions", self._p.init_transactions, _OP_TIMEOUT_S)

    def begin_transaction(self) -> None:
        try:
            self._p.begin_transaction()
        except KafkaException as exc:
            raise _error(exc) from exc

    def send_offsets_to_transaction(self, offsets: Mapping[TopicPartition, int], group_metadata: Any) -> None:
        positions = [_tp(tp, off) for tp, off in offsets.items()]
        self._retrying("send_offsets_to_transaction", self._p.send_offsets_to_transaction, positions, group_metadata, _OP_TIMEOUT_S)

    def commit_transaction(self) -> None:
        self._retrying("commit_transaction", self._p.commit_transaction, _OP_TIMEOUT_S)

    def abort_transaction(self) -> None:
        self._retrying("abort_transaction", self._p.abort_transaction, _OP_TIMEOUT_S)

    def close(self, timeout_s: float) -> None:
        try:
            self._p.flush(timeout_s)
        except KafkaException as exc:
            err = exc.args[0] if exc.args and isinstance(exc.args[0], KafkaError) else None
            if err is None or not err.fatal():
                raise
            # A producer in a fatal state has nothing left to deliver: it is only let go.


class ConfluentConsumer:
    def __init__(self, config: dict[str, Any], cooperative: bool) -> None:
        self._c = confluent_kafka.Consumer(config)
        self._cooperative = cooperative
        self._eof: dict[TopicPartition, int] = {}

    def subscribe(self, topics: Sequence[str], *, on_assigned: Partitions, on_revoked: Partitions) -> None:
        def assign(consumer: confluent_kafka.Consumer, partitions: list[Any]) -> None:
            # Assigned first, so that `on_assigned` may pause them; no record of them can be
            # returned before it has run (this callback runs inside `poll`).
            if self._cooperative:
                consumer.incremental_assign(partitions)
            else:
                consumer.assign(partitions)
            on_assigned([TopicPartition(p.topic, p.partition) for p in partitions])

        def revoke(consumer: confluent_kafka.Consumer, partitions: list[Any]) -> None:
            on_revoked([TopicPartition(p.topic, p.partition) for p in partitions])
            if self._cooperative:
                consumer.incremental_unassign(partitions)
            else:
                consumer.unassign()

        self._c.subscribe(list(topics), on_assign=assign, on_revoke=revoke, on_lost=revoke)

    def poll(self, timeout_s: float, max_records: int) -> list[Record]:
        try:
            # Take what is already fetched; if nothing, wait for the first record only (latency),
            # then take whatever else arrived with it.
            messages = self._c.consume(max_records, 0)
            if not messages:
                messages = self._c.consume(1, timeout_s)
                if messages and max_records > 1:
                    messages += self._c.consume(max_records - 1, 0)
        except KafkaException as exc:
            raise _error(exc) from exc
        out: list[Record] = []
        append = out.append
        for m in messages:
            err = m.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    self._eof[TopicPartition(m.topic(), m.partition())] = m.offset()
                elif err.fatal() or err.code() == KafkaError._FATAL:
                    # _FATAL: the consumer is dead for good; its text names the cause (a static
                    # member fenced by a newer one with the same group.instance.id, say).
                    raise _from_kafka_error(err)
                else:  # transient (broker down, say): librdkafka retries on its own
                    log.debug("consumer error=%s", err.name())
                continue
            append(Record(m.topic(), m.partition(), m.offset(), m.key(), m.value(), m.timestamp()[1], m.headers() or []))
        return out

    def assign(self, starts: Mapping[TopicPartition, int]) -> None:
        for tp in starts:
            self._eof.pop(tp, None)
        self._c.assign([_tp(tp, off) for tp, off in starts.items()])

    def assignment(self) -> list[TopicPartition]:
        return [TopicPartition(p.topic, p.partition) for p in self._c.assignment()]

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self._eof.pop(tp, None)
        try:
            self._c.seek(_tp(tp, offset))
        except KafkaException as exc:
            raise _error(exc) from exc

    def pause(self, tps: Sequence[TopicPartition]) -> None:
        # librdkafka discards what it had fetched for them (an op version barrier) and fetches
        # again from the application's position on resume.
        try:
            self._c.pause([_tp(tp) for tp in tps])
        except KafkaException as exc:
            raise _error(exc) from exc

    def resume(self, tps: Sequence[TopicPartition]) -> None:
        try:
            self._c.resume([_tp(tp) for tp in tps])
        except KafkaException as exc:
            raise _error(exc) from exc

    def committed(self, tps: Sequence[TopicPartition]) -> dict[TopicPartition, int | None]:
        try:
            got = self._c.committed([_tp(tp) for tp in tps], timeout=_OP_TIMEOUT_S)
        except KafkaException as exc:
            raise _error(exc) from exc
        return {TopicPartition(p.topic, p.partition): (p.offset if p.offset >= 0 else None) for p in got}

    def position(self, tp: TopicPartition) -> int | None:
        try:
            (p,) = self._c.position([_tp(tp)])
        except KafkaException:
            return None
        return p.offset if p.offset >= 0 else None

    def highwater(self, tp: TopicPartition) -> int | None:
        try:
            _low, high = self._c.get_watermark_offsets(_tp(tp), cached=True)
        except KafkaException:
            return None
        return high if high >= 0 else None

    def end_offsets(self, tps: Sequence[TopicPartition]) -> dict[TopicPartition, int]:
        ends: dict[TopicPartition, int] = {}
        try:
            for tp in tps:
                # A broker round trip; under read_committed librdkafka asks for the last stable offset.
                ends[tp] = self._c.get_watermark_offsets(_tp(tp), timeout=_OP_TIMEOUT_S, cached=False)[1]
        except KafkaException as exc:
            raise _error(exc) from exc
        return ends

    def partitions_for(self, topic: str) -> list[int]:
        try:
            meta = self._c.list_topics(topic, timeout=_OP_TIMEOUT_S).topics.get(topic)
        except KafkaException as exc:
            raise _error(exc) from exc
        if meta is None or meta.error is not None:
            return []
        return sorted(meta.partitions)

    def read_to_end(self, tps: Sequence[TopicPartition], timeout_s: float, max_records: int,
                    on_end: Callable[[TopicPartition], None] | None = None) -> Iterator[list[Record]]:
        end = self.end_offsets(tps)
        self.assign({tp: confluent_kafka.OFFSET_BEGINNING for tp in tps})
        pending = {tp for tp in tps if end.get(tp, 0) > 0}
        # The end-of-partition event comes at the last stable offset, past any commit marker.
        yield from read_until_end(self.poll, tps, end, pending, lambda tp: self._eof.get(tp, -1) >= end[tp],
                                  timeout_s, max_records, on_end)

    def group_metadata(self) -> Any:
        return self._c.consumer_group_metadata()

    def close(self) -> None:
        self._c.close()


class ConfluentAdmin:
    def __init__(self, config: dict[str, Any], timeout_s: float) -> None:
        self._a = AdminClient(config)
        self._timeout_s = timeout_s

    def topic_partitions(self, names: Sequence[str] | None = None) -> dict[str, int]:
        try:
            topics = self._a.list_topics(timeout=self._timeout_s).topics
        except KafkaException as exc:
            raise _error(exc) from exc
        wanted = set(names) if names is not None else None
        return {n: len(t.partitions) for n, t in topics.items() if t.error is None and (wanted is None or n in wanted)}

    def create_topics(self, topics: Sequence[NewTopic], timeout_s: float) -> None:
        new = [_NewTopic(t.name, num_partitions=t.partitions, replication_factor=t.replication_factor, config=t.configs) for t in topics]
        futures = self._a.create_topics(new, operation_timeout=timeout_s, request_timeout=timeout_s)
        for name, future in futures.items():
            try:
                future.result()
            except KafkaException as exc:
                err = exc.args[0] if exc.args and isinstance(exc.args[0], KafkaError) else None
                if err is not None and err.code() == KafkaError.TOPIC_ALREADY_EXISTS:
                    continue  # another service created it first
                raise KafkaClientError(f"cannot create topic {name}: {exc}") from exc
        deadline = time.monotonic() + timeout_s
        wanted = {t.name for t in topics}
        while not wanted <= set(self.topic_partitions(list(wanted))):
            if time.monotonic() > deadline:
                raise KafkaClientError(f"topics {sorted(wanted)} not visible within {timeout_s:g}s")
            time.sleep(0.1)

    def probe(self, timeout_s: float) -> None:
        try:
            self._a.list_topics(timeout=timeout_s)
        except KafkaException as exc:
            raise _error(exc) from exc

    def close(self) -> None:
        pass  # AdminClient has nothing to close; its threads end with it


class ConfluentClient:
    """Builds confluent-kafka clients for one cluster."""

    name = NAME

    def __init__(self, bootstrap: str, properties: Mapping[str, str] | None = None) -> None:
        self.bootstrap = bootstrap
        self._common: dict[str, Any] = {"bootstrap.servers": bootstrap, "logger": log, **translate_properties(properties)}

    def producer(self, *, client_id: str, transactional_id: str | None = None, transaction_timeout_ms: int | None = None,
                 linger_ms: int = 5, delivery_timeout_ms: int = 120_000, request_timeout_ms: int | None = None) -> ConfluentProducer:
        config: dict[str, Any] = {
            **self._common, "client.id": client_id, "acks": "all", "enable.idempotence": True, "linger.ms": linger_ms,
            "queue.buffering.max.messages": 500_000,
            # Kafka's (and kafka-python's) default partitioner: a key lands on the same partition
            # whichever client wrote it, so patient-keyed topics stay co-partitioned.
            "partitioner": "murmur2_random",
        }
        if transactional_id is not None:
            config["transactional.id"] = transactional_id
            config["retry.backoff.ms"] = TXN_RETRY_BACKOFF_MS
            if transaction_timeout_ms is not None:
                config["transaction.timeout.ms"] = transaction_timeout_ms
            # librdkafka refuses a message timeout longer than the transaction timeout (60 s by default).
            config["message.timeout.ms"] = min(delivery_timeout_ms, transaction_timeout_ms or 60_000)
        else:
            config["message.timeout.ms"] = delivery_timeout_ms
        if request_timeout_ms is not None:
            config["request.timeout.ms"] = request_timeout_ms
        return ConfluentProducer(config, transactional=transactional_id is not None)

    def consumer(self, *, client_id: str, group_id: str | None, assignor: str | None = None, max_poll_records: int = 10_000,
                 auto_offset_reset: str = "earliest", large_fetches: bool = False,
                 instance_id: str | None = None) -> ConfluentConsumer:
        config: dict[str, Any] = {
            **self._common, "client.id": client_id, "enable.auto.commit": False, "enable.auto.offset.store": False,
            "isolation.level": "read_committed", "auto.offset.reset": auto_offset_reset,
            # End-of-partition events tell `read_to_end` where a partition ends. Only for consumers
            # outside a group: consuming an EOF event moves the application position one past the
            # end, and a group member that keeps a partition through a cooperative rebalance
            # resumes from there (offset out of range -> reset -> records read twice).
            "enable.partition.eof": group_id is None,
            # The same liveness settings as kafka-python's defaults: a killed member's partitions
            # move after 10 s, not librdkafka's 45 s.
            "session.timeout.ms": SESSION_TIMEOUT_MS, "heartbeat.interval.ms": HEARTBEAT_INTERVAL_MS,
        }
        if instance_id is not None:
            config["group.instance.id"] = instance_id
        # librdkafka wants a group id even for assign()-only consumers; it is never joined or committed.
        config["group.id"] = group_id if group_id is not None else f"{client_id}-unjoined"
        if assignor is not None:
            config["partition.assignment.strategy"] = assignor
        if large_fetches:
            config.update({"max.partition.fetch.bytes": 8 * 1024 * 1024, "fetch.max.bytes": 64 * 1024 * 1024})
        return ConfluentConsumer(config, cooperative=assignor == COOPERATIVE_STICKY)

    def admin(self, *, client_id: str = "wardwatch-admin", timeout_s: float | None = None) -> ConfluentAdmin:
        return ConfluentAdmin({**self._common, "client.id": client_id}, timeout_s if timeout_s is not None else _OP_TIMEOUT_S)
