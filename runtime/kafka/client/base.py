"""The Kafka client interface the runtime and the services program against.

Two implementations sit behind it: kafka-python (`kafka_python.py`) and confluent-kafka, the
librdkafka binding (`confluent.py`). Everything a stage sees is defined here: records,
partitions, the transactional producer, the consumer with rebalance callbacks, topic admin and
the errors. No client library's type crosses this boundary.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, NamedTuple, Protocol

from runtime.records import Headers, InRecord

# Special start offsets for `Consumer.assign` and `Consumer.seek` (same values as librdkafka's).
BEGINNING: Final = -2
END: Final = -1

# Partition assignment strategies a consumer group may use.
RANGE: Final = "range"
COOPERATIVE_STICKY: Final = "cooperative-sticky"
ASSIGNORS: Final = (RANGE, COOPERATIVE_STICKY)

# A group member that stops heartbeating (crashed, paused, cut off) loses its partitions after
# this long; a static member restarted within it gets them back without a rebalance.
SESSION_TIMEOUT_MS: Final = 10_000
HEARTBEAT_INTERVAL_MS: Final = 3_000

# How long a transactional producer waits before it retries a request the broker refused for
# now. A transaction that begins right after the last one committed finds the broker still
# writing the last one's commit markers, and AddOffsetsToTxn comes back CONCURRENT_TRANSACTIONS
# (retriable). Both clients wait `retry.backoff.ms`, 100 ms by default, before trying again,
# while the markers take a few milliseconds. `python -m bench.transactions` measures both
# settings on both clients (back-to-back transactions of 120 records; at 10 ms confluent-kafka's
# median fell from 103 to 14 ms). A broker that is down is another path: reconnects keep their
# own backoff.
TXN_RETRY_BACKOFF_MS: Final = 10


class TopicPartition(NamedTuple):
    """One partition of one topic (hashable: a dict key for offsets and lag)."""

    topic: str
    partition: int


# One consumed record, with the topic's full name on the cluster: the record type a core sees
# (the loop hands it on with the topic prefix taken off).
Record = InRecord


@dataclass(frozen=True)
class NewTopic:
    name: str
    partitions: int
    replication_factor: int
    configs: dict[str, str] = field(default_factory=dict)


class KafkaClientError(Exception):
    """A Kafka operation failed; the current transaction (if any) can be aborted and retried."""


class FatalKafkaError(KafkaClientError):
    """This client instance can no longer be used: its producer epoch was fenced (the broker
    aborted its timed-out transaction, or a newer producer took its transactional id), its
    transaction state is poisoned. A new instance may succeed: a new transactional producer's
    `init_transactions` finishes whatever the old one left open."""


class GroupFencedError(FatalKafkaError):
    """Another consumer registered this one's group instance id (static membership): it owns
    the partitions now, and this process must stop taking part (FENCED_INSTANCE_ID)."""


class KafkaConfigError(FatalKafkaError):
    """No new client instance can fix it: not authorised, or the broker does not support what
    the client needs. The configuration must change."""


def error_class(*, fenced: bool, misconfigured: bool, fatal: bool) -> type[KafkaClientError]:
    """Which client error a failure is, the most specific first (one order for every client):
    another member took this one's group instance id, the configuration must change, this
    instance is beyond use, or the operation may be retried."""
    if fenced:
        return GroupFencedError
    if misconfigured:
        return KafkaConfigError
    if fatal:
        return FatalKafkaError
    return KafkaClientError


class Delivery(Protocol):
    """One produced record's acknowledgement."""

    def wait(self, timeout_s: float) -> tuple[int, int]:
        """Block until the broker acknowledged the record; return its (partition, offset).
        Raise KafkaClientError if it was not acknowledged in time."""
        ...


class Producer(Protocol):
    def send(
        self,
        topic: str,
        value: bytes | None,
        key: bytes | None = None,
        headers: Headers | None = None,
        partition: int | None = None,
        timestamp_ms: int | None = None,
    ) -> None:
        """Queue one record; failures surface at `flush` or `commit_transaction`."""
        ...

    def send_acked(
        self, topic: str, value: bytes | None, key: bytes | None = None, headers: Headers | None = None
    ) -> Delivery:
        """Queue one record and return a handle to wait for its acknowledgement."""
        ...

    def flush(self, timeout_s: float) -> None:
        """Wait until every queued record is acknowledged; raise KafkaClientError if one failed."""
        ...

    def init_transactions(self) -> None: ...
    def begin_transaction(self) -> None: ...

    def send_offsets_to_transaction(self, offsets: Mapping[TopicPartition, int], group_metadata: Any) -> None:
        """Commit the consumer group's `offsets` (next offset to read) with the transaction."""
        ...

    def commit_transaction(self) -> None: ...
    def abort_transaction(self) -> None: ...
    def close(self, timeout_s: float) -> None: ...


Partitions = Callable[[list[TopicPartition]], None]


