"""Named client tokens (one per device cloud), rotated without a restart, and per-token rate limits.

Sources, merged: the `--tokens-file` (one `name:token` per line, `#` comments), the
`WARDWATCH_TOKENS` variable (`name:token` pairs separated by commas or newlines) and
`WARDWATCH_TOKEN` (one token, named `default`). The file is re-read when it changes (checked at
most once a second, on a request): adding a line issues a token, deleting it revokes one, so a
token is rotated by adding the new one, moving the client over, then deleting the old. A file
that does not parse after a change is ignored with one warning and the last good set stays.

Tokens are held only as SHA-256 digests, looked up by digest: a lookup's time does not depend
on how much of a guessed token was right. The name — never the token — goes into logs,
metrics and a header of every record written.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Final

log = logging.getLogger(__name__)

MIN_TOKEN_LENGTH: Final = 16
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
CHECK_INTERVAL_S: Final = 1.0


class TokenError(ValueError):
    """A token source that does not parse: one line naming where and what."""


def parse(text: str, where: str, *, separators: str = "\n") -> dict[str, str]:
    """`name:token` entries -> {digest: name}; raises TokenError naming the bad line."""
    entries: dict[str, str] = {}
    names: set[str] = set()
    for number, raw in enumerate(re.split(f"[{re.escape(separators)}]", text), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, token = line.partition(":")
        name, token = name.strip(), token.strip()
        if not sep or not NAME.match(name):
            raise TokenError(f"{where} entry {number}: expected 'name:token' with a name of letters, digits, '.', '_' or '-'")
        if len(token) < MIN_TOKEN_LENGTH or not token.isprintable() or " " in token:
            raise TokenError(f"{where} entry {number} ({name}): expected a token of at least {MIN_TOKEN_LENGTH} printable characters without spaces")
        if name in names:
            raise TokenError(f"{where} entry {number}: the name {name!r} appears twice")
        names.add(name)
        entries[digest(token)] = name
    return entries


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class TokenStore:
    """The tokens in force; `name_of(token)` answers which client it is (or None)."""

    def __init__(self, file: str = "", env_tokens: str = "", env_token: str = "") -> None:
        self.file = file
        self._fixed: dict[str, str] = {}
        if env_tokens:
            self._fixed |= parse(env_tokens, "WARDWATCH_TOKENS", separators=",\n")
        if env_token:
            self._fixed |= parse(f"default:{env_token}", "WARDWATCH_TOKEN")
        self._lock = threading.Lock()
        self._stamp: tuple[int, int, int] | None = None
        self._checked = 0.0
        self._from_file: dict[str, str] = {}
        if file:
            self._from_file = parse(self._read(), file)  # at start a bad file is a config error
            self._stamp = self._file_stamp()
        if not self._fixed and not self._from_file and file:
            log.warning("token file holds no tokens: every request is refused until one is added path=%s", file)

    def _read(self) -> str:
        with open(self.file, encoding="utf-8") as handle:
            return handle.read()

    def _file_stamp(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self.file)
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def refresh(self, now: float | None = None) -> None:
        """Re-read the token file if it changed (at most once per CHECK_INTERVAL_S)."""
        if not self.file:
            return
        now = time.monotonic() if now is None else now
        with self._lock:
            if now - self._checked < CHECK_INTERVAL_S:
                return
            self._checked = now
            stamp = self._file_stamp()
            if stamp == self._stamp:
                return
            try:
                fresh = parse(self._read(), self.file)
            except (OSError, TokenError) as exc:
                log.warning("token file not reloaded, the previous tokens stay in force: %s", exc)
                self._stamp = stamp
                return
            self._stamp = stamp
            added = sorted(set(fresh.values()) - set(self._from_file.values()))
            removed = sorted(set(self._from_file.values()) - set(fresh.values()))
            self._from_file = fresh
        log.info("token file reloaded clients=%d added=%s removed=%s", len(fresh), ",".join(added) or "-", ",".join(removed) or "-")

    def name_of(self, token: str) -> str | None:
        self.refresh()
        key = digest(token)
        return self._from_file.get(key) or self._fixed.get(key)

    def names(self) -> list[str]:
        return sorted(set(self._from_file.values()) | set(self._fixed.values()))


@dataclass
class _Bucket:
    tokens: float
    stamp: float


@dataclass
class RateLimiter:
    """A token bucket per client name: `rate` requests/s on average, `burst` at once.
    `take(name)` is 0.0 when the request may go, else the seconds until it may (Retry-After)."""

    rate: float
    burst: int
    _buckets: dict[str, _Bucket] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def take(self, name: str, now: float | None = None) -> float:
        if self.rate <= 0:
            return 0.0
        now = time.monotonic() if now is None else now
        with self._lock:
            bucket = self._buckets.get(name)
            if bucket is None:
                bucket = self._buckets[name] = _Bucket(float(self.burst), now)
            bucket.tokens = min(float(self.burst), bucket.tokens + (now - bucket.stamp) * self.rate)
            bucket.stamp = now
            if bucket.tokens >= 1.0:
                bucket.tokens -= 1.0
                return 0.0
            return (1.0 - bucket.tokens) / self.rate


def retry_after(seconds: float) -> str:
    """Retry-After is whole seconds: round up, at least 1."""
    return str(max(1, math.ceil(seconds)))
