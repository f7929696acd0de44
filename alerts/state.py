"""Per-patient alert state and its JSON form on the compacted `alerts.state` changelog.

Everything is integers and strings (no floats), so a state written and read back is equal to
the original, and a restored engine behaves exactly like the one that wrote it. Format v1:

    {"v": 1, "last_ts_ms": int, "snoozed_until_ms": int | null,
     "gap": ALERT | null,
     "rules": {RULE: {"window": [[ts_ms, rank], ...], "since": [ts_ms | null per level],
                      "alert": ALERT | null, "cooldown_until_ms": int | null, "cooldown_rank": int}}}
    ALERT = {"alert_id": str, "severity": str, "level": int, "raised_ts_ms": int, "acknowledged": bool}

`rank` is how many of the rule's levels a reading met (0 = none); `since[i]` is when the
debounce condition of level i+1 started holding.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import Any, Final

import orjson

from alerts.rules import Rules

STATE_VERSION: Final = 1


class CorruptState(ValueError):
    """A changelog value that is not a v1 alert state."""


@dataclass(frozen=True, slots=True)
class ActiveAlert:
    alert_id: str
    severity: str
    level: int  # hysteresis level (1-based index into the rule's levels); 1 for technical alerts
    raised_ts_ms: int
    acknowledged: bool = False


@dataclass(frozen=True, slots=True)
class RuleState:
    window: tuple[tuple[int, int], ...] = ()  # (ts_ms, rank) of the last `of_last` readings
    since: tuple[int | None, ...] = ()
    alert: ActiveAlert | None = None
    cooldown_until_ms: int | None = None
    cooldown_rank: int = 0  # severity rank of the resolved alert; only higher ones break the cool-down


@dataclass(frozen=True, slots=True)
class PatientState:
    last_ts_ms: int
    rules: dict[str, RuleState] = field(default_factory=dict)
    gap: ActiveAlert | None = None
    snoozed_until_ms: int | None = None

    def active_alerts(self) -> list[tuple[str, ActiveAlert]]:
        """(rule name, alert) for every open alert, technical included."""
        found = [(name, rs.alert) for name, rs in self.rules.items() if rs.alert is not None]
        if self.gap is not None:
            found.append(("data_gap", self.gap))
        return found

    def rule(self, name: str) -> RuleState:
        return self.rules.get(name) or RuleState()


def _alert_to_json(alert: ActiveAlert | None) -> dict[str, Any] | None:
    if alert is None:
        return None
    return {
        "alert_id": alert.alert_id,
        "severity": alert.severity,
        "level": alert.level,
        "raised_ts_ms": alert.raised_ts_ms,
        "acknowledged": alert.acknowledged,
    }


def to_json(state: PatientState) -> dict[str, Any]:
    """The changelog value of a patient's state (a JSON-ready dict)."""
    return {
        "v": STATE_VERSION,
        "last_ts_ms": state.last_ts_ms,
        "snoozed_until_ms": state.snoozed_until_ms,
        "gap": _alert_to_json(state.gap),
        "rules": {
            name: {
                "window": rs.window,  # tuples: both encoders write them as arrays
                "since": rs.since,
                "alert": _alert_to_json(rs.alert),
                "cooldown_until_ms": rs.cooldown_until_ms,
                "cooldown_rank": rs.cooldown_rank,
            }
            for name, rs in state.rules.items()
        },
    }


def _alert_from_json(obj: Any) -> ActiveAlert | None:
    if obj is None:
        return None
    return ActiveAlert(
        alert_id=str(obj["alert_id"]),
        severity=str(obj["severity"]),
        level=int(obj["level"]),
        raised_ts_ms=int(obj["raised_ts_ms"]),
        acknowledged=bool(obj["acknowledged"]),
    )


def _opt_int(value: Any) -> int | None:
    return None if value is None else int(value)


def from_json(obj: Any, rules: Rules) -> PatientState:
    """Decode a changelog value, fitted to the current rules (state from older rules is trimmed)."""
    try:
        if obj.get("v") != STATE_VERSION:
            raise CorruptState(f"v={obj.get('v')!r}: expected {STATE_VERSION}")
        by_name = {r.name: r for r in rules.rules}
        rule_states: dict[str, RuleState] = {}
        for name, rs in obj["rules"].items():
            rule = by_name.get(name)
            if rule is None:
                continue  # the rule was removed from the rules file: its state means nothing now
            n_levels = len(rule.levels)
            since = [_opt_int(s) for s in rs["since"]][:n_levels]
            since += [None] * (n_levels - len(since))
            window = tuple((int(ts), min(int(rank), n_levels)) for ts, rank in rs["window"])[-rule.debounce.of_last :]
            alert = _alert_from_json(rs["alert"])
            if alert is not None and alert.level > n_levels:
                alert = replace(alert, level=n_levels)
            rule_states[name] = RuleState(
                window=window,
                since=tuple(since),
                alert=alert,
                cooldown_until_ms=_opt_int(rs["cooldown_until_ms"]),
                cooldown_rank=int(rs["cooldown_rank"]),
            )
        return PatientState(
            last_ts_ms=int(obj["last_ts_ms"]),
            rules=rule_states,
            gap=_alert_from_json(obj["gap"]),
            snoozed_until_ms=_opt_int(obj["snoozed_until_ms"]),
        )
    except CorruptState:
        raise
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise CorruptState(f"not an alert state: {exc!r}") from None


def encode(state: PatientState) -> bytes:
    """The changelog value, compact JSON written by orjson (several times faster than `json.dumps`).
    A state holds integers, strings, booleans and nulls only: no float, so no NaN that orjson would
    write as null where the standard encoder refuses it. `decode` reads either encoder's output."""
    return orjson.dumps(to_json(state))


def decode(value: bytes, rules: Rules) -> PatientState:
    try:
        obj = json.loads(value)
    except (ValueError, UnicodeDecodeError) as exc:
        raise CorruptState(f"not JSON: {exc}") from None
    return from_json(obj, rules)