class Consumer(Protocol):
    def subscribe(self, topics: Sequence[str], *, on_assigned: Partitions, on_revoked: Partitions) -> None:
        """Join the group. `on_assigned` gets partitions newly owned, `on_revoked` those given up
        (or lost); both run inside `poll` before any record of a newly owned partition is returned.
        The partitions are already assigned when `on_assigned` runs, so it may `pause` them."""
        ...

    def poll(self, timeout_s: float, max_records: int) -> list[Record]:
        """Up to `max_records` committed records, each partition's in offset order."""
        ...

    def assign(self, starts: Mapping[TopicPartition, int]) -> None:
        """Read exactly these partitions (no group), each from its offset, BEGINNING or END."""
        ...

    def assignment(self) -> list[TopicPartition]: ...

    def seek(self, tp: TopicPartition, offset: int) -> None:
        """Next poll reads `tp` from `offset` (or BEGINNING)."""
        ...

    def pause(self, tps: Sequence[TopicPartition]) -> None:
        """Stop fetching these assigned partitions: `poll` returns none of their records (not
        even ones already fetched) until `resume`; the group keeps them assigned to this member."""
        ...

    def resume(self, tps: Sequence[TopicPartition]) -> None:
        """Fetch these paused partitions again, from their position."""
        ...

    def committed(self, tps: Sequence[TopicPartition]) -> dict[TopicPartition, int | None]:
        """The group's committed offsets (None: nothing committed)."""
        ...

    def position(self, tp: TopicPartition) -> int | None:
        """The offset of the next record this consumer would read, if known without waiting."""
        ...

    def highwater(self, tp: TopicPartition) -> int | None:
        """The end of `tp` as last seen by a fetch (no broker round trip); None if not known yet."""
        ...

    def end_offsets(self, tps: Sequence[TopicPartition]) -> dict[TopicPartition, int]:
        """Ask the broker for each partition's end (under read_committed: the last stable offset)."""
        ...

    def partitions_for(self, topic: str) -> list[int]:
        """The topic's partition ids ([] if the topic does not exist)."""
        ...

    def read_to_end(
        self, tps: Sequence[TopicPartition], timeout_s: float, max_records: int,
        on_end: Callable[[TopicPartition], None] | None = None,
    ) -> Iterator[list[Record]]:
        """Assign `tps` from the beginning and yield batches until each reached the end it had
        when the call began (raise TimeoutError after `timeout_s`). `on_end(tp)` is called once
        per partition when it is read to that end (after its last batch was yielded)."""
        ...

    def group_metadata(self) -> Any:
        """Opaque: what `Producer.send_offsets_to_transaction` needs to commit for this group."""
        ...

    def close(self) -> None: ...


def read_until_end(
    poll: Callable[[float, int], list[Record]], tps: Sequence[TopicPartition], end: Mapping[TopicPartition, int],
    pending: set[TopicPartition], reached: Callable[[TopicPartition], bool], timeout_s: float, max_records: int,
    on_end: Callable[[TopicPartition], None] | None,
) -> Iterator[list[Record]]:
    """The part of `Consumer.read_to_end` both clients share, once they have assigned `tps` and
    know each one's `end`: batches of records before the end, until no partition is `pending`.
    `reached(tp)` is the client's own way to tell that `tp` is read to its end."""
    for tp in tps:
        if tp not in pending and on_end is not None:
            on_end(tp)
    deadline = time.monotonic() + timeout_s
    while pending:
        if time.monotonic() > deadline:
            raise TimeoutError(f"partitions {sorted(pending)} not read to their end within {timeout_s:.0f}s")
        batch = [r for r in poll(0.2, max_records) if r.offset < end[TopicPartition(r.topic, r.partition)]]
        if batch:
            yield batch
        for tp in list(pending):
            if reached(tp):
                pending.discard(tp)
                if on_end is not None:
                    on_end(tp)


class Admin(Protocol):
    def topic_partitions(self, names: Sequence[str] | None = None) -> dict[str, int]:
        """Partition count of each existing topic among `names` (None: every topic)."""
        ...

    def create_topics(self, topics: Sequence[NewTopic], timeout_s: float) -> None:
        """Create `topics`; one that already exists is not an error. Returns once they are visible."""
        ...

    def probe(self, timeout_s: float) -> None:
        """One metadata round trip; raise KafkaClientError if the cluster does not answer."""
        ...

    def close(self) -> None: ...


class KafkaClient(Protocol):
    """Builds producers, consumers and admin clients of one implementation for one cluster."""

    name: str
    bootstrap: str

    def producer(
        self,
        *,
        client_id: str,
        transactional_id: str | None = None,
        transaction_timeout_ms: int | None = None,
        linger_ms: int = 5,
        delivery_timeout_ms: int = 120_000,
        request_timeout_ms: int | None = None,
    ) -> Producer:
        """An idempotent producer (acks=all); transactional when `transactional_id` is given."""
        ...

    def consumer(
        self,
        *,
        client_id: str,
        group_id: str | None,
        assignor: str | None = None,
        max_poll_records: int = 10_000,
        auto_offset_reset: str = "earliest",
        large_fetches: bool = False,
        instance_id: str | None = None,
    ) -> Consumer:
        """A read_committed consumer that never commits on its own (session timeout: 10 s).
        `large_fetches`: bigger fetch sizes for reading whole partitions (restore).
        `instance_id`: static group membership; a second consumer with the same id fences
        this one (GroupFencedError), and a restart within the session timeout keeps its
        partitions without a rebalance."""
        ...

    def admin(self, *, client_id: str = "wardwatch-admin", timeout_s: float | None = None) -> Admin: ...
