"""The transactional consume-transform-produce loop: the thin shell around a stage's core.

poll -> core.process(batch) -> produce outputs -> send offsets -> commit, all in one Kafka
transaction (exactly-once, DESIGN.md §3). Partition assignment restores state from the
changelog before any record of that partition is processed; revocation drops it. An aborted
transaction rewinds: state is rebuilt from the changelog and the consumer seeks back to the
committed offsets, so the retry sees exactly what the failed attempt saw.

Bad days (DESIGN.md §3): a transaction that fails is aborted and rewound. When the producer
cannot even abort (the broker aborted our transaction while the process was paused past its
transaction timeout, a network cut outlived it, the client is mid epoch-bump) the producer is
replaced: a new one with the same transactional id runs `init_transactions`, which fences the
old epoch and finishes whatever it left open, and the loop rewinds as for any abort. Who owns
a partition is the consumer group's decision, not the producer's: the group instance id is the
stage's instance id (static membership), so a second process started with the same id fences
the first at the group coordinator (FENCED_INSTANCE_ID), and every transaction carries the
group generation (KIP-447), so a zombie can never commit offsets. Only that group fencing, or
a configuration error, makes the loop give up.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from typing import Any

from kafka import ConsumerRebalanceListener, TopicPartition
from kafka.errors import (
    AuthorizationError,
    FencedInstanceIdError,
    KafkaError,
    UnsupportedVersionError,
)
from kafka.structs import OffsetAndMetadata

from runtime.config import StreamConfig
from runtime.kafka import clients
from runtime.kafka.admin import ensure_topics
from runtime.kafka.changelog import read_changelog
from runtime.metrics import StreamMetrics
from runtime.processor import Processor
from runtime.records import InRecord, OutRecord
from runtime.topics import specs

log = logging.getLogger(__name__)

# Configuration problems: no retry or new producer can fix them.
FATAL = (AuthorizationError, UnsupportedVersionError)
# How long to wait between attempts to initialise a replacement producer (broker unreachable).
REINIT_BACKOFF_S = 1.0
# Static members are only replaced after the session timeout; Kafka's pre-3.0 default keeps
# a crashed or paused instance's partitions idle for at most this long.
SESSION_TIMEOUT_MS = 10_000


def is_group_fenced(exc: BaseException) -> bool:
    """True when another process registered this stage's group instance id: it owns our
    partitions now. Clients report it as FencedInstanceIdError, or wrap it in the error that
    poisons the transaction ("... error state: FencedInstanceIdError")."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, FencedInstanceIdError) or "FencedInstanceId" in str(current) or "FENCED_INSTANCE_ID" in str(current):
            return True
        current = current.__cause__ or current.__context__
    return False


class FatalStreamError(RuntimeError):
    """The process can no longer take part safely (fenced by a newer instance, say)."""


