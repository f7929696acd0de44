"""Print a short key for a Python environment: a hash of its lock file and the interpreter.

The virtual environments are cached outside the clone under this key
(`venv-serve-KEY` from requirements/serve.txt, `venv-all-KEY` from requirements/all.txt), so
a run reuses an environment until its pinned versions change. Usage: env-key.py LOCKFILE...
"""

import hashlib
import platform
import sys

digest = hashlib.sha256()
# A venv is bound to its interpreter's minor version and machine; the lock files pin the rest.
digest.update(f"{sys.version_info[0]}.{sys.version_info[1]} {platform.machine()}\n".encode())
for path in sys.argv[1:] or ["requirements/all.txt"]:
    with open(path, "rb") as f:
        digest.update(f.read())
print(digest.hexdigest()[:16])
