"""FHIR R4 vital-signs Observations (single, or a Bundle of them) -> readings.

Mapping (HL7 vital-signs profile, LOINC codes, UCUM units; docs/topics.md):
- `code`: a LOINC coding (system http://loinc.org) of 8867-4 hr, 9279-1 rr, 59408-5 or 2708-6
  spo2, 8310-5 temp, 8480-6 sbp, 8462-4 dbp, or the blood-pressure panel 85354-9 whose
  `component`s carry 8480-6/8462-4. Other codes (weight, BMI, the 85353-1 panel that only
  groups members) are `unsupported_fhir`.
- `valueQuantity` in UCUM, converted by `ingest.units`; no value (dataAbsentReason) is
  `missing_field`. A panel component without a value leaves that vital absent.
- `valueQuantity.comparator` (<, <=, >=, >, ad) makes the value a bound, not a measurement: the
  Observation is rejected (`unsupported_fhir`), never read as the bare number.
- A `modifierExtension` on the Observation or on a component changes the meaning of what it
  sits on; FHIR says such data SHALL NOT be processed when the modifier is not understood. We
  understand none, so any modifierExtension rejects the Observation (`unsupported_fhir`).
- `status` must be final, amended, corrected or preliminary: other states are not measurements.
- `patient_id` is the id of `subject.reference` "Patient/<id>" (a base URL and /_history are
  allowed). `device_id` is the id of `device.reference`, which must be "Device/<id>" (any other
  resource type is rejected), or `device.identifier.value`, else "fhir-unspecified". `ts_ms` is `effectiveDateTime`, `effectiveInstant` or
  `effectivePeriod.start`, which must carry a time of day and a zone.
- `seq`: FHIR has no per-device counter, so it is a stable 53-bit hash of the patient, the
  effective time and each member's identity (first identifier system|value, else id, else the
  canonical JSON). A resent Observation or Bundle gets the same seq, which is what
  de-duplication needs; 53 bits stay exact in every JSON reader.
- Corrections: an `amended` or `corrected` Observation re-states an earlier one (same identity,
  same effective time) with another value. Its seq also covers its status and the mapped
  values, so it is not a duplicate of the reading it corrects and reaches the scorer, while a
  resent copy of the same correction still is. The scorer takes it like any reading: at or
  after the patient's last applied event time it is scored (the corrected value supersedes the
  one it corrects from then on); older, it is dead-lettered `late`. The correction stays
  visible as the resource on `vitals.raw` (its status says so) and as its own `vitals` record.
- A Bundle: each entry maps on its own. Observations of one patient and device at the same
  effective time merge into one reading (as a bedside monitor reports one set), unless two set
  the same vital: then the later one starts another reading. A reject in one entry does not
  refuse its neighbours.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import replace
from datetime import datetime
from typing import Any, Final

from ingest.contract import VITALS, Reading
from ingest.item import Item
from ingest.units import to_contract_unit
from ingest.validate import Limits, Reason, Rejected, validate_object

LOINC: Final = "http://loinc.org"
BP_PANEL: Final = "85354-9"
VITAL_SIGNS_PANEL: Final = "85353-1"
CODES: Final = {"8867-4": "hr", "9279-1": "rr", "59408-5": "spo2", "2708-6": "spo2", "8310-5": "temp", "8480-6": "sbp", "8462-4": "dbp"}
MEASURED: Final = ("final", "amended", "corrected", "preliminary")
CORRECTIONS: Final = ("amended", "corrected")
COMPARATORS: Final = ("<", "<=", ">=", ">", "ad")
NO_DEVICE: Final = "fhir-unspecified"

REFERENCE = re.compile(r"(?:^|/)([A-Za-z]+)/([A-Za-z0-9\-.]{1,64})(?:/_history/[A-Za-z0-9\-.]{1,64})?$")
_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$")


def is_fhir(obj: Any) -> bool:
    """FHIR resources name their type; plain readings have no `resourceType`."""
    return isinstance(obj, dict) and "resourceType" in obj


def map_resource(obj: dict[str, Any], now_ms: int, limits: Limits = Limits()) -> list[Item]:
    """An Observation or a Bundle of them as items; never raises."""
    kind = obj.get("resourceType")
    if kind == "Observation":
        return [_merge([(-1, obj, _map_observation(obj, now_ms, limits))], single=True)[0]]
    if kind == "Bundle":
        return _map_bundle(obj, now_ms, limits)
    return [Item(Rejected(Reason.UNSUPPORTED_FHIR, f"resourceType {_short(kind)}: expected Observation or Bundle"), source=obj)]


def _map_bundle(bundle: dict[str, Any], now_ms: int, limits: Limits) -> list[Item]:
    entries = bundle.get("entry")
    if not isinstance(entries, list) or not entries:
        return [Item(Rejected(Reason.MISSING_FIELD, "Bundle.entry: expected a non-empty list of Observations"), source=bundle)]
    mapped: list[tuple[int, Any, Reading | Rejected]] = []
    for index, entry in enumerate(entries):
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if not isinstance(resource, dict):
            result: Reading | Rejected = Rejected(Reason.MISSING_FIELD, f"entry[{index}].resource: expected an object")
        elif resource.get("resourceType") != "Observation":
            result = Rejected(Reason.UNSUPPORTED_FHIR, f"entry[{index}] is a {_short(resource.get('resourceType'))}, expected Observation")
        else:
            result = _map_observation(resource, now_ms, limits)
            if isinstance(result, Rejected):
                result = Rejected(result.reason, f"entry[{index}]: {result.detail}")
        mapped.append((index, resource if resource is not None else entry, result))
    return _merge(mapped, single=False)


def _merge(mapped: list[tuple[int, Any, Reading | Rejected]], *, single: bool) -> list[Item]:
    """Merge readings of one patient, device and time; give each its content-derived seq."""
    items: list[Item] = []
    groups: list[tuple[Reading, list[int], list[Any]]] = []
    for index, resource, result in mapped:
        if isinstance(result, Rejected):
            items.append(Item(result, () if single else (index,), resource))
            continue
        for g, (merged, indices, resources) in enumerate(groups):
            if _mergeable(merged, result):
                groups[g] = (_combine(merged, result), [*indices, index], [*resources, resource])
                break
        else:
            groups.append((result, [index], [resource]))
    for merged, indices, resources in groups:
        seq = _seq(merged, resources)
        source = resources[0] if single else _collection(resources)
        items.append(Item(replace(merged, seq=seq), () if single else tuple(indices), source))
    order = {id(item): min(item.entries, default=-1) for item in items}
    return sorted(items, key=lambda item: order[id(item)])


def _mergeable(a: Reading, b: Reading) -> bool:
    if (a.patient_id, a.device_id, a.ts_ms) != (b.patient_id, b.device_id, b.ts_ms):
        return False
    return all(getattr(a, name) is None or getattr(b, name) is None for name in VITALS)


def _combine(a: Reading, b: Reading) -> Reading:
    return replace(a, **{name: getattr(b, name) for name in VITALS if getattr(b, name) is not None})


def _collection(resources: list[Any]) -> dict[str, Any]:
    """The members of one merged reading as a Bundle: what the gateway forwards for it."""
    return {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": r} for r in resources]}


def _seq(reading: Reading, resources: list[Any]) -> int:
    identities = sorted(_identity(r) for r in resources)
    text = "\n".join([reading.patient_id, str(reading.ts_ms), *identities])
    if any(isinstance(r, dict) and r.get("status") in CORRECTIONS for r in resources):
        # A correction is a new reading of the same moment: its values belong to its identity.
        values = {name: getattr(reading, name) for name in VITALS}
        text += "\ncorrection:" + json.dumps(values, sort_keys=True, separators=(",", ":"))
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") >> 11


def _identity(resource: dict[str, Any]) -> str:
    for identifier in resource.get("identifier") or []:
        if isinstance(identifier, dict) and isinstance(identifier.get("value"), str):
            return f"identifier:{identifier.get('system', '')}|{identifier['value']}"
    if isinstance(resource.get("id"), str):
        return f"id:{resource['id']}"
    return "json:" + json.dumps(resource, sort_keys=True, separators=(",", ":"))


def _map_observation(obs: dict[str, Any], now_ms: int, limits: Limits) -> Reading | Rejected:
    try:
        fields = observation_fields(obs)
        return validate_object(fields, now_ms, limits)
    except Rejected as rejected:
        return rejected
    except (TypeError, ValueError, AttributeError) as exc:  # a shape we did not foresee: a reject, never a crash
        return Rejected(Reason.WRONG_TYPE, f"Observation has an unexpected shape ({type(exc).__name__})")


def observation_fields(obs: dict[str, Any]) -> dict[str, Any]:
    """The contract fields of one vital-signs Observation (seq 0 until merged); raises Rejected."""
    status = obs.get("status")
    if status not in MEASURED:
        raise Rejected(Reason.UNSUPPORTED_FHIR, f"status {_short(status)}: only {', '.join(MEASURED)} observations are measurements")
    _no_modifiers(obs, "Observation")
    code = _loinc(obs.get("code"), "code")
    assert code is not None  # required: _loinc raises Rejected rather than return None
    fields: dict[str, Any] = {
        "patient_id": _reference_id(obs.get("subject"), "subject", ("Patient",)),
        "device_id": _device(obs.get("device")),
        "seq": 0,
        "ts_ms": _effective(obs),
    }
    if code == BP_PANEL:
        components = obs.get("component")
        if not isinstance(components, list):
            raise Rejected(Reason.MISSING_FIELD, f"{BP_PANEL} blood-pressure panel has no component list")
        for index, component in enumerate(components):
            _no_modifiers(component, f"component[{index}]")
            name = CODES.get(_loinc(component.get("code"), "component.code", required=False) or "")
            if name in ("sbp", "dbp") and component.get("valueQuantity") is not None:
                fields[name] = _quantity(component["valueQuantity"], name)
        if "sbp" not in fields and "dbp" not in fields:
            raise Rejected(Reason.MISSING_FIELD, f"{BP_PANEL} panel has no 8480-6 or 8462-4 component with a valueQuantity")
        return fields
    name = CODES[code]
    quantity = obs.get("valueQuantity")
    if quantity is None:
        absent = _short((obs.get("dataAbsentReason") or {}).get("text") if isinstance(obs.get("dataAbsentReason"), dict) else None)
        raise Rejected(Reason.MISSING_FIELD, f"{code} Observation has no valueQuantity (dataAbsentReason {absent})")
    fields[name] = _quantity(quantity, name)
    return fields


def _loinc(concept: Any, where: str, *, required: bool = True) -> str | None:
    codings = concept.get("coding") if isinstance(concept, dict) else None
    if not isinstance(codings, list):
        if not required:
            return None
        raise Rejected(Reason.MISSING_FIELD, f"{where}.coding: expected a list of codings")
    seen = []
    for coding in codings:
        if isinstance(coding, dict) and coding.get("system") == LOINC:
            code = coding.get("code")
            if code in CODES or code == BP_PANEL:
                return str(code)
            seen.append(code)
    if not required:
        return None
    if VITAL_SIGNS_PANEL in seen:
        raise Rejected(Reason.UNSUPPORTED_FHIR, f"{VITAL_SIGNS_PANEL} vital-signs panel only groups members: send the member Observations")
    known = ", ".join([*CODES, BP_PANEL])
    raise Rejected(Reason.UNSUPPORTED_FHIR, f"{where}: LOINC {_short(seen[:3]) if seen else 'none'}, expected one of {known}")


def _no_modifiers(element: Any, where: str) -> None:
    """Reject an element that carries a modifierExtension: we understand none of them."""
    modifiers = element.get("modifierExtension") if isinstance(element, dict) else None
    if modifiers:
        first = modifiers[0] if isinstance(modifiers, list) else modifiers
        url = first.get("url") if isinstance(first, dict) else None
        named = f"url={str(url)[:160]!r}" if isinstance(url, str) else _short(modifiers)
        raise Rejected(Reason.UNSUPPORTED_FHIR, f"{where}.modifierExtension {named}: "
                       "an unknown modifier changes the meaning, so the Observation is not processed")


def _quantity(quantity: Any, name: str) -> float:
    if not isinstance(quantity, dict):
        raise Rejected(Reason.WRONG_TYPE, f"{name}: valueQuantity must be an object")
    comparator = quantity.get("comparator")
    if comparator is not None:
        raise Rejected(Reason.UNSUPPORTED_FHIR, f"{name}: valueQuantity.comparator {_short(comparator)} makes the value a bound, "
                       "not a measurement (the contract carries exact values only)")
    value = quantity.get("value")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise Rejected(Reason.WRONG_TYPE, f"{name}: valueQuantity.value={_short(value)}, expected a number")
    unit = quantity.get("code", quantity.get("unit"))
    if not isinstance(unit, str):
        raise Rejected(Reason.UNSUPPORTED_UNIT, f"{name}: valueQuantity declares no UCUM code")
    system = quantity.get("system") if "code" in quantity else None
    try:
        number = float(value)
    except OverflowError:
        raise Rejected(Reason.NOT_FINITE, f"{name}: valueQuantity.value is too large for a number") from None
    return to_contract_unit(name, number, unit, system if isinstance(system, str) or system is None else "")


def _reference_id(ref: Any, where: str, types: tuple[str, ...]) -> str:
    text = ref.get("reference") if isinstance(ref, dict) else None
    if not isinstance(text, str):
        raise Rejected(Reason.MISSING_FIELD, f"{where}.reference: expected \"{types[0]}/<id>\"")
    match = REFERENCE.search(text)
    if match is None or match.group(1) not in types:
        raise Rejected(Reason.UNSUPPORTED_FHIR, f"{where}.reference {_short(text)}: expected \"{types[0]}/<id>\" (other references are not resolved)")
    return match.group(2)


def _device(ref: Any) -> str:
    if not isinstance(ref, dict):
        return NO_DEVICE
    text = ref.get("reference")
    if isinstance(text, str):
        return _reference_id(ref, "device", ("Device",))
    identifier = ref.get("identifier")
    if isinstance(identifier, dict) and isinstance(identifier.get("value"), str):
        return identifier["value"]
    return NO_DEVICE


def _effective(obs: dict[str, Any]) -> int:
    for key in ("effectiveDateTime", "effectiveInstant"):
        if key in obs:
            return _epoch_ms(obs[key], key)
    period = obs.get("effectivePeriod")
    if isinstance(period, dict) and "start" in period:
        return _epoch_ms(period["start"], "effectivePeriod.start")
    raise Rejected(Reason.MISSING_FIELD, "effectiveDateTime, effectiveInstant or effectivePeriod.start is required")


def _epoch_ms(text: Any, where: str) -> int:
    if not isinstance(text, str) or not _DATETIME.match(text):
        raise Rejected(Reason.WRONG_TYPE, f"{where}={_short(text)}: expected a date-time with time of day and zone, e.g. 2024-05-01T10:30:00Z")
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise Rejected(Reason.WRONG_TYPE, f"{where}={_short(text)}: not a valid date-time") from None
    return round(moment.timestamp() * 1000)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
