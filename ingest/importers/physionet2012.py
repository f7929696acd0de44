"""PhysioNet/CinC Challenge 2012 (in-hospital mortality): long format `Time,Parameter,Value` per stay.

Mapping: HR -> hr, RespRate -> rr, Temp -> temp (°C), SaO2 -> spo2 (an arterial blood-gas
saturation: the set has no pulse oximetry; the nearest measure NEWS2 can use), SysABP/DiasABP
(arterial line) -> sbp/dbp, with NISysABP/NIDiasABP (cuff) used only when the arterial line
has no valid value at that minute; FiO2 > 0.21 or MechVent = 1 -> on_oxygen; GCS -> acvpu
(15 A, 13-14 C, 9-12 V, 4-8 P, 3 U). `Time` is hh:mm since ICU admission. Descriptors (the
00:00 rows RecordID, Age, Gender, Height, ICUType, Weight) and labs are not imported. -1 is
"unknown" in this set and is dropped with reason `unknown`.

Outcomes (`Outcomes-*.txt`): `RecordID,SAPS-I,SOFA,Length_of_stay,Survival,In-hospital_death`
become `outcomes.jsonl` rows (`in_hospital_death`, `saps_i`, `sofa`, `length_of_stay_days`,
`survival_days`; -1 -> null). The patient id is the RecordID.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from ingest.importers.cohort import DEFAULT_START_MS, CohortBuilder, SourceError, parse_number
from ingest.importers.sources import text_files

# Parameter -> (field, preferred). Non-preferred values only fill a gap at the same minute.
PARAMETERS: Final = {
    "HR": ("hr", True),
    "RespRate": ("rr", True),
    "SaO2": ("spo2", True),
    "Temp": ("temp", True),
    "SysABP": ("sbp", True),
    "DiasABP": ("dbp", True),
    "NISysABP": ("sbp", False),
    "NIDiasABP": ("dbp", False),
    "FiO2": ("fio2", True),
    "MechVent": ("mech_vent", True),
    "GCS": ("gcs", True),
}
DESCRIPTORS: Final = ("RecordID", "Age", "Gender", "Height", "ICUType", "Weight")
OUTCOME_COLUMNS: Final = ("RecordID", "SAPS-I", "SOFA", "Length_of_stay", "Survival", "In-hospital_death")
OUTCOME_NAMES: Final = {"SAPS-I": "saps_i", "SOFA": "sofa", "Length_of_stay": "length_of_stay_days", "Survival": "survival_days",
                        "In-hospital_death": "in_hospital_death"}


def import_physionet2012(source: str | Path, outcomes: str | Path | None = None, *, start_ms: int = DEFAULT_START_MS,
                         limit: int | None = None) -> CohortBuilder:
    """Read every stay `.txt` under `source` and, if given (or found in it), the outcomes file."""
    builder = CohortBuilder("physionet2012", start_ms=start_ms, options={"source": Path(source).name, "limit": limit})
    outcome_lines: tuple[str, list[str]] | None = None
    for name, lines in text_files(source, ".txt"):
        if Path(name.rsplit(":", 1)[-1]).name.startswith("Outcomes"):
            outcome_lines = (name, lines)
            continue
        if limit is not None and builder.files_read >= limit:
            continue
        read_stay(builder, name, lines)
    if outcomes is not None:
        files = list(text_files(outcomes, ".txt"))
        if not files:
            raise SourceError(f"{outcomes}: no outcomes file")
        outcome_lines = files[0]
    if outcome_lines is not None:
        read_outcomes(builder, *outcome_lines)
    return builder


def _minutes(text: str) -> int:
    hours, _, minutes = text.strip().partition(":")
    h, m = int(hours), int(minutes)
    if h < 0 or not 0 <= m < 60:
        raise ValueError(text)
    return h * 60 + m


def read_stay(builder: CohortBuilder, name: str, lines: list[str]) -> None:
    """One stay; rows that cannot be read are reported with file and line, the rest kept."""
    if not lines or not lines[0].strip():
        builder.reject_file(f"{name}:1", "empty", "no header line")
        return
    if [h.strip() for h in lines[0].split(",")] != ["Time", "Parameter", "Value"]:
        builder.reject_file(f"{name}:1", "wrong_header", f"expected 'Time,Parameter,Value', found {lines[0][:60]!r}")
        return
    patient = Path(name.rsplit(":", 1)[-1]).stem
    builder.files_read += 1
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        where = f"{name}:{number}"
        cells = line.split(",")
        if len(cells) != 3:
            builder.reject_row(where, "wrong_field_count", f"expected 3 fields, found {len(cells)} (truncated row?)")
            continue
        time, parameter, raw = (c.strip() for c in cells)
        try:
            minutes = _minutes(time)
        except ValueError:
            builder.reject_row(where, "bad_time", f"Time={time[:40]!r} is not hh:mm")
            continue
        builder.rows_read += 1
        if parameter == "RecordID" and raw and raw != patient:
            patient_from_file = raw
            builder.problem(where, "record_id", f"RecordID {patient_from_file[:20]!r} differs from the file name; using the file name")
        mapped = PARAMETERS.get(parameter)
        if mapped is None:
            continue  # a descriptor or a lab: not part of the reading contract
        field, preferred = mapped
        try:
            if parse_number(raw) == -1.0:
                builder.drop(where, "unknown", field, "-1 (unknown)")
                continue
        except ValueError:
            pass  # reported by value()
        builder.value(patient, builder.start_ms + minutes * 60_000, field, raw, where, prefer=preferred)


def read_outcomes(builder: CohortBuilder, name: str, lines: list[str]) -> None:
    if not lines or [h.strip() for h in lines[0].split(",")] != list(OUTCOME_COLUMNS):
        builder.reject_file(f"{name}:1", "wrong_header", f"expected {','.join(OUTCOME_COLUMNS)}")
        return
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        cells = [c.strip() for c in line.split(",")]
        if len(cells) != len(OUTCOME_COLUMNS):
            builder.reject_row(f"{name}:{number}", "wrong_field_count", f"expected {len(OUTCOME_COLUMNS)} fields, found {len(cells)}")
            continue
        try:
            numbers = [parse_number(c) for c in cells[1:]]
        except ValueError as exc:
            builder.reject_row(f"{name}:{number}", "not_numeric", str(exc))
            continue
        values = {OUTCOME_NAMES[c]: (None if v is None or v == -1 else int(v) if v == int(v) else v)
                  for c, v in zip(OUTCOME_COLUMNS[1:], numbers)}
        if values["in_hospital_death"] not in (0, 1):
            builder.reject_row(f"{name}:{number}", "bad_outcome", f"In-hospital_death={cells[-1]!r} is not 0 or 1")
            continue
        builder.outcome(cells[0], values)
