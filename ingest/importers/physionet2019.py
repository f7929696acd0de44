"""PhysioNet/CinC Challenge 2019 (sepsis): one pipe-separated file per ICU stay, one row per hour.

Mapping (units are already the contract's): HR -> hr, Resp -> rr, O2Sat -> spo2, Temp -> temp
(°C), SBP -> sbp, DBP -> dbp, FiO2 > 0.21 -> on_oxygen (FiO2 <= 0.21 -> off oxygen; absent ->
unknown). The row's time is `ICULOS` hours after the cohort's start. Labs, MAP, EtCO2 and
demographics are not part of the reading contract and are not imported.

Label: `SepsisLabel` is 1 from 6 h before the clinical sepsis time onwards, so the sepsis
event is at the first labelled row + 6 h (scenario `sepsis`). The patient id is the file name
without `.psv` (e.g. `p100001`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from ingest.importers.cohort import DEFAULT_START_MS, MS_PER_HOUR, CohortBuilder, parse_number
from ingest.importers.sources import text_files

COLUMNS: Final = {"HR": "hr", "Resp": "rr", "O2Sat": "spo2", "Temp": "temp", "SBP": "sbp", "DBP": "dbp", "FiO2": "fio2"}
REQUIRED: Final = (*COLUMNS, "ICULOS", "SepsisLabel")
SEPSIS_LEAD_HOURS: Final = 6.0


def import_physionet2019(source: str | Path, *, start_ms: int = DEFAULT_START_MS, limit: int | None = None) -> CohortBuilder:
    """Read every `.psv` under `source` (directory, file or .tar.gz) into a `CohortBuilder`."""
    builder = CohortBuilder("physionet2019", start_ms=start_ms, options={"source": Path(source).name, "limit": limit})
    for name, lines in text_files(source, ".psv"):
        if limit is not None and builder.files_read >= limit:
            break
        read_file(builder, name, lines)
    return builder


def read_file(builder: CohortBuilder, name: str, lines: list[str]) -> None:
    """One stay; rows that cannot be read are reported with file and line, the rest kept."""
    patient = Path(name.rsplit(":", 1)[-1]).stem
    if not lines or not lines[0].strip():
        builder.reject_file(f"{name}:1", "empty", "no header line")
        return
    header = [h.strip() for h in lines[0].split("|")]
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        builder.reject_file(f"{name}:1", "wrong_header", f"not a PhysioNet 2019 header: missing {','.join(missing)} (expected pipe-separated HR|O2Sat|...|ICULOS|SepsisLabel)")
        return
    builder.files_read += 1
    index = {c: header.index(c) for c in REQUIRED}
    width = len(header)
    first_label: int | None = None
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        where = f"{name}:{number}"
        cells = line.split("|")
        if len(cells) != width:
            builder.reject_row(where, "wrong_field_count", f"expected {width} fields, found {len(cells)} (truncated row?)")
            continue
        try:
            hours = parse_number(cells[index["ICULOS"]])
        except ValueError:
            hours = None
        if hours is None or hours < 0:
            builder.reject_row(where, "bad_time", f"ICULOS={cells[index['ICULOS']].strip()[:40]!r} is not a non-negative number")
            continue
        builder.rows_read += 1
        ts = builder.start_ms + round(hours * MS_PER_HOUR)
        for column, field in COLUMNS.items():
            builder.value(patient, ts, field, cells[index[column]], where)
        try:
            label = parse_number(cells[index["SepsisLabel"]])
        except ValueError:
            builder.problem(where, "bad_label", f"SepsisLabel={cells[index['SepsisLabel']].strip()[:40]!r} is not 0 or 1")
            label = None
        if label == 1 and first_label is None:
            first_label = ts
    if first_label is not None:
        builder.event(patient, first_label + round(SEPSIS_LEAD_HOURS * MS_PER_HOUR), "sepsis", onset_ts_ms=first_label)
