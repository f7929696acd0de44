"""The `risk` record: the inference stage's public contract, one record per scored reading.

What the scorer writes on the `risk` topic and what every consumer of that topic (the alert
service, the ward view) reads, defined once, with its codec beside it, as
`ingest/contract.py` does for readings. The topic's full contract (key, headers,
partitioning) is in docs/topics.md.

Required fields, checked by `decode_risk` (a record without them is not a risk record):
    patient_id (1-128 characters), ts_ms (event time of the scored reading, epoch ms >= 0),
    risk (model probability, 0-1), news2 (aggregate, 0-20), news2_single3 (a 3 in any one
    parameter), model (the model version that scored it).
Optional fields, written by the scorer but not needed by every reader, so a malformed one is
read as absent rather than refusing the whole record:
    seq (the reading's device sequence number), news2_scores (each NEWS2 parameter's score,
    0-3, or null when the parameter had no value fresh enough to count), explain (why the
    risk is what it is: `Explanation`, on the readings the scorer explains).

Encoding is compact JSON with a fixed field order. `format_risk` is the scorer's hot path (one
call per reading, no intermediate dict); `encode_risk` is the same bytes from a `Risk`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar, overload

from inference.news2 import PARAMETERS
from ingest import MAX_ID_LENGTH
from runtime.records import json_object

# The explanation's names (inference/explain.py computes them; written here, the contract).
INPUT_GROUPS: Final = ("hr", "rr", "spo2", "temp", "bp", "on_oxygen", "acvpu")
TRENDED: Final = ("hr", "rr", "spo2", "temp", "sbp", "dbp", "risk")
VALUED: Final = TRENDED[:6]
HORIZONS: Final = ("1h", "4h")
# A contribution is dominant when putting that input back to normal moves the risk by at least
# 5 percentage points: a change the card's whole-percent risk shows plainly, and a twelfth of
# the way from 0 to the default model alert (0.6). Below it, no one input explains the score.
DOMINANT: Final = 0.05

RISK_DECIMALS: Final = 6  # finer than any threshold; keeps the record short


class RiskDecodeError(ValueError):
    """A value that is not a usable `risk` record; the text names the field and the value."""


@dataclass(frozen=True, slots=True)
class Explanation:
    """Why a risk is what it is (docs/topics.md, `risk`; the method: docs/model.md).

    top:      up to 3 (input group, contribution) pairs, largest magnitude first; a contribution
              is the risk minus the risk with that input at a normal value (+ raises the risk)
    values:   each vital's value as the model saw it (the last observed, null when none)
    since_ms: per horizon (1 h, 4 h), the event time each trend is measured from
    trend:    per trended name (the vitals and `risk`), its change per horizon (null when none);
              names with no change in either horizon are left out
    """

    top: tuple[tuple[str, float], ...] = ()
    values: dict[str, float | None] = field(default_factory=dict)
    since_ms: tuple[int, ...] = ()
    trend: dict[str, tuple[float | None, ...]] = field(default_factory=dict)

    def change(self, name: str, horizon: str) -> float | None:
        """The change of `name` over `horizon` ("1h" or "4h"), or None."""
        return self.trend.get(name, (None, None))[HORIZONS.index(horizon)]


_COMPACT = json.JSONEncoder(separators=(",", ":"))


def explanation_json(
    top: Sequence[tuple[str, float]] | Sequence[list[Any]],
    values: Mapping[str, float | None],
    since_ms: Sequence[int],
    trend: Mapping[str, Sequence[float | None]],
) -> str:
    """The `explain` object's JSON text from its parts (the scorer's path; no dataclass per reading).

    Compact, in the contract's order (top, values, trend; names in VALUED / TRENDED order as given),
    floats as Python writes them, so it round-trips exactly through `explanation_from_object`.
    """
    return _COMPACT.encode(
        {"top": [list(pair) for pair in top], "values": values, "trend": {"since_ms": list(since_ms), **{k: list(v) for k, v in trend.items()}}}
    )


def format_explanation(explanation: Explanation) -> str:
    """The `explain` object's JSON text, compact and in a fixed order (round-trips exactly)."""
    values: dict[str, float | None] = {name: explanation.values[name] for name in VALUED if name in explanation.values}
    trend: dict[str, Sequence[float | None]] = {name: explanation.trend[name] for name in TRENDED if name in explanation.trend}
    return explanation_json(explanation.top, values, explanation.since_ms, trend)


@dataclass(frozen=True, slots=True)
class Risk:
    """One scored reading: the model's risk and NEWS2 side by side."""

    patient_id: str
    ts_ms: int
    risk: float
    news2: int
    news2_single3: bool
    model: str
    seq: int | None = None
    news2_scores: dict[str, int | None] = field(default_factory=dict, hash=False)  # a record stays hashable
    explain: Explanation | None = field(default=None, hash=False)


R = TypeVar("R", bound=Risk)
_PARAMETER_NAMES: Final = frozenset(PARAMETERS)


def format_risk(
    patient_id: str,
    ts_ms: int,
    seq: int,
    risk: float,
    news2: int,
    single3: bool,
    parameter_scores: Sequence[int],
    model_json: str,
    explain_json: str | None = None,
) -> bytes:
    """The record's bytes, formatted directly (the scorer's once-per-reading path).

    `parameter_scores` are in `inference.news2.PARAMETERS` order, -1 for a parameter with no
    fresh value; `model_json` is the model version already JSON-encoded (it is the same for
    every record, so the caller encodes it once); `explain_json` is `format_explanation`'s text.
    """
    scores = ",".join(
        f'"{name}":{score}' if score >= 0 else f'"{name}":null' for name, score in zip(PARAMETERS, parameter_scores)
    )
    return (
        f'{{"patient_id":{json.dumps(patient_id)},"ts_ms":{ts_ms},"seq":{seq},'
        f'"risk":{round(risk, RISK_DECIMALS)!r},"news2":{news2},"news2_single3":{"true" if single3 else "false"},'
        f'"news2_scores":{{{scores}}},"model":{model_json}'
        + (f',"explain":{explain_json}}}' if explain_json is not None else "}")
    ).encode()


