"""Normalisation: a value in a declared UCUM unit -> the contract's unit (docs/topics.md).

Plain readings on `vitals.raw` are in the contract's units by definition and declare none.
FHIR `valueQuantity` declares its unit as a UCUM code (`code`, system
http://unitsofmeasure.org); only the codes below are understood, anything else is refused
(`unsupported_unit`) rather than guessed. Conversion is exact arithmetic on the double; the
result is range-checked and rounded by `ingest.validate` (one decimal, after the range check).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from ingest.validate import Reason, Rejected

UCUM_SYSTEM: Final = "http://unitsofmeasure.org"

# 1 kPa = 1000 / 133.322387415 mmHg (mmHg defined as 133.322387415 Pa).
MMHG_PER_KPA: Final = 1000.0 / 133.322387415


def _same(value: float) -> float:
    return value


def _fahrenheit_to_celsius(value: float) -> float:
    return (value - 32.0) * 5.0 / 9.0


def _kpa_to_mmhg(value: float) -> float:
    return value * MMHG_PER_KPA


_PER_MINUTE: Final[dict[str, Callable[[float], float]]] = {
    "/min": _same,
    # Annotations in braces are comments in UCUM; these two are common in vital-signs profiles.
    "{beats}/min": _same,
    "{breaths}/min": _same,
}
_PRESSURE: Final[dict[str, Callable[[float], float]]] = {"mm[Hg]": _same, "kPa": _kpa_to_mmhg}

# Contract field -> UCUM code -> conversion into the contract's unit.
CONVERSIONS: Final[dict[str, dict[str, Callable[[float], float]]]] = {
    "hr": _PER_MINUTE,
    "rr": _PER_MINUTE,
    "spo2": {"%": _same},
    "temp": {"Cel": _same, "[degF]": _fahrenheit_to_celsius},
    "sbp": _PRESSURE,
    "dbp": _PRESSURE,
}


def to_contract_unit(field: str, value: float, unit: str, system: str | None = UCUM_SYSTEM) -> float:
    """`value` in UCUM `unit` converted to `field`'s contract unit, or `Rejected(unsupported_unit)`."""
    if system is not None and system != UCUM_SYSTEM:
        raise Rejected(Reason.UNSUPPORTED_UNIT, f"{field}: unit system {system[:80]!r} is not UCUM ({UCUM_SYSTEM})")
    table = CONVERSIONS[field]
    convert = table.get(unit)
    if convert is None:
        raise Rejected(
            Reason.UNSUPPORTED_UNIT, f"{field}: unit {unit[:40]!r} not understood, expected UCUM {' or '.join(table)}"
        )
    return convert(value)
