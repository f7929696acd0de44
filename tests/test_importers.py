"""Importers: the committed PhysioNet samples, unit conversion, dropped values, hostile files."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from ingest import Limits, validate_object
from ingest.contract import RANGES, VITALS
from ingest.importers import SourceError, gcs_to_acvpu, import_long, import_physionet2012, import_physionet2019
from sim.columns import Columns
from wardwatch.cli import main

DATA = Path(__file__).parent / "data"
P19, P12 = DATA / "physionet2019", DATA / "physionet2012"
HOUR = 3_600_000
NEVER = Limits(max_age_ms=2**62, max_future_ms=2**62)
HEADER19 = (P19 / "p100001.psv").read_text().splitlines()[0]
WIDTH19 = len(HEADER19.split("|"))


def psv_row(**values: object) -> str:
    names = HEADER19.split("|")
    return "|".join(str(values.get(n, "NaN")) for n in names)


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line]


def test_physionet2019_sample(tmp_path: Path) -> None:
    summary = import_physionet2019(P19).write(tmp_path)
    files = sorted(P19.glob("*.psv"))
    assert summary["files"] == {"read": len(files), "rejected": 0} and summary["patients"] == len(files) == 34
    # Expected readings, counted straight from the files: rows with any mapped vital or FiO2.
    names = HEADER19.split("|")
    mapped = [names.index(c) for c in ("HR", "Resp", "O2Sat", "Temp", "SBP", "DBP", "FiO2")]
    expected = sum(1 for f in files for line in f.read_text().splitlines()[1:] if any(line.split("|")[i] != "NaN" for i in mapped))
    readings = read_jsonl(tmp_path / "readings.jsonl")
    assert len(readings) == summary["readings"] == expected
    for r in readings:  # every reading is a valid contract reading
        assert validate_object(r, 0, NEVER).patient_id == r["patient_id"]
    columns = Columns.load(tmp_path / "readings.npz")
    assert len(columns) == len(readings)
    assert json.loads((tmp_path / "patients.json").read_text()) == [f.stem for f in files]
    # p100001 hour 2: HR 93, O2Sat 92.5, SBP 110, DBP 56, Resp 22 -> one reading at ICULOS 2 h.
    first = next(r for r in readings if r["patient_id"] == "p100001")
    assert first["ts_ms"] == summary["start_ms"] + 2 * HOUR
    assert (first["hr"], first["spo2"], first["sbp"], first["dbp"], first["rr"], first["temp"]) == (93, 92.5, 110, 56, 22, None)
    # Sepsis: first SepsisLabel row + 6 h.
    events = {e["patient_id"]: e for e in read_jsonl(tmp_path / "events.jsonl")}
    assert set(events) == {"p100013", "p100016", "p100047", "p100049", "p100055", "p100068"}
    for patient, e in events.items():
        rows = (P19 / f"{patient}.psv").read_text().splitlines()[1:]
        first_label = next(float(r.split("|")[names.index("ICULOS")]) for r in rows if r.split("|")[-1] == "1")
        assert e["event_ts_ms"] == summary["start_ms"] + round((first_label + 6) * HOUR)
        assert e["onset_ts_ms"] == e["event_ts_ms"] - 6 * HOUR and e["scenario"] == "sepsis"


def test_physionet2019_fio2_to_oxygen_and_drops(tmp_path: Path) -> None:
    stay = tmp_path / "src" / "p1.psv"
    stay.parent.mkdir()
    stay.write_text("\n".join([
        HEADER19,
        psv_row(HR=80, FiO2=0.21, ICULOS=1, SepsisLabel=0),
        psv_row(HR=400, Resp=18, FiO2=0.5, ICULOS=2, SepsisLabel=0),  # HR out of range: dropped, the rest kept
        psv_row(HR="fast", Temp=98.2, O2Sat=101, FiO2=40, ICULOS=3, SepsisLabel=0),  # text, temp in °F?, SpO2 > 100, FiO2 in %
    ]) + "\n")
    builder = import_physionet2019(stay.parent)
    summary = builder.write(tmp_path / "out")
    readings = read_jsonl(tmp_path / "out" / "readings.jsonl")
    assert [r["on_oxygen"] for r in readings] == [False, True, True]
    assert readings[1]["hr"] is None and readings[1]["rr"] == 18
    assert summary["dropped_values"] == {"not_numeric.hr": 1, "out_of_range.hr": 1, "out_of_range.spo2": 1, "out_of_range.temp": 1}
    assert summary["dropped_values_total"] == 4 and summary["converted_values"] == {"%.fio2": 1}
    assert any(p.startswith(f"{stay}:4: not_numeric: hr") for p in summary["problems"])
    assert readings[2]["hr"] is None and readings[2]["temp"] is None and readings[2]["spo2"] is None  # never clamped


@pytest.mark.parametrize("body, reason, line", [
    ("", "file_empty", 1),
    ("HR,O2Sat,Temp\n80,97,37\n", "file_wrong_header", 1),
])
def test_physionet2019_bad_files_are_rejected_the_rest_imported(tmp_path: Path, body: str, reason: str, line: int) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "bad.psv").write_text(body)
    (src / "good.psv").write_text(HEADER19 + "\n" + psv_row(HR=70, ICULOS=1, SepsisLabel=0) + "\n")
    summary = import_physionet2019(src).write(tmp_path / "out")
    assert summary["files"] == {"read": 1, "rejected": 1} and summary["rejected"] == {reason: 1}
    assert summary["readings"] == 1 and summary["problems"][0].startswith(f"{src / 'bad.psv'}:{line}: ")


def test_physionet2019_truncated_row_and_bad_time(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    good = psv_row(HR=70, ICULOS=1, SepsisLabel=0)
    (src / "p9.psv").write_text("\n".join([HEADER19, good, psv_row(HR=75, ICULOS="x", SepsisLabel=0), "80|97|37.1", psv_row(HR=90, ICULOS=4, SepsisLabel=0)]))
    summary = import_physionet2019(src).write(tmp_path / "out")
    assert summary["readings"] == 2 and summary["rejected"] == {"bad_time": 1, "wrong_field_count": 1}
    assert summary["problems"][0].startswith(f"{src / 'p9.psv'}:3: bad_time")
    assert summary["problems"][1] == f"{src / 'p9.psv'}:4: wrong_field_count: expected {WIDTH19} fields, found 3 (truncated row?)"


def test_physionet2012_sample(tmp_path: Path) -> None:
    summary = import_physionet2012(P12).write(tmp_path)
    assert summary["files"] == {"read": 30, "rejected": 0}
    outcomes = {o["patient_id"]: o for o in read_jsonl(tmp_path / "outcomes.jsonl")}
    assert len(outcomes) == summary["patients"] and summary["outcomes"]["in_hospital_deaths"] == 4
    assert outcomes["132539"] == {"patient_id": "132539", "saps_i": 6, "sofa": 1, "length_of_stay_days": 5, "survival_days": None,
                                  "in_hospital_death": 0}
    readings = read_jsonl(tmp_path / "readings.jsonl")
    for r in readings:
        assert validate_object(r, 0, NEVER).patient_id == r["patient_id"]
    # 132539 at 00:07: GCS 15, HR 73, NIDiasABP 65, NISysABP 147, RespRate 19, Temp 35.1.
    r = next(r for r in readings if r["patient_id"] == "132539")
    assert r["ts_ms"] == summary["start_ms"] + 7 * 60_000
    assert (r["hr"], r["sbp"], r["dbp"], r["rr"], r["temp"], r["acvpu"]) == (73, 147, 65, 19, 35.1, "A")
    # Every minute of every stay with a mapped parameter is one reading.
    expected = 0
    for f in sorted(P12.glob("1*.txt")):
        times = {line.split(",")[0] for line in f.read_text().splitlines()[1:]
                 if line.split(",")[1] in ("HR", "RespRate", "SaO2", "Temp", "SysABP", "DiasABP", "NISysABP", "NIDiasABP", "FiO2", "MechVent", "GCS")
                 and float(line.split(",")[2]) != -1 and _in_range(line)}
        expected += len(times)
    assert summary["readings"] == expected
    assert summary["dropped_values_total"] == sum(summary["dropped_values"].values()) > 0


def _in_range(line: str) -> bool:
    _, parameter, value = line.split(",")
    field = {"HR": "hr", "RespRate": "rr", "SaO2": "spo2", "Temp": "temp", "SysABP": "sbp", "DiasABP": "dbp", "NISysABP": "sbp", "NIDiasABP": "dbp"}.get(parameter)
    if field is None:
        x = float(value)
        return {"FiO2": lambda: 0.205 <= (x / 100 if x > 1 else x) <= 1, "MechVent": lambda: x in (0, 1), "GCS": lambda: 3 <= x <= 15}[parameter]()
    low, high = RANGES[field]
    return low <= float(value) <= high


def test_physionet2012_invasive_pressure_preferred(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "1.txt").write_text("Time,Parameter,Value\n00:00,RecordID,1\n01:00,NISysABP,120\n01:00,SysABP,135\n01:00,DiasABP,0\n"
                              "01:00,NIDiasABP,70\n02:00,SaO2,96\n02:00,MechVent,1\n02:00,GCS,9\n03:00,HR,-1\n03:00,Temp,abc\n03:00,RespRate,20\n")
    summary = import_physionet2012(src).write(tmp_path / "out")
    readings = read_jsonl(tmp_path / "out" / "readings.jsonl")
    assert [(r["sbp"], r["dbp"]) for r in readings][0] == (135, 70)  # arterial systolic; arterial diastolic 0 is invalid -> cuff
    assert (readings[1]["spo2"], readings[1]["on_oxygen"], readings[1]["acvpu"]) == (96, True, "V")
    assert readings[2]["rr"] == 20 and readings[2]["hr"] is None and readings[2]["temp"] is None
    assert summary["dropped_values"] == {"not_numeric.temp": 1, "out_of_range.dbp": 1, "superseded.sbp": 1, "unknown.hr": 1}
    assert any(p.startswith(f"{src / '1.txt'}:11: not_numeric: temp") for p in summary["problems"])


def test_gcs_to_acvpu() -> None:
    assert [gcs_to_acvpu(g) for g in (15, 14, 13, 12, 9, 8, 4, 3)] == ["A", "C", "C", "V", "V", "P", "P", "U"]


MAPPING = """\
time: minutes
parameters:
  Heart Rate: {field: hr}
  Temp F: {field: temp, unit: "[degF]"}
  BP sys kPa: {field: sbp, unit: kPa}
  FiO2: fio2
  AVPU: {field: acvpu}
  Sepsis: {field: event, scenario: sepsis}
