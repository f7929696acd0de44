"""FHIR R4 vital-signs Observations, in the shapes of the HL7 examples, map to readings."""

from __future__ import annotations

import copy

import pytest

from ingest.fhir import map_resource
from ingest.payload import parse_payload
from ingest.validate import Limits, Reason

NOW = 1_767_225_600_000  # 2026-01-01T00:00:00Z
WHEN = "2025-12-31T23:30:00Z"
WIDE = Limits(max_age_ms=2**62)


def observation(code: str, value: float | None, unit: str, *, display: str = "", **extra: object) -> dict:
    obs: dict = {
        "resourceType": "Observation",
        "id": f"obs-{code}",
        "status": "final",
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "vital-signs"}]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": code, "display": display}]},
        "subject": {"reference": "Patient/example"},
        "device": {"reference": "Device/patch-7"},
        "effectiveDateTime": WHEN,
    }
    if value is not None:
        obs["valueQuantity"] = {"value": value, "unit": unit, "system": "http://unitsofmeasure.org", "code": unit}
    obs.update(extra)
    return obs


BLOOD_PRESSURE = {  # the HL7 "blood-pressure" example's shape: a panel with two components
    "resourceType": "Observation",
    "id": "blood-pressure",
    "status": "final",
    "category": [{"coding": [{"code": "vital-signs"}]}],
    "code": {"coding": [{"system": "http://loinc.org", "code": "85354-9", "display": "Blood pressure panel"}]},
    "subject": {"reference": "Patient/example"},
    "effectiveDateTime": WHEN,
    "component": [
        {"code": {"coding": [{"system": "http://loinc.org", "code": "8480-6"}]},
         "valueQuantity": {"value": 107, "unit": "mmHg", "system": "http://unitsofmeasure.org", "code": "mm[Hg]"}},
        {"code": {"coding": [{"system": "http://loinc.org", "code": "8462-4"}]},
         "valueQuantity": {"value": 60, "unit": "mmHg", "system": "http://unitsofmeasure.org", "code": "mm[Hg]"}},
    ],
}


def one(resource: dict):  # noqa: ANN201
    items = map_resource(resource, NOW, WIDE)
    assert len(items) == 1
    return items[0]


@pytest.mark.parametrize(
    ("code", "value", "unit", "field", "expected"),
    [
        ("8867-4", 44, "/min", "hr", 44.0),
        ("8867-4", 72, "{beats}/min", "hr", 72.0),
        ("9279-1", 26, "/min", "rr", 26.0),
        ("59408-5", 95, "%", "spo2", 95.0),
        ("2708-6", 97, "%", "spo2", 97.0),
        ("8310-5", 36.5, "Cel", "temp", 36.5),
        ("8310-5", 99.5, "[degF]", "temp", 37.5),
    ],
)
def test_single_vital_observations_map_to_the_contract_field_and_unit(code: str, value: float, unit: str, field: str, expected: float) -> None:
    reading = one(observation(code, value, unit)).reading
    assert reading is not None
    assert getattr(reading, field) == expected
    assert (reading.patient_id, reading.device_id, reading.ts_ms) == ("example", "patch-7", NOW - 30 * 60_000)


def test_blood_pressure_panel_components_map_to_systolic_and_diastolic() -> None:
    reading = one(BLOOD_PRESSURE).reading
    assert reading is not None and (reading.sbp, reading.dbp) == (107.0, 60.0)


def test_blood_pressure_in_kilopascals_is_converted_to_mmhg() -> None:
    bp = copy.deepcopy(BLOOD_PRESSURE)
    for component, kpa in zip(bp["component"], (16.0, 8.0)):
        component["valueQuantity"] = {"value": kpa, "system": "http://unitsofmeasure.org", "code": "kPa"}
    reading = one(bp).reading
    assert reading is not None and (reading.sbp, reading.dbp) == (120.0, 60.0)


def test_a_bundle_from_one_monitor_at_one_time_merges_into_one_reading() -> None:
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": [
        {"resource": observation("8867-4", 80, "/min")},
        {"resource": observation("9279-1", 18, "/min")},
        {"resource": observation("59408-5", 96, "%")},
        {"resource": observation("29463-7", 70, "kg", display="Body weight")},
    ]}
    items = map_resource(bundle, NOW, WIDE)
    readings = [i.reading for i in items if i.reading is not None]
    rejects = [i.rejected for i in items if i.rejected is not None]
    assert len(readings) == 1 and (readings[0].hr, readings[0].rr, readings[0].spo2) == (80.0, 18.0, 96.0)
    assert [r.reason for r in rejects] == [Reason.UNSUPPORTED_FHIR]  # the weight, not its neighbours


def test_a_resent_observation_gets_the_same_seq_so_it_can_be_deduplicated() -> None:
    first = one(observation("8867-4", 80, "/min")).reading
    again = one(observation("8867-4", 80, "/min")).reading
    other = one(observation("8867-4", 80, "/min", id="another")).reading
    assert first.seq == again.seq != other.seq


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"status": "entered-in-error"}, Reason.UNSUPPORTED_FHIR),
        ({"code": {"coding": [{"system": "http://loinc.org", "code": "29463-7"}]}}, Reason.UNSUPPORTED_FHIR),
        ({"code": {"coding": [{"system": "http://loinc.org", "code": "85353-1"}]}}, Reason.UNSUPPORTED_FHIR),
        ({"subject": None}, Reason.MISSING_FIELD),
        ({"subject": {"reference": "Group/ward-3"}}, Reason.UNSUPPORTED_FHIR),
        ({"effectiveDateTime": "2025-12-31"}, Reason.WRONG_TYPE),  # no time of day: not an event time
        ({"valueQuantity": {"value": 80, "code": "Hz"}}, Reason.UNSUPPORTED_UNIT),
        ({"valueQuantity": {"value": "eighty", "code": "/min"}}, Reason.WRONG_TYPE),
        ({"valueQuantity": {"value": 900, "code": "/min"}}, Reason.OUT_OF_RANGE),
    ],
)
def test_observations_that_cannot_be_readings_are_rejected_with_a_reason(change: dict, reason: Reason) -> None:
    obs = observation("8867-4", 80, "/min")
    for key, value in change.items():
        if value is None:
            obs.pop(key)
        else:
            obs[key] = value
    item = one(obs)
    assert item.rejected is not None and item.rejected.reason is reason, item.rejected


def test_other_resources_and_bad_bytes_are_rejected_not_raised() -> None:
    assert parse_payload(b'{"resourceType": "Patient", "id": "x"}', NOW)[0].rejected.reason is Reason.UNSUPPORTED_FHIR
    assert parse_payload(b'{"resourceType": "Bundle", "entry": []}', NOW)[0].rejected.reason is Reason.MISSING_FIELD
