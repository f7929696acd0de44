"""Print a short key for the Python environment: a hash of pyproject.toml's dependency lists.

The virtual environment is cached outside the clone under this key, so CI reuses it until
the dependencies change.
"""

import hashlib
import json
import sys
import tomllib

with open(sys.argv[1] if len(sys.argv) > 1 else "pyproject.toml", "rb") as f:
    project = tomllib.load(f)["project"]
wanted = [sys.version_info[:2], project["dependencies"], project.get("optional-dependencies", {})]
print(hashlib.sha256(json.dumps(wanted, sort_keys=True).encode()).hexdigest()[:16])
