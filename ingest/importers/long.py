"""The generic long format: `patient_id,time,parameter,value` rows plus a mapping file.

An export from MIMIC-IV (chartevents), eICU (vitalperiodic, nursecharting) or a hospital's
warehouse fits without code: write one CSV with these four columns (header required, any
order, extra columns ignored) and a YAML mapping from its parameter names to contract fields:

    time: hours            # hours | minutes | seconds | ms (numbers since admission) | iso8601
    parameters:
      "Heart Rate":             {field: hr}
      "Respiratory Rate":       {field: rr}
      "O2 saturation pulseoxymetry": {field: spo2}
      "Temperature Fahrenheit": {field: temp, unit: "[degF]"}   # any UCUM unit ingest.units knows
      "Non Invasive Blood Pressure systolic":  {field: sbp}
      "Non Invasive Blood Pressure diastolic": {field: dbp}
      "Inspired O2 Fraction":   {field: fio2}        # fraction or percent; > 0.21 -> on_oxygen
      "O2 Delivery":            {field: on_oxygen}   # 0/1
      "GCS Total":              {field: gcs}         # -> acvpu (15 A, 13-14 C, 9-12 V, 4-8 P, 3 U)
      "AVPU":                   {field: acvpu}       # A, C, V, P or U
      "Sepsis onset":           {field: event, scenario: sepsis}   # the row's time is an event

Parameters the mapping does not name are skipped and counted (`unmapped_parameters` in the
summary). Rows with the same patient and time become one reading.
"""

from __future__ import annotations

import csv
import math
from datetime import datetime
from pathlib import Path
from typing import Any, Final

import yaml

from ingest.contract import VITALS
from ingest.importers.cohort import DEFAULT_START_MS, EXTRA_FIELDS, CohortBuilder, SourceError, parse_number
from ingest.importers.sources import text_files

COLUMNS: Final = ("patient_id", "time", "parameter", "value")
TIME_UNITS: Final = {"hours": 3_600_000.0, "minutes": 60_000.0, "seconds": 1000.0, "ms": 1.0}
FIELDS: Final = (*VITALS, *EXTRA_FIELDS, "event")


def load_mapping(path: str | Path) -> dict[str, Any]:
    """Read and check a mapping YAML; SourceError with one line on anything wrong."""
    try:
        data = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise SourceError(f"{path}: cannot read the mapping ({str(exc).splitlines()[0]})") from None
    if not isinstance(data, dict) or not isinstance(data.get("parameters"), dict) or not data["parameters"]:
        raise SourceError(f"{path}: expected a mapping with a non-empty 'parameters' table")
    time = data.get("time", "hours")
    if time not in (*TIME_UNITS, "iso8601"):
        raise SourceError(f"{path}: time={time!r}, expected one of {', '.join((*TIME_UNITS, 'iso8601'))}")
    parameters: dict[str, dict[str, Any]] = {}
    for name, spec in data["parameters"].items():
        if isinstance(spec, str):
            spec = {"field": spec}
        if not isinstance(spec, dict) or spec.get("field") not in FIELDS:
            raise SourceError(f"{path}: parameter {name!r}: field must be one of {', '.join(FIELDS)}")
        unknown = set(spec) - {"field", "unit", "scenario"}
        if unknown:
            raise SourceError(f"{path}: parameter {name!r}: unknown key(s) {sorted(unknown)}")
        if "unit" in spec and spec["field"] not in VITALS:
            raise SourceError(f"{path}: parameter {name!r}: a unit only applies to {', '.join(VITALS)}")
        parameters[str(name)] = spec
    return {"time": time, "parameters": parameters}


def import_long(source: str | Path, mapping: str | Path, *, start_ms: int = DEFAULT_START_MS) -> CohortBuilder:
    """Read one CSV (or every .csv under a directory or archive) with the mapping at `mapping`."""
    spec = load_mapping(mapping)
    builder = CohortBuilder("long", start_ms=start_ms, options={"source": Path(source).name, "mapping": spec})
    unmapped: dict[str, int] = {}
    for name, lines in text_files(source, ".csv"):
        read_file(builder, name, lines, spec, unmapped)
    builder.options["unmapped_parameters"] = dict(sorted(unmapped.items())[:100])
    return builder


def _time_ms(text: str, unit: str, start_ms: int) -> int:
    if unit == "iso8601":
        stamp = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
        if stamp.tzinfo is None:
            raise ValueError(f"{text!r} has no time zone")
        return round(stamp.timestamp() * 1000)
    x = parse_number(text)
    if x is None or x < 0 or not math.isfinite(x):
        raise ValueError(text)
    return start_ms + round(x * TIME_UNITS[unit])


def read_file(builder: CohortBuilder, name: str, lines: list[str], spec: dict[str, Any], unmapped: dict[str, int]) -> None:
    if not lines or not lines[0].strip():
        builder.reject_file(f"{name}:1", "empty", "no header line")
        return
    header = [h.strip().lower() for h in next(csv.reader([lines[0]]))]
    missing = [c for c in COLUMNS if c not in header]
    if missing:
        builder.reject_file(f"{name}:1", "wrong_header", f"missing column(s) {','.join(missing)} (expected {','.join(COLUMNS)})")
        return
    builder.files_read += 1
    at = [header.index(c) for c in COLUMNS]
    width = len(header)
    parameters = spec["parameters"]
    for number, cells in enumerate(csv.reader(lines[1:]), start=2):
        if not cells or not any(c.strip() for c in cells):
            continue
        where = f"{name}:{number}"
        if len(cells) != width:
            builder.reject_row(where, "wrong_field_count", f"expected {width} fields, found {len(cells)} (truncated row?)")
            continue
        patient, time, parameter, raw = (cells[i].strip() for i in at)
        if not patient or len(patient) > 128 or not patient.isprintable():
            builder.reject_row(where, "bad_patient_id", f"patient_id {patient[:40]!r} is empty, too long or not printable")
            continue
        try:
            ts = _time_ms(time, spec["time"], builder.start_ms)
        except ValueError:
            builder.reject_row(where, "bad_time", f"time={time[:40]!r} is not {spec['time']}")
            continue
        builder.rows_read += 1
        mapped = parameters.get(parameter)
        if mapped is None:
            unmapped[parameter[:60]] = unmapped.get(parameter[:60], 0) + 1
            continue
        if mapped["field"] == "event":
            builder.event(patient, ts, str(mapped.get("scenario", "deterioration")))
            continue
        builder.value(patient, ts, mapped["field"], raw, where, unit=mapped.get("unit"))