class StreamLoop:
    """Runs one `Processor` against Kafka until `stop` is set."""

    def __init__(
        self,
        processor: Processor,
        config: StreamConfig,
        metrics: StreamMetrics,
        stop: threading.Event,
        *,
        assignors: Sequence[Any] | None = None,
    ) -> None:
        self.processor = processor
        self.config = config
        self.metrics = metrics
        self.stop = stop
        self.stage = processor.stage
        self.assignors = assignors
        self.owned: set[int] = set()
        self._last_lag_update = 0.0
        self._consumer: Any = None
        self._producer: Any = None
        self._positions: dict[TopicPartition, int] = {}
        self.producer_generation = 0

    # -- lifecycle ---------------------------------------------------------------------------
    def run(self) -> None:
        cfg = self.config
        topics = {*self.processor.input_topics, *self.processor.output_topics}
        if self.processor.changelog_topic:
            topics.add(self.processor.changelog_topic)
        clients.wait_for_broker(cfg.bootstrap_servers)
        ensure_topics(cfg.bootstrap_servers, specs(*sorted(topics)), cfg.partitions, cfg.replication_factor, cfg.topic_prefix)
        group = cfg.group(self.stage)
        extra: dict[str, Any] = {}
        if self.assignors:
            extra["partition_assignment_strategy"] = list(self.assignors)
        self._consumer = clients.consumer(
            cfg.bootstrap_servers,
            client_id=f"{group}-consumer",
            group_id=group,
            max_poll_records=cfg.max_poll_records,
            # Static membership: the instance id is the identity the group fences zombies by.
            group_instance_id=cfg.transactional_id(self.stage),
            session_timeout_ms=SESSION_TIMEOUT_MS,
            **extra,
        )
        try:
            self._producer = self._init_producer()
            inputs = [cfg.topic(t) for t in self.processor.input_topics]
            self._consumer.subscribe(topics=inputs, listener=_Rebalance(self))
            log.info("stream started stage=%s group=%s inputs=%s", self.stage, group, ",".join(self.processor.input_topics))
            while not self.stop.is_set():
                try:
                    self._step()
                except KafkaError as exc:
                    if is_group_fenced(exc):
                        raise self._fenced(exc) from exc
                    raise
        finally:
            self._close()

    def _close(self) -> None:
        if self._consumer is not None:
            try:
                self._consumer.close(autocommit=False)
            except Exception as exc:  # closing must not hide the reason we are closing
                log.warning("consumer close failed error=%r", exc)
        if self._producer is not None:
            try:
                self._producer.close(timeout=5)
            except Exception as exc:
                log.warning("producer close failed error=%r", exc)
        log.info("stream stopped stage=%s", self.stage)

    # -- one batch ---------------------------------------------------------------------------
    def _step(self) -> None:
        try:
            polled = self._consumer.poll(timeout_ms=self.config.commit_interval_ms, max_records=self.config.max_poll_records)
        except KafkaError as exc:
            # Nothing was processed: a lost connection or coordinator only delays the batch.
            if is_group_fenced(exc):
                raise self._fenced(exc) from exc
            if isinstance(exc, FATAL):
                raise FatalStreamError(f"{self.stage}: consumer can no longer take part ({exc!r})") from exc
            log.warning("poll failed stage=%s error=%r; retrying", self.stage, exc)
            self.stop.wait(REINIT_BACKOFF_S)
            return
        prefix = self.config.topic_prefix
        records: list[InRecord] = []
        offsets: dict[TopicPartition, OffsetAndMetadata] = {}
        for tp, batch in polled.items():
            for r in batch:
                records.append(
                    InRecord(
                        topic=r.topic[len(prefix) :],
                        partition=r.partition,
                        offset=r.offset,
                        key=r.key,
                        value=r.value,
                        timestamp_ms=r.timestamp,
                        headers=list(r.headers or []),
                    )
                )
            if batch:
                offsets[tp] = OffsetAndMetadata(batch[-1].offset + 1, "", -1)
                self._positions[tp] = batch[-1].offset + 1
                self.metrics.records_in.labels(self.stage, tp.topic[len(prefix) :]).inc(len(batch))
        self._update_lag()
        if not records:
            return
        started = time.perf_counter()
        outputs = self.processor.process(records)
        self.metrics.batch_seconds.labels(self.stage).observe(time.perf_counter() - started)
        self.metrics.batch_size.labels(self.stage).observe(len(records))
        self._commit(outputs, offsets)

    def _commit(self, outputs: list[OutRecord], offsets: dict[TopicPartition, OffsetAndMetadata]) -> None:
        started = time.perf_counter()
        try:
            self._transact(outputs, offsets)
        except KafkaError as exc:
            self.metrics.transactions.labels(self.stage, "aborted").inc()
            if is_group_fenced(exc):
                raise self._fenced(exc) from exc
            if isinstance(exc, FATAL):
                raise FatalStreamError(f"{self.stage}: producer can no longer commit ({exc!r}); fix the configuration and restart") from exc
            log.warning("transaction aborted stage=%s records=%d error=%r", self.stage, len(outputs), exc)
            self._abort_or_replace_producer(exc)
            self._rewind()
            return
        self.metrics.transactions.labels(self.stage, "committed").inc()
        self.metrics.commit_seconds.labels(self.stage).observe(time.perf_counter() - started)
        counts: dict[str, int] = {}
        for out in outputs:
            counts[out.topic] = counts.get(out.topic, 0) + 1
        for topic, n in counts.items():
            self.metrics.records_out.labels(self.stage, topic).inc(n)

    def _transact(self, outputs: list[OutRecord], offsets: dict[TopicPartition, OffsetAndMetadata]) -> None:
        """One transaction: outputs and the consumed offsets, committed together or not at all."""
        producer = self._producer
        producer.begin_transaction()
        for out in outputs:
            producer.send(
                self.config.topic_prefix + out.topic,
                key=out.key,
                value=out.value,
                headers=out.headers,
                partition=out.partition,
                timestamp_ms=out.timestamp_ms,
            )
        # The group metadata (generation, member and instance id) lets the broker refuse the
        # offsets of a member the group has since replaced (KIP-447).
        producer.send_offsets_to_transaction(offsets, self._consumer.group_metadata())
        producer.commit_transaction()

    def _abort_or_replace_producer(self, cause: BaseException) -> None:
        """End the failed transaction. A producer that cannot abort (its epoch was fenced by the
        broker's timeout abort, it is mid epoch-bump, its transaction state is poisoned) is
        replaced by a new one with the same transactional id, whose `init_transactions` aborts
        whatever the old one left open."""
        try:
            self._producer.abort_transaction()
            return
        except KafkaError as exc:
            if is_group_fenced(exc):
                raise self._fenced(exc) from exc
            if isinstance(exc, FATAL):
                raise FatalStreamError(f"{self.stage}: cannot abort transaction ({exc!r})") from exc
            log.warning("producer cannot abort stage=%s error=%r cause=%r: replacing it", self.stage, exc, cause)
        self._replace_producer()

    def _replace_producer(self) -> None:
        old, self._producer = self._producer, None
        try:
            if old is not None:
                old.close(timeout=0)
        except Exception as exc:  # the old producer is beyond use either way
            log.warning("closing the old producer failed stage=%s error=%r", self.stage, exc)
        self._producer = self._init_producer()

    def _init_producer(self) -> Any:
        """A transactional producer for this stage with its transactions initialised; retried
        while the broker is unreachable. None when the loop was stopped meanwhile."""
        cfg = self.config
        while True:
            producer = clients.producer(
                cfg.bootstrap_servers,
                client_id=f"{cfg.group(self.stage)}-producer",
                transactional_id=cfg.transactional_id(self.stage),
                transaction_timeout_ms=cfg.transaction_timeout_ms,
            )
            try:
                producer.init_transactions()
            except FATAL as exc:
                producer.close(timeout=0)
                raise FatalStreamError(f"{self.stage}: cannot initialise transactions ({exc!r})") from exc
            except KafkaError as exc:
                producer.close(timeout=0)
                if self.stop.is_set():
                    return None
                log.warning("initialising transactions failed stage=%s error=%r; retrying", self.stage, exc)
                self.stop.wait(REINIT_BACKOFF_S)
                continue
            self.producer_generation += 1
            if self.producer_generation > 1:
                log.info("producer replaced stage=%s generation=%d", self.stage, self.producer_generation)
            return producer

    def _fenced(self, exc: BaseException) -> FatalStreamError:
        return FatalStreamError(
            f"{self.stage}: fenced: another instance with the same instance id "
            f"({self.config.transactional_id(self.stage)}) has taken this one's place in the group ({exc!r})"
        )

    def _rewind(self) -> None:
        """After an abort: rebuild state from the changelog and re-read from committed offsets.
        Retried while the broker is unreachable: no record may be processed before it is done."""
        owned = sorted(self.owned)
        self.processor.drop(owned)
        self.restore(owned)
        while True:
            try:
                for tp in self._consumer.assignment():
                    committed = self._consumer.committed(tp)
                    if committed is None:
                        self._consumer.seek_to_beginning(tp)
                    else:
                        self._consumer.seek(tp, committed)
                return
            except KafkaError as exc:
                if self.stop.is_set():
                    raise FatalStreamError(f"{self.stage}: stopped during a rewind ({exc!r})") from exc
                log.warning("rewind failed stage=%s error=%r; retrying", self.stage, exc)
                self.stop.wait(REINIT_BACKOFF_S)

    # -- rebalance ---------------------------------------------------------------------------
    def assigned(self, tps: list[TopicPartition]) -> None:
        new = sorted({tp.partition for tp in tps} - self.owned)
        self.metrics.rebalances.labels(self.stage, "assigned").inc()
        self.owned |= set(new)
        self.metrics.assigned.labels(self.stage).set(len(self.owned))
        self.restore(new)
        log.info("partitions assigned stage=%s partitions=%s owned=%s", self.stage, new, sorted(self.owned))

    def revoked(self, tps: list[TopicPartition]) -> None:
        gone = sorted({tp.partition for tp in tps} & self.owned)
        for tp in tps:
            self._positions.pop(tp, None)
            try:
                self.metrics.lag.remove(self.stage, tp.topic[len(self.config.topic_prefix) :], str(tp.partition))
            except KeyError:
                pass
        self.metrics.rebalances.labels(self.stage, "revoked").inc()
        self.processor.drop(gone)
        self.owned -= set(gone)
        self.metrics.assigned.labels(self.stage).set(len(self.owned))
        log.info("partitions revoked stage=%s partitions=%s", self.stage, gone)

    def restore(self, partitions: list[int]) -> None:
        topic = self.processor.changelog_topic
        if not topic or not partitions:
            return
        started = time.perf_counter()
        while True:
            count = 0
            by_partition: dict[int, list[tuple[bytes, bytes | None]]] = {p: [] for p in partitions}
            try:
                for partition, key, value in read_changelog(
                    self.config.bootstrap_servers, self.config.topic(topic), partitions, client_id=self.config.group(self.stage)
                ):
                    by_partition[partition].append((key, value))
                    count += 1
                break
            except (KafkaError, OSError) as exc:
                # A partition is never processed on partial state: read the changelog again.
                if self.stop.is_set():
                    raise FatalStreamError(f"{self.stage}: stopped during a restore ({exc!r})") from exc
                log.warning("restore failed stage=%s partitions=%s error=%r; retrying", self.stage, partitions, exc)
                self.stop.wait(REINIT_BACKOFF_S)
        for partition, entries in by_partition.items():
            self.processor.restore(partition, entries)
        elapsed = time.perf_counter() - started
        self.metrics.restore_seconds.labels(self.stage).observe(elapsed)
        self.metrics.restore_records.labels(self.stage).inc(count)
        log.info("state restored stage=%s partitions=%s records=%d seconds=%.3f", self.stage, partitions, count, elapsed)

    def _update_lag(self) -> None:
        now = time.monotonic()
        if now - self._last_lag_update < 1.0:
            return
        self._last_lag_update = now
        prefix = len(self.config.topic_prefix)
        for tp in self._consumer.assignment():
            high = self._consumer.highwater(tp)
            if high is None or tp not in self._positions:
                continue
            try:
                # The consumer's own position has stepped over transaction markers, which our
                # last-consumed offset has not: under read_committed that is the honest lag.
                position = self._consumer.position(tp, timeout_ms=0)
            except KafkaError:
                continue
            if position is not None:
                self.metrics.lag.labels(self.stage, tp.topic[prefix:], str(tp.partition)).set(max(0, high - position))


class _Rebalance(ConsumerRebalanceListener):
    def __init__(self, loop: StreamLoop) -> None:
        self.loop = loop

    def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        self.loop.revoked(list(revoked))

    def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        self.loop.assigned(list(assigned))
