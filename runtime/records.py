"""The records a stage's core sees and emits, free of any Kafka client type."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Final

import orjson

Headers = list[tuple[str, bytes]]

CONTENT_TYPE_JSON: Final = b"application/json"
SCHEMA_VERSION: Final = b"1"
JSON_HEADERS: Final[Headers] = [("content-type", CONTENT_TYPE_JSON), ("schema-version", SCHEMA_VERSION)]


@dataclass(frozen=True, slots=True)
class InRecord:
    """One consumed record: where it came from and its raw bytes."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp_ms: int
    headers: Headers = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class OutRecord:
    """One record to produce. `partition` pins co-partitioned state to its input's partition."""

    topic: str
    key: bytes | None
    value: bytes | None
    headers: Headers = field(default_factory=list)
    partition: int | None = None
    timestamp_ms: int | None = None


def to_json(obj: Any) -> bytes:
    """Compact UTF-8 JSON; NaN and infinity are refused (they are not JSON)."""
    return json.dumps(obj, separators=(",", ":"), allow_nan=False).encode()


NOT_DECODED: Final = object()
# orjson reads an integer beyond 64 bits as a float where the standard decoder keeps an int: a
# value with 19 digits in a row takes the standard decoder. Found by mapping every digit to "0"
# and looking for nineteen of them (several times faster than a regular expression).
_DIGITS_TO_ZERO: Final = bytes.maketrans(b"123456789", b"000000000")
_NINETEEN_DIGITS: Final = b"0" * 19


def fast_json(data: bytes | str) -> Any:
    """`data` decoded by orjson (several times faster) where that gives exactly what `json.loads`
    gives; else NOT_DECODED, and the caller takes the standard decoder, which reads what orjson
    refuses (NaN, Infinity, lone surrogates, 19 digits in a row) or says what is wrong."""
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    if _NINETEEN_DIGITS in raw.translate(_DIGITS_TO_ZERO):
        return NOT_DECODED
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return NOT_DECODED


def json_object(data: bytes | str | None, error: type[ValueError] = ValueError) -> dict[str, Any]:
    """A record value that must be one JSON object, decoded; else `error`, saying what it is instead."""
    if data is None:
        raise error("value=None: expected a JSON object")
    obj = fast_json(data)
    if obj is NOT_DECODED:
        try:
            obj = json.loads(data)
        except (ValueError, UnicodeDecodeError) as exc:
            raise error(f"value is not JSON ({exc})") from None
    if not isinstance(obj, dict):
        raise error(f"value={type(obj).__name__}: expected a JSON object")
    return obj


def json_record(
    topic: str,
    key: str | None,
    value: Any,
    *,
    partition: int | None = None,
    timestamp_ms: int | None = None,
) -> OutRecord:
    """A JSON record with the contract's `content-type` and `schema-version` headers."""
    return encoded_record(topic, key, to_json(value), partition=partition, timestamp_ms=timestamp_ms)


def encoded_record(
    topic: str,
    key: str | None,
    value: bytes,
    *,
    partition: int | None = None,
    timestamp_ms: int | None = None,
) -> OutRecord:
    """`json_record` for a value its stage has already encoded as JSON (with its own, faster encoder)."""
    return OutRecord(
        topic=topic,
        key=key.encode() if key is not None else None,
        value=value,
        headers=list(JSON_HEADERS),
        partition=partition,
        timestamp_ms=timestamp_ms,
    )


def tombstone(topic: str, key: str, partition: int | None = None) -> OutRecord:
    """A null value: deletes `key` from a compacted topic."""
    return OutRecord(topic=topic, key=key.encode(), value=None, headers=[], partition=partition)


def dead_letter(
    topic: str, source: InRecord, *, stage: str, reason: str, detail: str, key: str | None = None
) -> OutRecord:
    """The rejected bytes as they arrived, with why, where and from what in headers."""
    return OutRecord(
        topic=topic,
        key=key.encode() if key is not None else source.key,
        value=source.value,
        headers=[
            ("reason", reason.encode()),
            ("detail", detail.encode("utf-8", "replace")[:1024]),
            ("stage", stage.encode()),
            ("source-topic", source.topic.encode()),
            ("source-partition", str(source.partition).encode()),
            ("source-offset", str(source.offset).encode()),
            ("schema-version", SCHEMA_VERSION),
        ],
        partition=None,
        timestamp_ms=source.timestamp_ms,
    )


def header(record: InRecord | OutRecord, name: str) -> str | None:
    """The first header called `name`, decoded, or None."""
    for key, value in record.headers:
        if key == name:
            return value.decode("utf-8", "replace") if value is not None else None
    return None
