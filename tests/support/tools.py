"""System tools some tests need (Debian packages that deploy/scripts/system-deps.sh installs)."""

from __future__ import annotations

import os
import shutil

import pytest


def require_tool(name: str, package: str, path: str | None = None) -> str:
    """The tool's path; without it the test fails under CI=true and is skipped elsewhere."""
    found = shutil.which(name) or (path if path and os.path.exists(path) else None)
    if found is None:
        message = f"{name} not found: install Debian's `{package}` package (deploy/scripts/system-deps.sh does)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return found
