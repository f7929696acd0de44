"""The gateway's pure core: a request body -> per-item results and the records to write."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from ingest import payload
from ingest.validate import Limits, Rejected, decode_json
from runtime.records import to_json


@dataclass(frozen=True, slots=True)
class ItemResult:
    index: int
    status: str  # "accepted" or "rejected"
    reason: str | None = None
    detail: str | None = None


@dataclass(frozen=True, slots=True)
class Write:
    key: bytes | None  # one accepted item as it goes to `vitals.raw`
    value: bytes


@dataclass(frozen=True)
class Triage:
    results: list[ItemResult]
    writes: list[Write]

    def body(self) -> dict[str, Any]:
        return {"accepted": len(self.writes), "rejected": len(self.results) - len(self.writes),
                "items": [{k: v for k, v in asdict(r).items() if v is not None} for r in self.results]}


class BadRequest(Exception):
    """The body as a whole is unusable (not JSON, no items): 400 with this reason."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail = reason, detail


def triage(body: bytes, now_ms: int, limits: Limits, max_bytes: int) -> Triage:
    """Decode the body and validate each item on its own; raises BadRequest if the body as a whole is bad."""
    try:
        items = payload.split_items(decode_json(body, max_bytes))
    except Rejected as rejected:
        raise BadRequest(str(rejected.reason), rejected.detail) from None
    if not items:
        raise BadRequest("empty", "the request holds no readings: expected a reading, an array of them or a FHIR Bundle")
    results: list[ItemResult] = []
    writes: list[Write] = []
    for index, item in enumerate(items):
        try:
            readings = payload.validate_item(item, now_ms, limits)
        except Rejected as rejected:
            results.append(ItemResult(index, "rejected", str(rejected.reason), rejected.detail))
            continue
        if not readings:
            results.append(ItemResult(index, "rejected", "unsupported_fhir", "the item holds no vital sign the contract maps"))
            continue
        key = payload.patient_key(item)
        writes.append(Write(key.encode() if key is not None else None, to_json(item)))
        results.append(ItemResult(index, "accepted"))
    return Triage(results, writes)
