"""The scorer's equivalence contract, written once for every test that compares outputs.

Model risk is a float computed by a batched model step. A batch of 1 and a batch of 150 may take
different BLAS kernels, and another CPU or inference runtime may sum in another order, so the
same reading can score 0.407119 on one path and 0.407120 on another. The contract is therefore:

- risk is equal within `RISK_ABS_TOLERANCE` (absolute) across batch shapes, restarts, processes,
  CPUs and model runtimes;
- an explanation's contributions and its risk trend are differences of risks rounded to
  `CONTRIBUTION_DECIMALS` places, so two runs may round them one unit apart in the last place
  (0.1747 and 0.1748): they are equal within `EXPLANATION_ABS_TOLERANCE`;
- everything else is exact: which records exist, their keys, their count (no duplicates, no
  losses), NEWS2 and its parameter scores, and alert ids.

docs/guarantees.md states the same contract for users.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping

from inference.explain import CONTRIBUTION_DECIMALS

RISK_ABS_TOLERANCE = 1e-5
EXPLANATION_ABS_TOLERANCE = 10.0**-CONTRIBUTION_DECIMALS + RISK_ABS_TOLERANCE


def assert_same_risks(got: Mapping[Hashable, float], expected: Mapping[Hashable, float]) -> None:
    """The same keys exactly, and each risk within the tolerance."""
    missing = set(expected) - set(got)
    extra = set(got) - set(expected)
    assert not missing and not extra, f"{len(missing)} risk records missing, {len(extra)} unexpected"
    far = {k: (got[k], expected[k]) for k in expected if abs(got[k] - expected[k]) > RISK_ABS_TOLERANCE}
    assert not far, f"{len(far)} risks differ by more than {RISK_ABS_TOLERANCE}: {dict(list(far.items())[:5])}"
