"""The transactional consume-transform-produce loop: the thin shell around a stage's core.

poll -> core.process(batch) -> produce outputs -> send offsets -> commit, all in one Kafka
transaction (exactly-once, docs/guarantees.md). Partition assignment restores state from the
changelog before any record of that partition is processed; revocation drops it. An aborted
transaction rewinds: state is rebuilt from the changelog and the consumer seeks back to the
committed offsets, so the retry sees exactly what the failed attempt saw.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from runtime.config import StreamConfig
from runtime.kafka.admin import ensure_topics
from runtime.kafka.changelog import read_changelog
from runtime.kafka.client import BEGINNING, FatalKafkaError, KafkaClientError, TopicPartition, from_config, wait_for_broker
from runtime.metrics import StreamMetrics
from runtime.processor import Processor
from runtime.records import InRecord, OutRecord
from runtime.topics import specs

log = logging.getLogger(__name__)

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
        assignor: str | None = None,
    ) -> None:
        self.processor = processor
        self.config = config
        self.metrics = metrics
        self.stop = stop
        self.stage = processor.stage
        self.assignor = assignor
        self.owned: set[int] = set()
        self._last_lag_update = 0.0
        self._kafka = from_config(config)
        self._consumer: Any = None
        self._producer: Any = None
        self._positions: dict[TopicPartition, int] = {}

    # -- lifecycle ---------------------------------------------------------------------------
    def run(self) -> None:
        cfg = self.config
        topics = {*self.processor.input_topics, *self.processor.output_topics}
        if self.processor.changelog_topic:
            topics.add(self.processor.changelog_topic)
        wait_for_broker(self._kafka)
        ensure_topics(self._kafka, specs(*sorted(topics)), cfg.partitions, cfg.replication_factor, cfg.topic_prefix)
        group = cfg.group(self.stage)
        self._consumer = self._kafka.consumer(
            client_id=f"{group}-consumer",
            group_id=group,
            assignor=self.assignor,
            max_poll_records=cfg.max_poll_records,
        )
        self._producer = self._kafka.producer(
            client_id=f"{group}-producer",
            transactional_id=cfg.transactional_id(self.stage),
            transaction_timeout_ms=cfg.transaction_timeout_ms,
        )
        try:
            self._producer.init_transactions()
            inputs = [cfg.topic(t) for t in self.processor.input_topics]
            self._consumer.subscribe(inputs, on_assigned=self.assigned, on_revoked=self.revoked)
            log.info("stream started stage=%s group=%s inputs=%s client=%s",
                     self.stage, group, ",".join(self.processor.input_topics), self._kafka.name)
            while not self.stop.is_set():
                self._step()
        finally:
            self._close()

    def _close(self) -> None:
        if self._consumer is not None:
            try:
                self._consumer.close()
            except Exception as exc:  # closing must not hide the reason we are closing
                log.warning("consumer close failed error=%r", exc)
        if self._producer is not None:
            try:
                self._producer.close(timeout_s=5)
            except Exception as exc:
                log.warning("producer close failed error=%r", exc)
        log.info("stream stopped stage=%s", self.stage)

    # -- one batch ---------------------------------------------------------------------------
    def _step(self) -> None:
        polled = self._consumer.poll(self.config.commit_interval_ms / 1000, self.config.max_poll_records)
        prefix = len(self.config.topic_prefix)
        records = [InRecord(r.topic[prefix:], r.partition, r.offset, r.key, r.value, r.timestamp_ms, r.headers) for r in polled]
        # Each partition's records come in offset order: the last one seen is the next offset.
        next_offsets: dict[tuple[str, int], int] = {}
        counts: dict[tuple[str, int], int] = {}
        for r in polled:
            key = (r.topic, r.partition)
            next_offsets[key] = r.offset + 1
            counts[key] = counts.get(key, 0) + 1
        offsets: dict[TopicPartition, int] = {}
        for (topic, partition), offset in next_offsets.items():
            tp = TopicPartition(topic, partition)
            offsets[tp] = offset
            self._positions[tp] = offset
            self.metrics.records_in.labels(self.stage, topic[prefix:]).inc(counts[(topic, partition)])
        self._update_lag()
        if not records:
            return
        started = time.perf_counter()
        outputs = self.processor.process(records)
        self.metrics.batch_seconds.labels(self.stage).observe(time.perf_counter() - started)
        self.metrics.batch_size.labels(self.stage).observe(len(records))
        self._commit(outputs, offsets)

    def _commit(self, outputs: list[OutRecord], offsets: dict[TopicPartition, int]) -> None:
        producer = self._producer
        started = time.perf_counter()
        try:
            producer.begin_transaction()
            prefix = self.config.topic_prefix
            send = producer.send
            for out in outputs:
                send(prefix + out.topic, out.value, out.key, out.headers, out.partition, out.timestamp_ms)
            producer.send_offsets_to_transaction(offsets, self._consumer.group_metadata())
            producer.commit_transaction()
        except FatalKafkaError as exc:
            self.metrics.transactions.labels(self.stage, "aborted").inc()
            raise FatalStreamError(f"{self.stage}: producer can no longer commit ({exc!r}); restart the process") from exc
        except KafkaClientError as exc:
            self.metrics.transactions.labels(self.stage, "aborted").inc()
            log.warning("transaction aborted stage=%s records=%d error=%r", self.stage, len(outputs), exc)
            try:
                producer.abort_transaction()
            except FatalKafkaError as fatal:
                raise FatalStreamError(f"{self.stage}: cannot abort transaction ({fatal!r})") from fatal
            except KafkaClientError as abort_exc:
                raise FatalStreamError(f"{self.stage}: cannot abort transaction ({abort_exc!r})") from abort_exc
            self._rewind()
            return
        self.metrics.transactions.labels(self.stage, "committed").inc()
        self.metrics.commit_seconds.labels(self.stage).observe(time.perf_counter() - started)
        counts: dict[str, int] = {}
        for out in outputs:
            counts[out.topic] = counts.get(out.topic, 0) + 1
        for topic, n in counts.items():
            self.metrics.records_out.labels(self.stage, topic).inc(n)

    def _rewind(self) -> None:
        """After an abort: rebuild state from the changelog and re-read from committed offsets."""
        owned = sorted(self.owned)
        self.processor.drop(owned)
        self.restore(owned)
        assignment = self._consumer.assignment()
        for tp, committed in self._consumer.committed(assignment).items():
            self._consumer.seek(tp, BEGINNING if committed is None else committed)

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
        count = 0
        by_partition: dict[int, list[tuple[bytes, bytes | None]]] = {p: [] for p in partitions}
        for partition, key, value in read_changelog(
            self._kafka, self.config.topic(topic), partitions, client_id=self.config.group(self.stage)
        ):
            by_partition[partition].append((key, value))
            count += 1
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
            # The consumer's own position has stepped over transaction markers, which our
            # last-consumed offset has not: under read_committed that is the honest lag.
            position = self._consumer.position(tp)
            if position is not None:
                self.metrics.lag.labels(self.stage, tp.topic[prefix:], str(tp.partition)).set(max(0, high - position))

