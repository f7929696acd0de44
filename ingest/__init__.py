"""ingest: the front door. Owns the reading contract, validation and the dead-letter reasons."""

from ingest.contract import (
    ACVPU_LEVELS,
    ALL_FIELDS,
    CONTENT_TYPE,
    MAX_ID_LENGTH,
    RANGES,
    SCHEMA_VERSION,
    UNITS,
    VITALS,
    Reading,
    decode_reading,
    encode_reading,
)
from ingest.dedup import ReadingId, reading_id, unique_readings
from ingest.validate import OFFLINE_LIMITS, Limits, Reason, Rejected, parse_reading, validate_object

__all__ = [
    "ACVPU_LEVELS",
    "ALL_FIELDS",
    "CONTENT_TYPE",
    "MAX_ID_LENGTH",
    "RANGES",
    "SCHEMA_VERSION",
    "UNITS",
    "VITALS",
    "Limits",
    "OFFLINE_LIMITS",
    "Reading",
    "ReadingId",
    "Reason",
    "Rejected",
    "decode_reading",
    "encode_reading",
    "parse_reading",
    "reading_id",
    "unique_readings",
    "validate_object",
]
