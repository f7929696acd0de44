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


# -- the stricter door: HL7's own R4 vital-signs examples, lightly varied --------------------------
# HL7 FHIR R4 example "heart-rate" (observation-example-heart-rate.json); its effectiveDateTime
# ("1999-07-02") carries no time of day, so the examples below give it one.
HEART_RATE = {
    "resourceType": "Observation",
    "id": "heart-rate",
    "meta": {"profile": ["http://hl7.org/fhir/StructureDefinition/vitalsigns"]},
    "status": "final",
    "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                              "code": "vital-signs", "display": "Vital Signs"}], "text": "Vital Signs"}],
    "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4", "display": "Heart rate"}], "text": "Heart rate"},
    "subject": {"reference": "Patient/example"},
    "effectiveDateTime": WHEN,
    "valueQuantity": {"value": 44, "unit": "beats/minute", "system": "http://unitsofmeasure.org", "code": "/min"},
}
MODIFIER = [{"url": "http://example.org/fhir/StructureDefinition/not-measured-on-patient", "valueBoolean": True}]


def varied(base: dict, **change: object) -> dict:
    resource = copy.deepcopy(base)
    resource.update(copy.deepcopy(change))
    return resource


def test_the_hl7_heart_rate_example_maps_as_is() -> None:
    reading = one(HEART_RATE).reading
    assert reading is not None and reading.hr == 44.0 and reading.device_id == "fhir-unspecified"


@pytest.mark.parametrize("comparator", [">", ">=", "<", "<=", "ad"])
def test_a_value_with_a_comparator_is_a_bound_and_is_rejected_not_read_as_exact(comparator: str) -> None:
    obs = varied(HEART_RATE)
    obs["valueQuantity"]["comparator"] = comparator
    item = one(obs)
    assert item.reading is None and item.rejected.reason is Reason.UNSUPPORTED_FHIR
    assert "comparator" in item.rejected.detail and repr(comparator) in item.rejected.detail


def test_a_blood_pressure_component_with_a_comparator_is_rejected() -> None:
    bp = copy.deepcopy(BLOOD_PRESSURE)
    bp["component"][0]["valueQuantity"]["comparator"] = "<"
    item = one(bp)
    assert item.rejected is not None and "comparator" in item.rejected.detail


def test_an_unknown_modifier_extension_on_the_observation_is_rejected() -> None:
    item = one(varied(HEART_RATE, modifierExtension=MODIFIER))
    assert item.rejected is not None and item.rejected.reason is Reason.UNSUPPORTED_FHIR
    assert "modifierExtension" in item.rejected.detail and "not-measured-on-patient" in item.rejected.detail


def test_an_unknown_modifier_extension_on_a_component_is_rejected() -> None:
    bp = copy.deepcopy(BLOOD_PRESSURE)
    bp["component"][1]["modifierExtension"] = copy.deepcopy(MODIFIER)
    item = one(bp)
    assert item.rejected is not None and item.rejected.reason is Reason.UNSUPPORTED_FHIR
    assert "component[1].modifierExtension" in item.rejected.detail


def test_a_plain_extension_is_not_a_modifier_and_is_ignored() -> None:
    assert one(varied(HEART_RATE, extension=MODIFIER)).reading is not None


@pytest.mark.parametrize("reference", ["Patient/example", "Practitioner/f201", "Location/1", "example"])
def test_a_device_reference_must_name_a_device(reference: str) -> None:
    item = one(varied(HEART_RATE, device={"reference": reference}))
    assert item.rejected is not None and item.rejected.reason is Reason.UNSUPPORTED_FHIR
    assert "device.reference" in item.rejected.detail


def test_a_device_reference_with_a_base_url_and_version_is_accepted() -> None:
    item = one(varied(HEART_RATE, device={"reference": "http://hospital.example/fhir/Device/monitor-3/_history/2"}))
    assert item.reading is not None and item.reading.device_id == "monitor-3"


