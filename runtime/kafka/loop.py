"""The transactional consume-transform-produce loop: the thin shell around a stage's core.

poll -> core.process(batch) -> produce outputs -> send offsets -> commit, all in one Kafka
transaction (exactly-once, docs/guarantees.md). Partition assignment restores state from the
changelog before any record of that partition is processed; revocation drops it. An aborted
transaction rewinds: state is rebuilt from the changelog and the consumer seeks back to the
committed offsets, so the retry sees exactly what the failed attempt saw.

Under a backlog, commits overlap the next batch (`overlap_commits`, the default). Sending a
transaction's offsets and committing it are round trips to the broker (about a third of the
loop's time on librdkafka), so for a batch of at least half `max_poll_records` a committer
thread finishes batch k's transaction while this thread polls and processes batch k+1. Smaller
batches (the loop is caught up) commit in turn: there the next batch would wait for this commit
and then its own, which adds a commit's time to the latency and gains nothing. Batch k+1's
transaction begins only once batch k's has committed: the transactions stay one after the
other, and batch k+1's outputs reach the producer only then.
If batch k's commit fails, batch k+1's outputs are thrown away unsent: the rewind rebuilds
state from the changelog and reads both batches again. A revocation waits for the transaction
in flight before it lets its partitions go (a failure found there rewinds after the poll that
ran the callback, and that poll's records are not processed); an idle poll settles it too, so
an aborted last batch does not wait for new input to be read again.

Restores do not stall the group. A partition being restored is paused in the consumer (its
records are not fetched, the group keeps it here), and its changelog is read a slice at a time
between polls (`ChangelogRestore`), while the other partitions keep flowing. When its changelog
is read to the end the core rebuilds its state and the partition is resumed. A revocation or a
rewind during a restore drops the half-read changelog. Partitions in restore are never in a
transaction: none of their records has been processed, so none of their offsets is committed.

Bad days (docs/guarantees.md). The client layer sorts every failure into one of four kinds
(runtime/kafka/client/base.py), and the loop answers each its own way:
- `KafkaClientError`: abort the transaction and rewind.
- `FatalKafkaError`: this producer instance is beyond use (the broker aborted our transaction
  while the process was paused past its transaction timeout, a network cut outlived it, the
  client is stuck mid epoch-bump). The producer is replaced: a new one with the same
  transactional id runs `init_transactions`, which fences the old epoch and finishes whatever
  it left open, and the loop rewinds as for any abort. A producer that cannot even abort is
  replaced the same way.
- `GroupFencedError`: who owns a partition is the consumer group's decision, not the
  producer's. The group instance id is the stage's instance id (static membership), so a second
  process started with the same id fences the first at the group coordinator, and every
  transaction carries the group generation (KIP-447), so a zombie can never commit offsets.
  The fenced process exits (FatalStreamError).
- `KafkaConfigError` (not authorised, unsupported version): exit; no retry can fix it.
Polls, restores and rewinds are retried through network errors: nothing was processed yet.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from runtime.config import StreamConfig
from runtime.kafka.admin import ensure_topics
from runtime.kafka.changelog import ChangelogRestore
from runtime.kafka.client import (
    BEGINNING,
    FatalKafkaError,
    GroupFencedError,
    KafkaClientError,
    KafkaConfigError,
    Producer,
    Record,
    TopicPartition,
    from_config,
    wait_for_broker,
)
from runtime.metrics import StreamMetrics
from runtime.processor import Processor
from runtime.records import InRecord, OutRecord
from runtime.topics import specs

log = logging.getLogger(__name__)

# How long to wait between attempts when the broker is unreachable (new producer, poll, rewind).
RETRY_BACKOFF_S = 1.0
# While partitions are restoring: how long each loop step reads their changelogs at least (as
# long as the last batch took, so that a busy loop shares its time about evenly between the
# restore and the other partitions), and how long a poll then waits for the other partitions'
# records (short: the restore goes on meanwhile).
RESTORE_SLICE_S = 0.1
RESTORE_POLL_S = 0.01


class FatalStreamError(RuntimeError):
    """The process can no longer take part safely (fenced by a newer instance, say)."""


class _Stopped(Exception):
    """The loop was told to stop while it was retrying a broker it cannot reach."""


@dataclass(slots=True)
class _InFlight:
    """A transaction whose outputs are sent and whose offsets and commit run on the committer thread."""

    done: Future[None]
    records_out: dict[str, int]  # outputs per topic, counted once it commits
    started: float  # perf_counter at begin_transaction


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
        self.producer_generation = 0
        # Partitions whose state is being restored (paused in the consumer): the restore reading
        # each (one per assignment, shared by its partitions), and when a failed one may retry.
        self._restores: dict[int, ChangelogRestore] = {}
        self._restore_retry_at: dict[int, float] = {}
        self._last_batch_s = 0.0
        self._committer: ThreadPoolExecutor | None = None
        self._in_flight: _InFlight | None = None
        # A transaction settled inside a rebalance callback that failed, answered after the poll.
        self._failure_due: tuple[KafkaClientError, int] | None = None

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
            # Static membership: the instance id is the identity the group fences zombies by.
            instance_id=cfg.transactional_id(self.stage),
        )
        if cfg.overlap_commits:
            self._committer = ThreadPoolExecutor(1, thread_name_prefix=f"{self.stage}-commit")
        try:
            self._producer = self._init_producer()
            inputs = [cfg.topic(t) for t in self.processor.input_topics]
            self._consumer.subscribe(inputs, on_assigned=self.assigned, on_revoked=self.revoked)
            log.info("stream started stage=%s group=%s inputs=%s client=%s",
                     self.stage, group, ",".join(self.processor.input_topics), self._kafka.name)
            while not self.stop.is_set():
                self._step()
        except _Stopped as stopped:
            log.warning("stream stopped while retrying stage=%s error=%s", self.stage, stopped)
        except GroupFencedError as exc:
            raise self._fenced(exc) from exc
        finally:
            self._close()

    def _close(self) -> None:
        self._settle_on_close()
        self._cancel_restores(sorted(self._restores))
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
        if self._committer is not None:
            self._committer.shutdown(wait=True)
        log.info("stream stopped stage=%s", self.stage)

    def _settle_on_close(self) -> None:
        """Let the transaction in flight finish (or fail: its batch is read again by whoever
        owns the partitions next, from the committed offsets) before the clients close."""
        flight, self._in_flight = self._in_flight, None
        failed = self._failure_due is not None  # found by a revocation in the last poll
        self._failure_due = None
        if flight is not None:
            try:
                flight.done.result()
                self._committed(flight.records_out, flight.started)
            except Exception as exc:  # stopping goes on either way
                failed = True
                log.warning("the last transaction failed while stopping stage=%s error=%s", self.stage, exc)
        if failed and self._producer is not None:
            self.metrics.transactions.labels(self.stage, "aborted").inc()
            try:
                # Ended now, so the next owner of its partitions does not wait for the timeout.
                self._producer.abort_transaction()
            except Exception as exc:  # the broker aborts it after the transaction timeout
                log.warning("abort while stopping failed stage=%s error=%s", self.stage, exc)

    # -- one batch ---------------------------------------------------------------------------
    def _step(self) -> None:
        if self._restores:
            self._advance_restores()
        timeout_s = RESTORE_POLL_S if self._restores else self.config.commit_interval_ms / 1000
        try:
            polled = self._consumer.poll(timeout_s, self.config.max_poll_records)
        except GroupFencedError as exc:
            raise self._fenced(exc) from exc
        except FatalKafkaError as exc:  # a consumer cannot be replaced under the group's feet
            raise FatalStreamError(f"{self.stage}: consumer can no longer take part ({exc})") from exc
        except KafkaClientError as exc:
            # Nothing was processed: a lost connection or coordinator only delays the batch.
            log.warning("poll failed stage=%s error=%s; retrying", self.stage, exc)
            self.stop.wait(RETRY_BACKOFF_S)
            return
        if self._failure_due is not None:
            # A transaction settled by a revocation during this poll failed: what it held is
            # read again from the committed offsets, and so are the records just polled.
            (failure, records_out), self._failure_due = self._failure_due, None
            self._failed(failure, records_out)
            return
        if self._restores:
            polled = self._withhold_restoring(polled)
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
            self._settle()  # idle: an aborted last batch is read again now, not on the next input
            return
        started = time.perf_counter()
        outputs = self.processor.process(records)
        self.metrics.batch_seconds.labels(self.stage).observe(time.perf_counter() - started)
        self.metrics.batch_size.labels(self.stage).observe(len(records))
        # Only a backlog's batch overlaps its commit: when the loop is caught up, the next batch
        # would wait for this commit and then its own, one commit longer than in turn.
        self._commit(outputs, offsets, overlap=2 * len(records) >= self.config.max_poll_records)
        self._last_batch_s = time.perf_counter() - started

    def _commit(self, outputs: list[OutRecord], offsets: dict[TopicPartition, int], *, overlap: bool = False) -> None:
        if not self._settle():
            return  # the previous transaction failed: state is rewound and this batch is read again
        started = time.perf_counter()
        records_out: dict[str, int] = {}
        for out in outputs:
            records_out[out.topic] = records_out.get(out.topic, 0) + 1
        try:
            if self._committer is None or not overlap:
                self._transact(outputs, offsets)
            else:
                self._send(outputs)
                # Taken now: the offsets must carry the generation this batch was polled under.
                done = self._committer.submit(self._finish, self._producer, offsets, self._consumer.group_metadata())
                self._in_flight = _InFlight(done, records_out, started)
                return
        except KafkaClientError as exc:
            self._failed(exc, len(outputs))
            return
        self._committed(records_out, started)

    def _settle(self, *, now: bool = True) -> bool:
        """Wait for the transaction in flight; False if it failed. The failure is answered as any
        failed transaction (`_failed`): at once, or with `now=False` (inside a rebalance
        callback, where a client may swallow what it raises) right after the poll."""
        flight, self._in_flight = self._in_flight, None
        if flight is None:
            return True
        try:
            flight.done.result()
        except KafkaClientError as exc:
            if now:
                self._failed(exc, sum(flight.records_out.values()))
            else:
                self._failure_due = (exc, sum(flight.records_out.values()))
            return False
        self._committed(flight.records_out, flight.started)
        return True

    def _committed(self, records_out: dict[str, int], started: float) -> None:
        self.metrics.transactions.labels(self.stage, "committed").inc()
        self.metrics.commit_seconds.labels(self.stage).observe(time.perf_counter() - started)
        for topic, n in records_out.items():
            self.metrics.records_out.labels(self.stage, topic).inc(n)

    def _failed(self, exc: KafkaClientError, records: int) -> None:
        """A transaction failed: end it (or replace the producer) and rewind."""
        self.metrics.transactions.labels(self.stage, "aborted").inc()
        self._exit_if_final(exc, "producer can no longer commit")
        log.warning("transaction aborted stage=%s records=%d error=%s", self.stage, records, exc)
        if isinstance(exc, FatalKafkaError):
            self._replace_producer(exc)
        else:
            self._abort_or_replace_producer(exc)
        self._rewind()

    def _transact(self, outputs: list[OutRecord], offsets: dict[TopicPartition, int]) -> None:
        """One transaction: outputs and the consumed offsets, committed together or not at all."""
        self._send(outputs)
        # The group metadata (generation, member and instance id) lets the broker refuse the
        # offsets of a member the group has since replaced (KIP-447).
        self._finish(self._producer, offsets, self._consumer.group_metadata())

    def _send(self, outputs: list[OutRecord]) -> None:
        """Begin a transaction and hand it the outputs."""
        producer = self._producer
        producer.begin_transaction()
        prefix = self.config.topic_prefix
        send = producer.send
        for out in outputs:
            send(prefix + out.topic, out.value, out.key, out.headers, out.partition, out.timestamp_ms)

    @staticmethod
    def _finish(producer: Producer, offsets: dict[TopicPartition, int], group_metadata: Any) -> None:
        """Add the consumed offsets to the open transaction and commit it (the committer
        thread's part when commits overlap)."""
        producer.send_offsets_to_transaction(offsets, group_metadata)
        producer.commit_transaction()

    def _exit_if_final(self, exc: KafkaClientError, what: str) -> None:
        """Raise FatalStreamError for the failures no new producer can fix."""
        if isinstance(exc, GroupFencedError):
            raise self._fenced(exc) from exc
        if isinstance(exc, KafkaConfigError):
            raise FatalStreamError(f"{self.stage}: {what} ({exc}); fix the configuration and restart") from exc

    def _abort_or_replace_producer(self, cause: KafkaClientError) -> None:
        """End the failed transaction; a producer that cannot abort is replaced."""
        try:
            self._producer.abort_transaction()
            return
        except KafkaClientError as exc:
            self._exit_if_final(exc, "cannot abort transaction")
            log.warning("producer cannot abort stage=%s error=%s cause=%s", self.stage, exc, cause)
        self._replace_producer(cause)

    def _replace_producer(self, cause: KafkaClientError) -> None:
        """Close this producer and start a new one with the same transactional id, whose
        `init_transactions` aborts whatever the old one left open."""
        log.warning("replacing the producer stage=%s cause=%s", self.stage, cause)
        old, self._producer = self._producer, None
        try:
            if old is not None:
                old.close(timeout_s=0)
        except Exception as exc:  # the old producer is beyond use either way
            log.warning("closing the old producer failed stage=%s error=%r", self.stage, exc)
        self._producer = self._init_producer()

    def _init_producer(self) -> Producer:
        """A transactional producer for this stage with its transactions initialised; retried
        while the broker is unreachable (or the previous epoch is still being fenced)."""
        cfg = self.config
        while True:
            producer: Producer | None = None
            try:
                producer = self._kafka.producer(
                    client_id=f"{cfg.group(self.stage)}-producer",
                    transactional_id=cfg.transactional_id(self.stage),
                    transaction_timeout_ms=cfg.transaction_timeout_ms,
                    # A record still undelivered when the broker aborts its transaction is
                    # worth nothing: fail it then, so the loop aborts and rewinds at once.
                    # (A request must fit in it: kafka-python insists.)
                    delivery_timeout_ms=cfg.transaction_timeout_ms,
                    request_timeout_ms=cfg.transaction_timeout_ms // 2,
                )
                producer.init_transactions()
            except KafkaClientError as exc:
                if producer is not None:
                    try:
                        producer.close(timeout_s=0)
                    except Exception as close_exc:
                        log.warning("closing a failed producer failed stage=%s error=%r", self.stage, close_exc)
                self._exit_if_final(exc, "cannot initialise transactions")
                if self.stop.is_set():
                    raise _Stopped(f"initialising transactions: {exc}") from exc
                log.warning("initialising transactions failed stage=%s error=%s; retrying", self.stage, exc)
                self.stop.wait(RETRY_BACKOFF_S)
                continue
            self.producer_generation += 1
            if self.producer_generation > 1:
                log.info("producer replaced stage=%s generation=%d", self.stage, self.producer_generation)
            return producer

    def _fenced(self, exc: BaseException) -> FatalStreamError:
        return FatalStreamError(
            f"{self.stage}: fenced: another instance with the same instance id "
            f"({self.config.transactional_id(self.stage)}) has taken this one's place in the group ({exc})"
        )

    def _rewind(self) -> None:
        """After an abort: rebuild state from the changelog and re-read from committed offsets.
        Every owned partition is dropped and restored (paused until its restore is done);
        retried while the broker is unreachable: no record may be processed before it is done."""
        owned = sorted(self.owned)
        self._cancel_restores(owned)
        self.processor.drop(owned)
        while True:
            try:
                assignment = self._consumer.assignment()
                for tp, committed in self._consumer.committed(assignment).items():
                    self._consumer.seek(tp, BEGINNING if committed is None else committed)
                break
            except GroupFencedError as exc:
                raise self._fenced(exc) from exc
            except KafkaClientError as exc:
                if self.stop.is_set():
                    raise _Stopped(f"rewind: {exc}") from exc
                log.warning("rewind failed stage=%s error=%s; retrying", self.stage, exc)
                self.stop.wait(RETRY_BACKOFF_S)
        self._begin_restores(owned, assignment)

    # -- rebalance ---------------------------------------------------------------------------
    def assigned(self, tps: list[TopicPartition]) -> None:
        new = sorted({tp.partition for tp in tps} - self.owned)
        self.metrics.rebalances.labels(self.stage, "assigned").inc()
        self.owned |= set(new)
        self.metrics.assigned.labels(self.stage).set(len(self.owned))
        self._begin_restores(new, tps)
        log.info("partitions assigned stage=%s partitions=%s owned=%s", self.stage, new, sorted(self.owned))

    def revoked(self, tps: list[TopicPartition]) -> None:
        # The transaction in flight holds offsets of these partitions: it ends before they go.
        self._settle(now=False)
        gone = sorted({tp.partition for tp in tps} & self.owned)
        for tp in tps:
            self._positions.pop(tp, None)
            try:
                self.metrics.lag.remove(self.stage, tp.topic[len(self.config.topic_prefix) :], str(tp.partition))
            except KeyError:
                pass
        self.metrics.rebalances.labels(self.stage, "revoked").inc()
        # A half-restored partition is let go with the rest: its changelog read is dropped.
        self._cancel_restores(gone)
        self.processor.drop(gone)
        self.owned -= set(gone)
        self.metrics.assigned.labels(self.stage).set(len(self.owned))
        log.info("partitions revoked stage=%s partitions=%s", self.stage, gone)

    # -- restore -----------------------------------------------------------------------------
    def _begin_restores(self, partitions: list[int], assigned: list[TopicPartition]) -> None:
        """Pause `partitions` (among the `assigned` input partitions) and start reading their
        changelogs; `_advance_restores` carries on between polls."""
        if not self.processor.changelog_topic or not partitions:
            return
        self._cancel_restores(partitions)
        self._start_restore(partitions)
        paused = [tp for tp in assigned if tp.partition in self._restores]
        if paused:
            self._consumer.pause(paused)

    def _start_restore(self, partitions: list[int], retry_at: float = 0.0) -> None:
        topic = self.processor.changelog_topic
        assert topic is not None
        restore = ChangelogRestore(self._kafka, self.config.topic(topic), partitions, client_id=self.config.group(self.stage))
        for partition in partitions:
            self._restores[partition] = restore
            if retry_at:
                self._restore_retry_at[partition] = retry_at
        self.metrics.restoring.labels(self.stage).set(len(self._restores))

    def _cancel_restores(self, partitions: list[int]) -> None:
        for partition in partitions:
            restore = self._restores.pop(partition, None)
            self._restore_retry_at.pop(partition, None)
            if restore is not None:
                try:
                    restore.drop(partition)
                except Exception as exc:  # the restore consumer is dropped either way
                    log.warning("closing a restore consumer failed stage=%s error=%r", self.stage, exc)
        self.metrics.restoring.labels(self.stage).set(len(self._restores))

    def _advance_restores(self) -> None:
        """Read the pending changelogs for a slice (RESTORE_SLICE_S, or as long as the last
        batch took) in all; each partition read to its end gets its state rebuilt and is
        resumed at once (a small one does not wait for a large one)."""
        now = time.monotonic()
        restores = {id(r): r for p, r in sorted(self._restores.items()) if self._restore_retry_at.get(p, 0.0) <= now}
        budget_s = max(RESTORE_SLICE_S, self._last_batch_s)
        self._last_batch_s = 0.0
        for restore in restores.values():
            try:
                finished = restore.step(budget_s / len(restores))
            except KafkaConfigError as exc:
                raise FatalStreamError(f"{self.stage}: cannot read the changelog ({exc})") from exc
            except (KafkaClientError, OSError) as exc:
                # A partition is never processed on partial state: read its changelog again.
                partitions = sorted(restore.partitions)
                log.warning("restore failed stage=%s partitions=%s error=%s; retrying", self.stage, partitions, exc)
                self._cancel_restores(partitions)
                self.processor.drop(partitions)  # what slices of it were already rebuilt
                self._start_restore(partitions, retry_at=now + RETRY_BACKOFF_S)
                continue
            if getattr(self.processor, "restore_in_slices", False):
                # The state is rebuilt as the changelog is read, so no single call holds the
                # loop for a whole large partition.
                for partition in sorted(restore.partitions | set(finished)):
                    entries = restore.entries.get(partition)
                    if entries and self._restores.get(partition) is restore:
                        self.processor.restore(partition, entries)
                        restore.applied[partition] = restore.applied.get(partition, 0) + len(entries)
                        entries.clear()
            for partition in finished:
                if self._restores.get(partition) is restore:
                    self._finish_restore(partition, restore)

    def _finish_restore(self, partition: int, restore: ChangelogRestore) -> None:
        entries = restore.entries.pop(partition)
        self.processor.restore(partition, entries)
        count = restore.applied.pop(partition, 0) + len(entries)
        del self._restores[partition]
        self._restore_retry_at.pop(partition, None)
        self.metrics.restoring.labels(self.stage).set(len(self._restores))
        resumed = [tp for tp in self._consumer.assignment() if tp.partition == partition]
        if resumed:
            self._consumer.resume(resumed)
        elapsed = time.perf_counter() - restore.started
        self.metrics.restore_seconds.labels(self.stage).observe(elapsed)
        self.metrics.restore_records.labels(self.stage).inc(count)
        log.info("state restored stage=%s partition=%d records=%d seconds=%.3f restoring=%d",
                 self.stage, partition, count, elapsed, len(self._restores))

    def _withhold_restoring(self, polled: list[Record]) -> list[Record]:
        """Records of a partition still restoring are not processed. A paused partition yields
        none; should a client return one anyway, the partition is sought back to it, so it is
        read again once resumed."""
        kept: list[Record] = []
        first: dict[TopicPartition, int] = {}
        for r in polled:
            if r.partition in self._restores:
                tp = TopicPartition(r.topic, r.partition)
                first[tp] = min(r.offset, first.get(tp, r.offset))
            else:
                kept.append(r)
        for tp, offset in first.items():
            log.warning("records of a restoring partition withheld stage=%s partition=%d offset=%d", self.stage, tp.partition, offset)
            self._consumer.seek(tp, offset)
        return kept

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

