"""A self-signed certificate for 127.0.0.1/localhost (openssl CLI), for HTTPS tests."""

from __future__ import annotations

import ssl
import subprocess
from pathlib import Path

from tests.support.tools import require_tool


def self_signed(directory: Path) -> tuple[Path, Path]:
    """(certificate, key) PEM files valid for 127.0.0.1 and localhost."""
    openssl = require_tool("openssl", "openssl")
    cert, key = directory / "server.crt", directory / "server.key"
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    return cert, key


def client_context(cert: Path) -> ssl.SSLContext:
    """A client context that trusts exactly `cert` (and verifies the host name)."""
    return ssl.create_default_context(cafile=str(cert))
