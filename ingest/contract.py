"""The reading contract: the one definition of a vital-signs reading every stage imports.

Fields, units and accepted ranges: docs/topics.md (`vitals`). A `Reading` is what travels on the
`vitals` topic; `encode_reading`/`decode_reading` are its JSON codec.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from operator import attrgetter
from typing import Final

import orjson

SCHEMA_VERSION: Final = "1"
CONTENT_TYPE: Final = "application/json"

# Numeric vitals, in the order every array-shaped consumer (the model, the state table) uses.
VITALS: Final = ("hr", "rr", "spo2", "temp", "sbp", "dbp")

UNITS: Final = {
    "hr": "beats/min",
    "rr": "breaths/min",
    "spo2": "%",
    "temp": "°C",
    "sbp": "mmHg",
    "dbp": "mmHg",
}

# Accepted physiological ranges at ingest, inclusive (docs/topics.md).
RANGES: Final = {
    "hr": (20.0, 300.0),
    "rr": (2.0, 80.0),
    "spo2": (50.0, 100.0),
    "temp": (25.0, 45.0),
    "sbp": (40.0, 300.0),
    "dbp": (20.0, 200.0),
}

ACVPU_LEVELS: Final = ("A", "C", "V", "P", "U")
SPO2_SCALES: Final = (1, 2)

# Identifiers (patient_id, device_id, and the ids of records that name a patient): 1-128 characters.
MAX_ID_LENGTH: Final = 128

REQUIRED: Final = ("patient_id", "device_id", "seq", "ts_ms")
OPTIONAL: Final = (*VITALS, "on_oxygen", "acvpu", "spo2_scale")
ALL_FIELDS: Final = (*REQUIRED, *OPTIONAL)


@dataclass(frozen=True, slots=True)
class Reading:
    """One validated, normalised device reading. Absent vitals are None, never a sentinel."""

    patient_id: str
    device_id: str
    seq: int
    ts_ms: int
    hr: float | None = None
    rr: float | None = None
    spo2: float | None = None
    temp: float | None = None
    sbp: float | None = None
    dbp: float | None = None
    on_oxygen: bool | None = None
    acvpu: str | None = None
    spo2_scale: int = 1

    def to_dict(self) -> dict[str, object]:
        return dict(zip(_FIELDS, _VALUES(self), strict=True))


_FIELDS: Final = tuple(f.name for f in fields(Reading))
_VALUES: Final = attrgetter(*_FIELDS)  # a Reading's field values as one tuple, in field order


def encode_reading(reading: Reading) -> bytes:
    """The `vitals` topic's JSON encoding (compact, field order fixed).

    The bytes are always those of `json.dumps(..., separators=(",", ":"), allow_nan=False)`;
    orjson writes them (several times faster) where its output is the same: printable ASCII
    strings, and finite floats that Python writes without an exponent (0, or 1e-4 <= |x| < 1e16).
    Anything else (a non-ASCII id, NaN, an integer beyond 64 bits) goes to the standard encoder.
    """
    values = _VALUES(reading)
    if _same_in_orjson(values):
        try:
            return orjson.dumps(dict(zip(_FIELDS, values)))
        except TypeError:  # an integer beyond 64 bits
            pass
    return json.dumps(dict(zip(_FIELDS, values)), separators=(",", ":"), allow_nan=False).encode()


def _same_in_orjson(values: tuple[object, ...]) -> bool:
    for value in values:
        if type(value) is float:
            # NaN and infinity fail the range test too.
            if value != 0.0 and not 1e-4 <= abs(value) < 1e16:
                return False
        elif type(value) is str:
            if not (value.isascii() and value.isprintable()):
                return False
    return True


def decode_reading(data: bytes | str) -> Reading:
    """Decode a record already validated by ingest (the `vitals` topic); no re-validation.
    Undecodable data raises ValueError (orjson's JSONDecodeError is one) or TypeError."""
    obj = orjson.loads(data)
    try:
        return Reading(**obj)
    except TypeError:
        # Not from ingest (an unknown field): keep what the contract knows.
        return Reading(**{name: obj[name] for name in ALL_FIELDS if name in obj})
