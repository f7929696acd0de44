"""The three floors (docs/architecture.md): imports point down, and no two stages import each other."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STAGES = ("sim", "ingest", "inference", "alerts")
PACKAGES = ("runtime", *STAGES, "wardwatch", "bench", "tests")


def imported_packages(package: str) -> dict[str, set[str]]:
    """Top-level packages of this repository each module of `package` imports (function-level imports too)."""
    found: dict[str, set[str]] = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        names: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
        found[str(path.relative_to(ROOT))] = {n for n in names if n in PACKAGES and n != package}
    return found


def test_runtime_imports_no_stage_and_no_application() -> None:
    offending = {m: sorted(i) for m, i in imported_packages("runtime").items() if i}
    assert offending == {}


def test_stages_never_import_the_application_or_the_benchmarks() -> None:
    for stage in STAGES:
        offending = {m: sorted(i & {"wardwatch", "bench", "tests"}) for m, i in imported_packages(stage).items()}
        assert {m: i for m, i in offending.items() if i} == {}


def test_no_two_stages_import_each_other() -> None:
    edges = {stage: set().union(*imported_packages(stage).values()) & set(STAGES) for stage in STAGES}
    # Any cycle in the stage graph, not only a direct pair.
    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        return any(n == goal or (n not in seen and reaches(n, goal, seen | {n})) for n in edges[start])

    cycles = sorted(stage for stage in STAGES if reaches(stage, stage, {stage}))
    assert cycles == [], f"stage imports form a cycle through {cycles}: {edges}"
