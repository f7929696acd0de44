"""Standard Kafka client properties (security settings) reach each client in its own terms."""

from __future__ import annotations

import pytest

from runtime.config import ConfigError, KafkaConfig, load
from runtime.kafka.client import connect
from runtime.kafka.client import confluent, kafka_python

SCRAM_TLS = {
    "security.protocol": "SASL_SSL",
    "ssl.ca.location": "/etc/wardwatch/ca.pem",
    "ssl.endpoint.identification.algorithm": "https",
    "sasl.mechanism": "SCRAM-SHA-512",
    "sasl.username": "scorer",
    "sasl.password": "s3cret-value",
}


def test_kafka_python_gets_its_keyword_names() -> None:
    assert kafka_python.translate_properties(SCRAM_TLS) == {
        "security_protocol": "SASL_SSL",
        "ssl_cafile": "/etc/wardwatch/ca.pem",
        "ssl_check_hostname": True,
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "scorer",
        "sasl_plain_password": "s3cret-value",
    }
    assert kafka_python.translate_properties({"ssl.endpoint.identification.algorithm": "none"}) == {"ssl_check_hostname": False}


def test_an_unknown_property_names_itself_and_never_its_value() -> None:
    with pytest.raises(ValueError, match="sasl.oauthbearer.config") as failure:
        kafka_python.translate_properties({"sasl.oauthbearer.config": "s3cret-value"})
    assert "s3cret-value" not in str(failure.value)


def test_confluent_takes_the_standard_names_as_they_are() -> None:
    assert confluent.translate_properties(SCRAM_TLS) == SCRAM_TLS
    assert confluent.translate_properties(None) == {}


def test_the_client_setting_chooses_the_implementation() -> None:
    assert load(KafkaConfig, environ={}).kafka_client == "kafka-python"
    assert load(KafkaConfig, environ={"WARDWATCH_KAFKA_CLIENT": "confluent"}).kafka_client == "confluent"
    with pytest.raises(ConfigError, match="WARDWATCH_KAFKA_CLIENT='rdkafka': expected one of kafka-python, confluent"):
        load(KafkaConfig, environ={"WARDWATCH_KAFKA_CLIENT": "rdkafka"})
    assert connect("127.0.0.1:9092", "confluent", {}).name == "confluent"
    assert connect("127.0.0.1:9092", "kafka-python", {}).name == "kafka-python"
    with pytest.raises(ValueError, match="expected one of kafka-python, confluent"):
        connect("127.0.0.1:9092", "rdkafka", {})


def test_a_client_without_properties_gets_the_process_security_settings(tmp_path, monkeypatch) -> None:  # noqa: ANN001
    from runtime.kafka import security

    password = tmp_path / "password"
    password.write_text("s3cret-value\n")
    monkeypatch.setenv("WARDWATCH_SASL_USERNAME", "scorer")
    monkeypatch.setenv("WARDWATCH_KAFKA_PASSWORD_FILE", str(password))
    monkeypatch.setenv("WARDWATCH_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.delenv("WARDWATCH_SSL_CA_LOCATION", raising=False)
    security.install(None)
    expected = {"security.protocol": "SASL_SSL", "ssl.endpoint.identification.algorithm": "https",
                "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": "scorer", "sasl.password": "s3cret-value"}
    assert connect("127.0.0.1:9092", "confluent")._common.items() >= expected.items()  # type: ignore[attr-defined]
    assert connect("127.0.0.1:9092", "kafka-python")._common.items() >= {  # type: ignore[attr-defined]
        "security_protocol": "SASL_SSL", "sasl_plain_username": "scorer", "sasl_plain_password": "s3cret-value",
        "ssl_check_hostname": True,
    }.items()
    # Secure by default: no user means no client, with the setting to fix named.
    monkeypatch.delenv("WARDWATCH_SASL_USERNAME")
    with pytest.raises(ConfigError, match="WARDWATCH_SASL_USERNAME is required"):
        connect("127.0.0.1:9092", "confluent")
