"""What a stage's core looks like to the shell that runs it (Kafka loop or file mode)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol

from runtime.records import InRecord, OutRecord


class Processor(Protocol):
    """A pure consume-transform-produce core: records in, records out, state kept inside.

    The shell guarantees that `process` sees each partition's records in offset order, that
    `restore` runs for a partition before any of its records are processed, and that the
    outputs of one `process` call commit atomically with the consumed offsets.
    """

    # Read-only, so that a core may declare narrower types (a one-topic `tuple[str]`, a `str`).
    @property
    def stage(self) -> str: ...
    @property
    def input_topics(self) -> tuple[str, ...]: ...
    @property
    def output_topics(self) -> tuple[str, ...]: ...
    @property
    def changelog_topic(self) -> str | None: ...
    @property
    def dead_letter_topic(self) -> str | None:
        """Where this stage's rejects go; None: it rejects nothing."""
        ...

    def restore(self, partition: int, changelog: Iterable[tuple[bytes, bytes | None]]) -> None:
        """Rebuild the state of `partition` from its changelog (key, value) records, oldest first.

        A core whose class sets `restore_in_slices = True` may be given the changelog in
        consecutive slices, one call each, oldest first (the partition's records are not
        processed until the last); the state after the last call must equal that of one call
        with the whole changelog. Others get one call with all of it."""
        ...

    def drop(self, partitions: Iterable[int]) -> None:
        """Forget the state of partitions this process no longer owns."""
        ...

    def process(self, records: Sequence[InRecord]) -> list[OutRecord]:
        """Transform one batch; outputs include changelog records for changed state."""
        ...