def encode_risk(record: Risk) -> bytes:
    """A `Risk` as the `risk` topic's JSON (the same bytes the scorer writes)."""
    if record.seq is None:
        raise ValueError("encode_risk: seq is required to write a risk record")
    scores = [record.news2_scores.get(name) for name in PARAMETERS]
    return format_risk(
        record.patient_id,
        record.ts_ms,
        record.seq,
        record.risk,
        record.news2,
        record.news2_single3,
        [-1 if s is None else s for s in scores],
        json.dumps(record.model),
        format_explanation(record.explain) if record.explain is not None else None,
    )


@overload
def decode_risk(data: bytes | str | None) -> Risk: ...
@overload
def decode_risk(data: bytes | str | None, as_type: type[R]) -> R: ...
def decode_risk(data: bytes | str | None, as_type: type[Risk] = Risk) -> Risk:
    """Decode and check a `risk` record value; raises RiskDecodeError naming the bad field.
    `as_type`: a subclass of `Risk` with no fields of its own, built directly (no copy)."""
    return risk_from_object(json_object(data, RiskDecodeError), as_type)


@overload
def risk_from_object(obj: Any) -> Risk: ...
@overload
def risk_from_object(obj: Any, as_type: type[R]) -> R: ...
def risk_from_object(obj: Any, as_type: type[Risk] = Risk) -> Risk:
    """Check an already-decoded JSON value against the contract (for readers that parse first)."""
    if not isinstance(obj, dict):
        raise RiskDecodeError(f"value={type(obj).__name__}: expected a JSON object")
    risk = obj.get("risk")
    if isinstance(risk, bool) or not isinstance(risk, (int, float)) or not math.isfinite(risk) or not 0 <= risk <= 1:
        raise RiskDecodeError(f"risk={risk!r}: expected a number in 0-1")
    news2 = obj.get("news2")
    if isinstance(news2, bool) or not isinstance(news2, int) or not 0 <= news2 <= 20:
        raise RiskDecodeError(f"news2={news2!r}: expected an integer in 0-20")
    single3 = obj.get("news2_single3")
    if not isinstance(single3, bool):
        raise RiskDecodeError(f"news2_single3={single3!r}: expected true or false")
    model = obj.get("model")
    if not isinstance(model, str):
        raise RiskDecodeError(f"model={model!r}: expected the model version string")
    patient_id = obj.get("patient_id")
    if not isinstance(patient_id, str) or not 0 < len(patient_id) <= MAX_ID_LENGTH:
        raise RiskDecodeError(f"patient_id={patient_id!r}: expected a non-empty string of at most {MAX_ID_LENGTH} characters")
    ts_ms = obj.get("ts_ms")
    if isinstance(ts_ms, bool) or not isinstance(ts_ms, int) or ts_ms < 0:
        raise RiskDecodeError(f"ts_ms={ts_ms!r}: expected epoch milliseconds (an integer >= 0)")
    return as_type(
        patient_id=patient_id,
        ts_ms=ts_ms,
        risk=float(risk),
        news2=news2,
        news2_single3=single3,
        model=model,
        seq=_optional_seq(obj.get("seq")),
        news2_scores=_optional_scores(obj.get("news2_scores")),
        explain=explanation_from_object(obj.get("explain")),
    )


def _optional_seq(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _optional_scores(value: Any) -> dict[str, int | None]:
    if not isinstance(value, dict):
        return {}
    if value.keys() <= _PARAMETER_NAMES and all(s is None or (type(s) is int and 0 <= s <= 3) for s in value.values()):
        return value  # the scorer's records: every entry passes, so the decoded dict is kept as it is
    return {
        name: score
        for name, score in value.items()
        if name in PARAMETERS and (score is None or (isinstance(score, int) and not isinstance(score, bool) and 0 <= score <= 3))
    }


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def explanation_from_object(value: Any) -> Explanation | None:
    """An `explain` object checked against the contract; None when absent or malformed (it is optional)."""
    if not isinstance(value, dict):
        return None
    top, values, trend = value.get("top"), value.get("values"), value.get("trend")
    if not isinstance(top, list) or not isinstance(values, dict) or not isinstance(trend, dict):
        return None
    pairs: list[tuple[str, float]] = []
    for item in top[:3]:
        if not (isinstance(item, list) and len(item) == 2 and item[0] in INPUT_GROUPS and _number(item[1]) and abs(item[1]) <= 1):
            return None
        pairs.append((item[0], float(item[1])))
    seen: dict[str, float | None] = {}
    for name, v in values.items():
        if name not in VALUED or not (v is None or _number(v)):
            return None
        seen[name] = None if v is None else float(v)
    since = trend.get("since_ms")
    if not (isinstance(since, list) and len(since) == len(HORIZONS) and all(isinstance(t, int) and not isinstance(t, bool) for t in since)):
        return None
    changes: dict[str, tuple[float | None, ...]] = {}
    for name, v in trend.items():
        if name == "since_ms":
            continue
        if name not in TRENDED or not isinstance(v, list) or len(v) != len(HORIZONS) or not all(x is None or _number(x) for x in v):
            return None
        changes[name] = tuple(None if x is None else float(x) for x in v)
    return Explanation(tuple(pairs), seen, tuple(since), changes)