"""


def test_long_format_converts_units_and_reports(tmp_path: Path) -> None:
    (tmp_path / "map.yaml").write_text(MAPPING)
    (tmp_path / "x.csv").write_text(
        "patient_id,time,parameter,value\n"
        "a,0,Heart Rate,88\n"
        "a,0,Temp F,98.6\n"
        "a,0,BP sys kPa,16\n"
        "a,30,FiO2,40\n"
        "a,30,AVPU,V\n"
        "a,30,Glucose,7\n"
        "a,60,Heart Rate,NaNx\n"
        "a,60,Heart Rate\n"
        "b,tomorrow,Heart Rate,70\n"
        "b,90,Sepsis,1\n"
        "b,10,Temp F,200\n"
        "b,20,Heart Rate,71\n"
    )
    builder = import_long(tmp_path / "x.csv", tmp_path / "map.yaml")
    summary = builder.write(tmp_path / "out")
    readings = read_jsonl(tmp_path / "out" / "readings.jsonl")
    a0 = readings[0]
    assert a0["patient_id"] == "a" and a0["temp"] == 37.0 and a0["hr"] == 88 and a0["sbp"] == pytest.approx(120.0, abs=0.05)
    a30 = next(r for r in readings if r["patient_id"] == "a" and r["ts_ms"] == summary["start_ms"] + 30 * 60_000)
    assert a30["on_oxygen"] is True and a30["acvpu"] == "V"
    assert summary["readings"] == 3  # a@0, a@30, b@20 (b@10's only value is out of range)
    assert summary["dropped_values"] == {"not_numeric.hr": 1, "out_of_range.temp": 1}
    assert summary["rejected"] == {"bad_time": 1, "wrong_field_count": 1}
    assert summary["options"]["unmapped_parameters"] == {"Glucose": 1}
    assert summary["converted_values"] == {"%.fio2": 1, "[degF].temp": 2, "kPa.sbp": 1}
    assert [p.split(": ")[0] for p in summary["problems"]] == [f"{tmp_path / 'x.csv'}:{n}" for n in (8, 9, 10)]
    events = read_jsonl(tmp_path / "out" / "events.jsonl")
    assert events == [{"patient_id": "b", "event_ts_ms": summary["start_ms"] + 90 * 60_000, "scenario": "sepsis",
                       "onset_ts_ms": summary["start_ms"] + 90 * 60_000, "severity": None}]


@pytest.mark.parametrize("mapping, message", [
    ("parameters: {}\n", "non-empty 'parameters'"),
    ("time: fortnights\nparameters: {HR: hr}\n", "time='fortnights'"),
    ("parameters: {HR: heart}\n", "field must be one of"),
    ("parameters: {HR: {field: hr, unit: x, colour: red}}\n", "unknown key"),
    ("parameters: [\n", "cannot read the mapping"),
])
def test_long_format_bad_mapping(tmp_path: Path, mapping: str, message: str) -> None:
    (tmp_path / "map.yaml").write_text(mapping)
    (tmp_path / "x.csv").write_text("patient_id,time,parameter,value\na,0,HR,80\n")
    with pytest.raises(SourceError, match=message):
        import_long(tmp_path / "x.csv", tmp_path / "map.yaml")


def test_long_format_unsupported_unit_dropped(tmp_path: Path) -> None:
    (tmp_path / "map.yaml").write_text("parameters: {T: {field: temp, unit: K}, HR: hr}\n")
    (tmp_path / "x.csv").write_text("patient_id,time,parameter,value\na,0,T,310\na,0,HR,80\n")
    summary = import_long(tmp_path / "x.csv", tmp_path / "map.yaml").write(tmp_path / "out")
    assert summary["readings"] == 1 and summary["dropped_values"] == {"unsupported_unit.temp": 1}


def test_cli_import_sample_and_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["import", "physionet2012", str(P12), "--out", str(tmp_path / "c")]) == 0
    out = capsys.readouterr().out
    assert out.startswith("imported ") and "4 in-hospital deaths from 30 files (0 rejected)" in out
    assert main(["import", "physionet2019", str(tmp_path / "missing"), "--out", str(tmp_path / "d")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"wardwatch import: {tmp_path / 'missing'}: no such file or directory"]
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "p1.psv").write_text("")
    assert main(["import", "physionet2019", str(empty), "--out", str(tmp_path / "e")]) == 1
    assert f"{empty / 'p1.psv'}:1: empty: no header line" in capsys.readouterr().err
    assert main(["import", "long", str(empty), "--out", str(tmp_path / "f")]) == 2


def test_tar_source_equals_directory(tmp_path: Path) -> None:
    import tarfile

    archive = tmp_path / "s.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for f in sorted(P19.glob("*.psv"))[:5]:
            tar.add(f, arcname=f"training_setB/{f.name}")
    a = import_physionet2019(archive).write(tmp_path / "a")
    b = import_physionet2019(P19, limit=5).write(tmp_path / "b")
    assert (tmp_path / "a" / "readings.jsonl").read_bytes() == (tmp_path / "b" / "readings.jsonl").read_bytes()
    assert a["readings"] == b["readings"] > 0
    assert not math.isnan(np.load(tmp_path / "a" / "readings.npz")["hr"][0])
    assert VITALS == ("hr", "rr", "spo2", "temp", "sbp", "dbp")
