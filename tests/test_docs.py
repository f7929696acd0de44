"""The design lives in the repository: docs/ and every code reference in it point at files the clone holds."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TEXT_SUFFIXES = {".py", ".md", ".yaml", ".yml", ".json", ".toml", ".js", ".css", ".html", ".txt", ""}
# A reference to a file in the repository: a relative path with a directory and an extension.
PATH = re.compile(r"(?<![\w./-])((?:[\w.-]+/)+[\w.-]+\.(?:py|md|yaml|yml|json|toml|js|css|png|html|pt))\b")
OUTSIDE = re.compile(r"DESIGN\.md|clinical\.md|kafka-local\.md|STYLE\.md|/work/shared")


def tracked_text_files() -> list[Path]:
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True, text=True, check=True)
    files = [ROOT / line for line in listed.stdout.splitlines() if line]
    return [f for f in files if f.is_file() and f.suffix in TEXT_SUFFIXES and f.stat().st_size < 1_000_000
            and "fixtures" not in f.parts and f.name != Path(__file__).name]


def test_nothing_cites_a_file_outside_the_repository() -> None:
    offending = []
    for path in tracked_text_files():
        for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            if OUTSIDE.search(line):
                offending.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()[:100]}")
    assert offending == []


def test_every_design_page_exists_and_every_file_it_names_is_in_the_repository() -> None:
    pages = {p.name for p in (ROOT / "docs").glob("*.md")}
    assert {"architecture.md", "topics.md", "guarantees.md", "state.md", "model.md", "alerts.md", "walkthrough.md"} <= pages
    missing = []
    for page in sorted((ROOT / "docs").glob("*.md")):
        text = page.read_text(encoding="utf-8")
        for ref in PATH.findall(text):
            if not (ROOT / ref).exists() and not (page.parent / ref).exists():
                missing.append(f"{page.name}: {ref}")
        for link in re.findall(r"\]\(([\w./-]+\.md)(?:#[\w-]*)?\)", text):
            if not (page.parent / link).exists():
                missing.append(f"{page.name}: link {link}")
    assert missing == []


def test_references_to_docs_pages_from_code_and_readme_resolve() -> None:
    missing = []
    for path in tracked_text_files():
        for ref in re.findall(r"docs/([\w-]+\.md)", path.read_text(encoding="utf-8", errors="replace")):
            if not (ROOT / "docs" / ref).exists():
                missing.append(f"{path.relative_to(ROOT)}: docs/{ref}")
    assert missing == []


def test_the_walkthrough_needs_at_most_six_source_files_and_names_them() -> None:
    text = (ROOT / "docs" / "walkthrough.md").read_text(encoding="utf-8")
    listed = re.findall(r"^\d\. `([\w/]+\.py)`", text, flags=re.MULTILINE)
    assert 1 <= len(listed) <= 6
    assert all((ROOT / f).is_file() for f in listed)
    headings = re.findall(r"^## \d\. .* — `([\w/]+\.py)`$", text, flags=re.MULTILINE)
    assert headings == listed  # each step is one of the six, in order
