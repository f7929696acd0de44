"""One unit of an incoming payload: a validated reading, or why that part was refused."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ingest.contract import Reading
from ingest.validate import Rejected


@dataclass(frozen=True, slots=True)
class Item:
    """A reading (or a reject) and where in the payload it came from.

    `entries` are the Bundle entry positions it was built from (several when Observations
    merged; empty for a plain reading or a single Observation). `source` is the JSON it came
    from, which the gateway forwards to `vitals.raw` as sent.
    """

    result: Reading | Rejected
    entries: tuple[int, ...] = ()
    source: Any = None

    @property
    def reading(self) -> Reading | None:
        return self.result if isinstance(self.result, Reading) else None

    @property
    def rejected(self) -> Rejected | None:
        return self.result if isinstance(self.result, Rejected) else None
