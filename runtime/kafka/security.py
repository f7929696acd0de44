"""Kafka client security: TLS and SASL settings as the standard Kafka client properties.

One source: `KafkaSecurity.properties()` gives the property names every Kafka client documents
(`security.protocol`, `ssl.ca.location`, `sasl.mechanism`, `sasl.username`, `sasl.password`);
`runtime.kafka.client.connect` hands them to every client it makes (each implementation
translates them, see its `translate_properties`). The settings follow the project convention
(field = key = `--flag` = `WARDWATCH_FLAG`, see `runtime.config.KafkaSecurityConfig`), except
the password: it is never a flag (a command line is visible to every local user) and comes from
the file named by `--kafka-password-file` / `WARDWATCH_KAFKA_PASSWORD_FILE`, or from
`WARDWATCH_KAFKA_PASSWORD`.

A process has one set of settings: the CLI installs the ones of the command it runs
(`install`); until then `current()` reads them from the environment, so a library caller
(tests, benchmarks) configures its clients through the same variables.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from runtime.config import ConfigError, KafkaSecurityConfig, load

PASSWORD_ENV = "WARDWATCH_KAFKA_PASSWORD"
PROTOCOLS = ("SASL_SSL", "SSL", "SASL_PLAINTEXT", "PLAINTEXT")
MECHANISMS = ("SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN")


@dataclass(frozen=True)
class KafkaSecurity:
    """Resolved client security: protocol, CA, SASL user and password (kept out of repr)."""

    security_protocol: str = "SASL_SSL"
    ssl_ca_location: str = ""
    sasl_mechanism: str = "SCRAM-SHA-512"
    sasl_username: str = ""
    sasl_password: str = field(default="", repr=False)

    @property
    def uses_sasl(self) -> bool:
        return self.security_protocol.startswith("SASL_")

    @property
    def uses_tls(self) -> bool:
        return self.security_protocol in ("SSL", "SASL_SSL")

    def properties(self) -> dict[str, str]:
        """The standard Kafka client properties; raises ConfigError if a SASL user or password is missing."""
        if self.security_protocol not in PROTOCOLS:
            raise ConfigError(f"--security-protocol={self.security_protocol!r}: expected one of {', '.join(PROTOCOLS)}")
        props = {"security.protocol": self.security_protocol}
        if self.uses_tls:
            if self.ssl_ca_location:
                props["ssl.ca.location"] = self.ssl_ca_location
            # Check the broker's name against its certificate (both clients' default; say it).
            props["ssl.endpoint.identification.algorithm"] = "https"
        if self.uses_sasl:
            if not self.sasl_username:
                raise ConfigError(
                    f"--sasl-username / WARDWATCH_SASL_USERNAME is required with --security-protocol={self.security_protocol} "
                    "(the service's Kafka principal)"
                )
            if not self.sasl_password:
                raise ConfigError(
                    f"no Kafka password for user {self.sasl_username!r}: set --kafka-password-file / "
                    f"WARDWATCH_KAFKA_PASSWORD_FILE or {PASSWORD_ENV}"
                )
            props.update({
                "sasl.mechanism": self.sasl_mechanism,
                "sasl.username": self.sasl_username,
                "sasl.password": self.sasl_password,
            })
        return props


def from_config(config: KafkaSecurityConfig, environ: Mapping[str, str] | None = None) -> KafkaSecurity:
    """Resolve a config's settings, reading the password from its file or the environment."""
    environ = os.environ if environ is None else environ
    password = ""
    if config.kafka_password_file:
        try:
            with open(config.kafka_password_file, encoding="utf-8") as handle:
                password = handle.read().strip()
        except OSError as exc:
            raise ConfigError(f"--kafka-password-file={config.kafka_password_file!r}: cannot read it ({exc.strerror})") from None
        if not password:
            raise ConfigError(f"--kafka-password-file={config.kafka_password_file!r}: the file is empty")
    else:
        password = environ.get(PASSWORD_ENV, "")
    if config.ssl_ca_location and not os.path.isfile(config.ssl_ca_location):
        raise ConfigError(f"--ssl-ca-location={config.ssl_ca_location!r}: no such file")
    return KafkaSecurity(
        security_protocol=config.security_protocol,
        ssl_ca_location=config.ssl_ca_location,
        sasl_mechanism=config.sasl_mechanism,
        sasl_username=config.sasl_username,
        sasl_password=password,
    )


def from_environ(environ: Mapping[str, str] | None = None) -> KafkaSecurity:
    """The settings given by the environment alone (`WARDWATCH_SECURITY_PROTOCOL`, ...)."""
    environ = os.environ if environ is None else environ
    return from_config(load(KafkaSecurityConfig, None, environ), environ)


_installed: KafkaSecurity | None = None


def install(security: KafkaSecurity | None) -> None:
    """Make `security` the settings of every client this process builds (None: back to the environment)."""
    global _installed
    _installed = security


def current() -> KafkaSecurity:
    """The process's settings: the installed ones, else those of the environment."""
    return _installed if _installed is not None else from_environ()


def current_properties() -> dict[str, str]:
    """`current().properties()`: the standard properties `runtime.kafka.client.connect` gives
    every client it makes unless told otherwise."""
    return current().properties()