def test_a_corrected_observation_supersedes_the_value_and_passes_deduplication() -> None:
    import json

    from ingest.processor import IngestProcessor
    from runtime.metrics import StreamMetrics, new_registry
    from runtime.records import InRecord
    from runtime.topics import VITALS, VITALS_DLQ, VITALS_RAW

    final = HEART_RATE
    corrected = varied(HEART_RATE, status="corrected", valueQuantity={**HEART_RATE["valueQuantity"], "value": 54})
    ingest = IngestProcessor(StreamMetrics(new_registry(), "ingest"), clock=lambda: NOW / 1000, limits=WIDE)

    def feed(resource: dict, offset: int) -> list:
        record = InRecord(VITALS_RAW, 0, offset, b"example", json.dumps(resource).encode(), NOW)
        return [o for o in ingest.process([record]) if o.topic in (VITALS, VITALS_DLQ)]

    first, resent, correction, correction_again = feed(final, 0), feed(final, 1), feed(corrected, 2), feed(corrected, 3)
    assert [o.topic for o in first] == [VITALS] and json.loads(first[0].value)["hr"] == 44.0
    assert [o.topic for o in resent] == [VITALS_DLQ]  # a plain resend is still a duplicate
    assert [o.topic for o in correction] == [VITALS]
    reading = json.loads(correction[0].value)
    assert reading["hr"] == 54.0 and reading["ts_ms"] == json.loads(first[0].value)["ts_ms"]
    assert [o.topic for o in correction_again] == [VITALS_DLQ]  # the same correction resent is a duplicate
    assert dict(correction_again[0].headers)["reason"] == b"duplicate"


def test_the_scorer_scores_a_correction_of_the_latest_reading_and_dead_letters_an_older_one_as_late() -> None:
    import json

    from ingest.processor import IngestProcessor
    from inference.model import ModelConfig, TorchStep, untrained
    from inference.processor import ScorerProcessor, ScorerSettings
    from runtime.metrics import StreamMetrics, new_registry
    from runtime.records import InRecord
    from runtime.topics import RISK, VITALS, VITALS_DLQ, VITALS_RAW

    ingest = IngestProcessor(StreamMetrics(new_registry(), "ingest"), clock=lambda: NOW / 1000, limits=WIDE)
    scorer = ScorerProcessor(TorchStep(untrained(seed=1, config=ModelConfig(cell="gru", hidden=16))), "gru-test",
                             StreamMetrics(new_registry(), "score"), ScorerSettings())
    earlier = varied(HEART_RATE, id="hr-1", effectiveDateTime="2025-12-31T23:20:00Z")
    latest = varied(HEART_RATE, id="hr-2")
    fix_latest = varied(latest, status="corrected", valueQuantity={**HEART_RATE["valueQuantity"], "value": 135})
    fix_earlier = varied(earlier, status="amended", valueQuantity={**HEART_RATE["valueQuantity"], "value": 120})
    scored: list[tuple[str, dict]] = []
    for offset, resource in enumerate([earlier, latest, fix_latest, fix_earlier]):
        raw = InRecord(VITALS_RAW, 0, offset, b"example", json.dumps(resource).encode(), NOW)
        (vitals,) = [o for o in ingest.process([raw]) if o.topic == VITALS]  # every one passes ingest
        out = scorer.process([InRecord(VITALS, 0, offset, vitals.key, vitals.value, NOW)])
        for o in out:
            if o.topic in (RISK, VITALS_DLQ):
                scored.append((o.topic, json.loads(o.value) if o.topic == RISK else dict(o.headers)))
    assert [topic for topic, _ in scored] == [RISK, RISK, RISK, VITALS_DLQ]
    # 44/min scores 1 in NEWS2; the corrected 135/min scores 3: the correction superseded it.
    assert (scored[1][1]["news2_scores"]["hr"], scored[2][1]["news2_scores"]["hr"]) == (1, 3)
    assert scored[2][1]["ts_ms"] == scored[1][1]["ts_ms"]  # the correction is scored at the moment it corrects
    assert scored[3][1]["reason"] == b"late"
