"""Alert rules from a YAML file: the thresholds live in config, never in code (docs/alerts.md).

`load_rules(path)` reads and validates a rules file (the shipped `default_rules.yaml` when no
path is given). A bad file raises `RulesError` with one line naming the key, the value and
what was expected.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final, NoReturn

import yaml

from runtime.config import ConfigError

DEFAULT_RULES_PATH: Final = Path(__file__).with_name("default_rules.yaml")
# NEWS2 alone, as RCP 2017 triggers it: the baseline the default is compared with.
NEWS2_RULES_PATH: Final = Path(__file__).with_name("news2_rules.yaml")
# The same pair for hourly charting (ICU flowsheets, imported stays): debounce in readings, not minutes.
HOURLY_RULES_PATH: Final = Path(__file__).with_name("hourly_rules.yaml")
HOURLY_NEWS2_RULES_PATH: Final = Path(__file__).with_name("hourly_news2_rules.yaml")

# Clinical severities, lowest first (RCP 2017 response bands). The order is the contract for
# escalation: a new event is emitted only when an alert moves up this list.
SEVERITIES: Final = ("low_medium", "urgent", "emergency")
TECHNICAL: Final = "technical"
DATA_GAP_RULE: Final = "data_gap"

# The signal each rule watches on a `risk` record, with the range its thresholds must lie in.
SIGNALS: Final = {"risk": (0.0, 1.0), "news2": (0.0, 20.0), "news2_single3": (0.0, 1.0)}


class RulesError(ConfigError):
    """A rules file that cannot be used; the message names the key and the value."""


@dataclass(frozen=True, slots=True)
class Level:
    """One severity of a rule: raise at or above `raise_at`, step down below `clear_below`."""

    severity: str
    raise_at: float
    clear_below: float

    @property
    def rank(self) -> int:
        return SEVERITIES.index(self.severity) + 1


@dataclass(frozen=True, slots=True)
class Debounce:
    """Raise only when `readings` of the last `of_last` meet the level for `min_duration_ms`."""

    readings: int = 1
    of_last: int = 1
    min_duration_ms: int = 0


@dataclass(frozen=True, slots=True)
class Rule:
    """A clinical rule: one signal, levels in ascending severity, debounce and cool-down."""

    name: str
    signal: str
    levels: tuple[Level, ...]
    debounce: Debounce = Debounce()
    cooldown_ms: int = 0


@dataclass(frozen=True, slots=True)
class DataGapRule:
    """Technical alert when a patient's data stops while the partition's stream time moves on."""

    after_ms: int = 900_000
    forget_after_ms: int = 86_400_000
    name: str = DATA_GAP_RULE
    severity: str = TECHNICAL


@dataclass(frozen=True, slots=True)
class Rules:
    rules: tuple[Rule, ...]
    data_gap: DataGapRule = DataGapRule()
    source: str = "<code>"

    def only(self, *signals: str) -> Rules:
        """The same rules restricted to the given signals (for NEWS2-only / model-only comparisons)."""
        return replace(self, rules=tuple(r for r in self.rules if r.signal in signals))

    def rule(self, name: str) -> Rule:
        for r in self.rules:
            if r.name == name:
                return r
        raise KeyError(name)


def load_rules(path: str | Path | None = None) -> Rules:
    """Read and validate a rules file; the shipped default when `path` is None."""
    path = Path(path) if path is not None else DEFAULT_RULES_PATH
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RulesError(f"rules file {str(path)!r}: cannot read it ({exc.strerror or exc})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise RulesError(f"rules file {str(path)!r}: not valid YAML{where}") from None
    return parse_rules(data, source=str(path))


def parse_rules(data: Any, source: str = "<rules>") -> Rules:
    """Validate an already-parsed rules document (a mapping) into `Rules`."""
    p = _Parser(source)
    doc = p.mapping(data, "", {"version", "defaults", "rules", "data_gap"})
    version = doc.get("version", 1)
    if version != 1:
        p.fail("version", version, "1")
    defaults = p.mapping(doc.get("defaults", {}), "defaults", {"debounce", "cooldown_s"})
    default_debounce = p.debounce(defaults.get("debounce", {}), "defaults.debounce", Debounce())
    default_cooldown = p.seconds(defaults.get("cooldown_s", 0), "defaults.cooldown_s")
    rules_doc = p.mapping(doc.get("rules", {}), "rules", None)
    rules = tuple(
        p.rule(name, body, default_debounce, default_cooldown) for name, body in rules_doc.items()
    )
    # Optional in the file, never off: forgetting silent patients is what bounds the state.
    g = p.mapping(doc.get("data_gap", {}), "data_gap", {"after_s", "forget_after_s"})
    after = p.seconds(g.get("after_s", 900), "data_gap.after_s", positive=True)
    forget = p.seconds(g.get("forget_after_s", 86_400), "data_gap.forget_after_s", positive=True)
    if forget <= after:
        p.fail("data_gap.forget_after_s", g.get("forget_after_s"), f"more than after_s ({after / 1000:g})")
    return Rules(rules=rules, data_gap=DataGapRule(after_ms=after, forget_after_ms=forget), source=source)


class _Parser:
    """Validation helpers that all fail with one line: source, key path, value, expectation."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, key: str, value: Any, expected: str) -> NoReturn:
        raise RulesError(f"rules file {self.source!r}: {key}={value!r}: expected {expected}")

    def mapping(self, value: Any, key: str, allowed: set[str] | None) -> dict[str, Any]:
        if not isinstance(value, dict):
            self.fail(key or "<document>", value, "a mapping")
        for k in value:
            if not isinstance(k, str):
                self.fail(f"{key}.{k}" if key else str(k), k, "a string key")
            if allowed is not None and k not in allowed:
                self.fail(f"{key}.{k}" if key else k, value[k], f"one of the keys {', '.join(sorted(allowed))}")
        return value

    def number(self, value: Any, key: str, low: float, high: float) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            self.fail(key, value, f"a number in {low:g}-{high:g}")
        if not low <= value <= high:
            self.fail(key, value, f"a number in {low:g}-{high:g}")
        return float(value)

    def count(self, value: Any, key: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 1000:
            self.fail(key, value, "an integer in 1-1000")
        return value

    def seconds(self, value: Any, key: str, positive: bool = False) -> int:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            self.fail(key, value, "a number of seconds")
        if value < 0 or (positive and value == 0):
            self.fail(key, value, "more than 0 seconds" if positive else "0 or more seconds")
        return int(round(value * 1000))

    def debounce(self, value: Any, key: str, base: Debounce) -> Debounce:
        d = self.mapping(value, key, {"readings", "of_last", "min_duration_s"})
        n = self.count(d["readings"], f"{key}.readings") if "readings" in d else base.readings
        m = self.count(d["of_last"], f"{key}.of_last") if "of_last" in d else base.of_last
        if n > m:
            self.fail(f"{key}.readings", n, f"at most of_last ({m})")
        duration = self.seconds(d["min_duration_s"], f"{key}.min_duration_s") if "min_duration_s" in d else base.min_duration_ms
        return Debounce(readings=n, of_last=m, min_duration_ms=duration)

    def rule(self, name: str, body: Any, debounce: Debounce, cooldown_ms: int) -> Rule:
        key = f"rules.{name}"
        if not name.replace("_", "").isalnum() or name == DATA_GAP_RULE:
            self.fail(key, name, f"a name of letters, digits and '_' other than {DATA_GAP_RULE!r}")
        r = self.mapping(body, key, {"signal", "levels", "debounce", "cooldown_s"})
        signal = r.get("signal")
        if not isinstance(signal, str) or signal not in SIGNALS:
            self.fail(f"{key}.signal", signal, f"one of {', '.join(SIGNALS)}")
        low, high = SIGNALS[signal]
        levels_doc = self.mapping(r.get("levels"), f"{key}.levels", set(SEVERITIES))
        if not levels_doc:
            self.fail(f"{key}.levels", levels_doc, f"at least one of {', '.join(SEVERITIES)}")
        levels: list[Level] = []
        for severity in SEVERITIES:  # file order does not matter; severity order does
            if severity not in levels_doc:
                continue
            lkey = f"{key}.levels.{severity}"
            lv = self.mapping(levels_doc[severity], lkey, {"raise_at", "clear_below"})
            for needed in ("raise_at", "clear_below"):
                if needed not in lv:
                    self.fail(f"{lkey}.{needed}", None, f"a number in {low:g}-{high:g}")
            raise_at = self.number(lv["raise_at"], f"{lkey}.raise_at", low, high)
            clear_below = self.number(lv["clear_below"], f"{lkey}.clear_below", low, high)
            if clear_below > raise_at:
                self.fail(f"{lkey}.clear_below", lv["clear_below"], f"at most raise_at ({raise_at:g}): hysteresis clears lower")
            if levels and raise_at <= levels[-1].raise_at:
                self.fail(f"{lkey}.raise_at", lv["raise_at"], f"more than {levels[-1].severity}'s raise_at ({levels[-1].raise_at:g})")
            if levels and clear_below < levels[-1].clear_below:
                self.fail(f"{lkey}.clear_below", lv["clear_below"], f"at least {levels[-1].severity}'s clear_below ({levels[-1].clear_below:g})")
            levels.append(Level(severity, raise_at, clear_below))
        rule_debounce = self.debounce(r["debounce"], f"{key}.debounce", debounce) if "debounce" in r else debounce
        cooldown = self.seconds(r["cooldown_s"], f"{key}.cooldown_s") if "cooldown_s" in r else cooldown_ms
        return Rule(name=name, signal=signal, levels=tuple(levels), debounce=rule_debounce, cooldown_ms=cooldown)
