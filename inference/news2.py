"""NEWS2 (Royal College of Physicians, 2017): the one implementation in wardwatch.

Values are rounded to the chart's resolution first (whole numbers; 0.1 °C for temperature),
then banded with cumulative upper-inclusive comparisons, so no float falls between bands.
Absent parameters score 0 and are reported in `missing`.
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass
from typing import Final

from ingest import Reading

PARAMETERS: Final = ("rr", "spo2", "on_oxygen", "sbp", "hr", "acvpu", "temp")

# Carry-forward: a parameter missing from a reading is scored from its last observed value
# for up to 4 hours of event time, then counts as absent. Four hours is the ward's usual
# observation round (docs/model.md): an older value is not a current observation any more.
# The scorer's default (--news2-max-age-ms), training and the benchmark peer all use this.
NEWS2_MAX_AGE_MS: Final = 4 * 3_600_000


@dataclass(frozen=True, slots=True)
class News2:
    total: int
    single3: bool  # a 3 in any one parameter ("red score")
    scores: dict[str, int]
    missing: tuple[str, ...]

    @property
    def band(self) -> str:
        """RCP clinical risk: low (0-4), low-medium (a single 3), medium (5-6), high (>=7)."""
        if self.total >= 7:
            return "high"
        if self.total >= 5:
            return "medium"
        if self.single3:
            return "low-medium"
        return "low"


# The chart (RCP 2017 Chart 1), written once: (upper-inclusive edges, score per band). A value,
# rounded to chart resolution, scores `scores[i]` for the first edge >= it; past the last edge,
# the last score. `inference.news2_batch` bands whole arrays with the same tables.
RR_BANDS: Final = ((8, 11, 20, 24), (3, 1, 0, 2, 3))
SPO2_SCALE1_BANDS: Final = ((91, 93, 95), (3, 2, 1, 0))
# Scale 2 on oxygen; on air every value from 88 up scores 0.
SPO2_SCALE2_BANDS: Final = ((83, 85, 87, 92, 94, 96), (3, 2, 1, 0, 1, 2, 3))
SBP_BANDS: Final = ((90, 100, 110, 219), (3, 2, 1, 0, 3))
HR_BANDS: Final = ((40, 50, 90, 110, 130), (3, 1, 0, 1, 2, 3))
TEMP_TENTHS_BANDS: Final = ((350, 360, 380, 390), (3, 1, 0, 1, 2))  # in tenths of a degree


def _round(value: float) -> int:
    # Half away from zero, as a person reading the chart would (Python's round() is banker's).
    return int(value + 0.5) if value >= 0 else -int(-value + 0.5)


def _band(value: int, bands: tuple[tuple[int, ...], tuple[int, ...]]) -> int:
    edges, scores = bands
    return scores[bisect_left(edges, value)]


def score_rr(rr: float) -> int:
    return _band(_round(rr), RR_BANDS)


def score_spo2(spo2: float, *, scale: int = 1, on_oxygen: bool = False) -> int:
    v = _round(spo2)
    if scale == 2:
        return _band(v, SPO2_SCALE2_BANDS) if on_oxygen or v < 88 else 0
    return _band(v, SPO2_SCALE1_BANDS)


def score_oxygen(on_oxygen: bool) -> int:
    return 2 if on_oxygen else 0


def score_sbp(sbp: float) -> int:
    return _band(_round(sbp), SBP_BANDS)


def score_hr(hr: float) -> int:
    return _band(_round(hr), HR_BANDS)


def score_acvpu(acvpu: str) -> int:
    return 0 if acvpu == "A" else 3


def score_temp(temp: float) -> int:
    return _band(_round(temp * 10), TEMP_TENTHS_BANDS)


def news2(
    *,
    rr: float | None = None,
    spo2: float | None = None,
    on_oxygen: bool | None = None,
    sbp: float | None = None,
    hr: float | None = None,
    acvpu: str | None = None,
    temp: float | None = None,
    spo2_scale: int = 1,
) -> News2:
    """Score one set of observations; None means not observed (scores 0, listed in `missing`)."""
    scores: dict[str, int] = {}
    missing: list[str] = []
    oxygen = bool(on_oxygen)
    for name, value, fn in (
        ("rr", rr, score_rr),
        ("sbp", sbp, score_sbp),
        ("hr", hr, score_hr),
        ("temp", temp, score_temp),
    ):
        if value is None:
            missing.append(name)
        else:
            scores[name] = fn(value)
    if spo2 is None:
        missing.append("spo2")
    else:
        scores["spo2"] = score_spo2(spo2, scale=spo2_scale, on_oxygen=oxygen)
    if on_oxygen is None:
        missing.append("on_oxygen")
    else:
        scores["on_oxygen"] = score_oxygen(on_oxygen)
    if acvpu is None:
        missing.append("acvpu")
    else:
        scores["acvpu"] = score_acvpu(acvpu)
    return News2(total=sum(scores.values()), single3=any(s == 3 for s in scores.values()), scores=scores, missing=tuple(missing))


def news2_of(reading: Reading) -> News2:
    """NEWS2 of one reading's own values (absent ones missing)."""
    return news2(
        rr=reading.rr, spo2=reading.spo2, on_oxygen=reading.on_oxygen, sbp=reading.sbp,
        hr=reading.hr, acvpu=reading.acvpu, temp=reading.temp, spo2_scale=reading.spo2_scale,
    )
