"""A raw payload -> items: a plain reading, a FHIR Observation or a FHIR Bundle (by `resourceType`).

The ingest stage takes one `vitals.raw` record at a time (`parse_payload`); the HTTP gateway
takes a request body apart into items it answers for one by one (`split_items`,
`validate_item`, `patient_key`) and forwards each accepted item to `vitals.raw` as sent.
"""

from __future__ import annotations

import json
from typing import Any

from ingest.contract import Reading
from ingest.fhir import REFERENCE, is_fhir, map_resource
from ingest.item import Item
from ingest.validate import Limits, Reason, Rejected, decode_json, validate_object


def parse_payload(raw: bytes | None, now_ms: int, limits: Limits = Limits()) -> list[Item]:
    """Every item of one `vitals.raw` record, at least one; never raises."""
    try:
        obj = decode_json(raw, max(limits.max_payload_bytes, limits.max_fhir_bytes))
    except Rejected as rejected:
        return [Item(rejected)]
    assert raw is not None  # decode_json refuses None
    return items_of(obj, now_ms, limits, size=len(raw))


def items_of(obj: Any, now_ms: int, limits: Limits = Limits(), size: int = 0) -> list[Item]:
    """The items of one decoded JSON value (`size`: its encoded length, for the plain-reading limit)."""
    if is_fhir(obj):
        return map_resource(obj, now_ms, limits)
    if size > limits.max_payload_bytes:
        # FHIR may be larger (narrative, many entries); a plain reading never needs to be.
        return [Item(Rejected(Reason.TOO_LARGE, f"payload is {size} bytes, limit {limits.max_payload_bytes}"), source=obj)]
    try:
        return [Item(validate_object(obj, now_ms, limits), source=obj)]
    except Rejected as rejected:
        return [Item(rejected, source=obj)]


def split_items(obj: Any) -> list[Any]:
    """A request body -> the items to answer for one by one: array elements, Bundle entries."""
    if isinstance(obj, list):
        return list(obj)
    if isinstance(obj, dict) and obj.get("resourceType") == "Bundle":
        entries = obj.get("entry")
        if isinstance(entries, list) and entries:
            return [e.get("resource") if isinstance(e, dict) else e for e in entries]
    return [obj]


def validate_item(item: Any, now_ms: int, limits: Limits = Limits()) -> list[Reading]:
    """One item -> its readings; raises the first Rejected when any part of it is refused."""
    size = len(json.dumps(item, separators=(",", ":")))
    if size > (limits.max_fhir_bytes if is_fhir(item) else limits.max_payload_bytes):
        # The same size rule the ingest stage applies to the record the gateway would write.
        raise Rejected(Reason.TOO_LARGE, f"item is {size} bytes, over the limit for its kind")
    items = items_of(item, now_ms, limits, size=size)
    for part in items:
        if part.rejected is not None:
            raise part.rejected
    return [part.reading for part in items if part.reading is not None]


def patient_key(item: Any) -> str | None:
    """The patient an item is about (the Kafka key), or None when it names none."""
    if not isinstance(item, dict):
        return None
    if is_fhir(item):
        subject = item.get("subject")
        ref = subject.get("reference") if isinstance(subject, dict) else None
        match = REFERENCE.search(ref) if isinstance(ref, str) else None  # also .../Patient/x/_history/2
        return match.group(2) if match is not None and match.group(1) == "Patient" else None
    patient = item.get("patient_id")
    return (patient.strip() or None) if isinstance(patient, str) else None
