"""The gateway's configuration: one frozen dataclass (field = key = `--flag` = `WARDWATCH_FLAG`).

Secrets never come from the command line: client tokens are read from `--tokens-file` (a path)
or the `WARDWATCH_TOKENS` / `WARDWATCH_TOKEN` environment variables, which have no flag.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Final

from ingest.validate import DEFAULT_MAX_AGE_MS, DEFAULT_MAX_FUTURE_MS, Limits, limits
from runtime.config import KafkaConfig, require, setting

STAGE: Final = "gateway"


def env_only(default: str, help_text: str) -> str:
    """A secret setting: read from its environment variable only (no flag, never in a repr)."""
    return field(default=default, repr=False, metadata={"help": "", "env_help": help_text, "env": None, "choices": None})


@dataclass(frozen=True)
class GatewayConfig(KafkaConfig):
    host: str = setting("0.0.0.0", "address the HTTP gateway listens on")
    port: int = setting(8088, "port the HTTP gateway listens on (0 = any free port)")
    tokens_file: str = setting("", "file of client tokens, one 'name:token' per line (re-read when it changes: rotation without restart)")
    # Env only (WARDWATCH_TOKENS, WARDWATCH_TOKEN): 'name:token' pairs, comma or newline separated; a bare token is named 'default'.
    tokens: str = env_only("", "client tokens as 'name:token' pairs")
    token: str = env_only("", "one client token, named 'default'")
    auth: bool = setting(True, "require a client token (--no-auth: accept anyone, for a local demo only)")
    rate_limit: float = setting(50.0, "requests per second each client token may make on average (past it: 429); 0 = no limit")
    rate_burst: int = setting(100, "requests a client token may make at once before the rate limit applies")
    max_request_bytes: int = setting(1024 * 1024, "largest request body accepted, bytes (larger: 413)")
    read_timeout_s: float = setting(10.0, "longest time a client may take to send a request's headers, and again its body (then the connection is dropped / 408)")
    max_connections: int = setting(4096, "most connections served at once (past it: 503)")
    tls_certfile: str = setting("", "PEM certificate (chain) to serve HTTPS with; empty = plain HTTP")
    tls_keyfile: str = setting("", "PEM private key of --tls-certfile")
    metrics_port: int = setting(9105, "port for Prometheus /metrics (0 = any free port, -1 = off)")
    metrics_host: str = setting("0.0.0.0", "address /metrics listens on")
    max_future_ms: int = setting(DEFAULT_MAX_FUTURE_MS, "reject readings stamped further than this ahead of the gateway clock, ms (0 = no check)")
    max_age_ms: int = setting(DEFAULT_MAX_AGE_MS, "reject readings older than this, ms (0 = no check)")
    kafka_timeout_s: float = setting(10.0, "longest wait for Kafka to acknowledge a request's writes before answering 503, s")

    def __post_init__(self) -> None:
        super().__post_init__()
        require(0 <= self.port < 65536, f"--port={self.port}: expected 0-65535")
        require(-1 <= self.metrics_port < 65536, f"--metrics-port={self.metrics_port}: expected -1-65535")
        require(1024 <= self.max_request_bytes <= 2**26, f"--max-request-bytes={self.max_request_bytes}: expected 1024-67108864")
        require(0 < self.kafka_timeout_s <= 300, f"--kafka-timeout-s={self.kafka_timeout_s}: expected more than 0 and at most 300")
        require(0.1 <= self.read_timeout_s <= 300, f"--read-timeout-s={self.read_timeout_s}: expected 0.1-300")
        require(16 <= self.max_connections <= 1_000_000, f"--max-connections={self.max_connections}: expected 16-1000000")
        require(self.rate_limit >= 0, f"--rate-limit={self.rate_limit}: expected >= 0")
        require(self.rate_burst >= 1, f"--rate-burst={self.rate_burst}: expected >= 1")
        require(self.max_future_ms >= 0, f"--max-future-ms={self.max_future_ms}: expected >= 0")
        require(self.max_age_ms >= 0, f"--max-age-ms={self.max_age_ms}: expected >= 0")
        require(bool(self.tls_certfile) == bool(self.tls_keyfile), "--tls-certfile and --tls-keyfile go together")
        for name in ("tls_certfile", "tls_keyfile"):
            path = getattr(self, name)
            require(not path or os.path.isfile(path), f"--{name.replace('_', '-')}={path!r}: no such file")
        if self.tokens_file:
            require(os.path.isfile(self.tokens_file), f"--tokens-file={self.tokens_file!r}: no such file")
        if self.auth:
            require(bool(self.tokens_file or self.tokens or self.token),
                    "--tokens-file / WARDWATCH_TOKENS / WARDWATCH_TOKEN: client tokens are required "
                    "(or --no-auth to accept unauthenticated requests)")

    def limits(self) -> Limits:
        return limits(self.max_future_ms, self.max_age_ms)
