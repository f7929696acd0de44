"""The ingest service on a real broker: a generated mix of valid and malformed payloads; the
service never crashes and every input record appears exactly once in vitals or vitals.dlq."""

from __future__ import annotations

import json
import time
from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runtime.kafka.client import CLIENTS
from runtime.topics import VITALS, VITALS_DLQ, VITALS_RAW
from tests.support.kafka import Service, create_topics, produce_acked, read_committed, spawn
from tests.test_ingest_properties import json_values, reading_like

pytestmark = pytest.mark.kafka

valid = st.builds(
    lambda p, seq, hr: {"patient_id": f"P{p}", "device_id": f"D{p}", "seq": seq, "ts_ms": int(time.time() * 1000) - 60_000, "hr": hr},
    st.integers(0, 20), st.integers(0, 10_000), st.floats(30, 200, allow_nan=False),
)
payloads = st.lists(
    st.one_of(
        valid.map(lambda o: json.dumps(o).encode()),
        st.binary(max_size=64),
        json_values.map(lambda v: json.dumps(v).encode()),
        reading_like.map(lambda v: json.dumps(v).encode()),
    ),
    min_size=20, max_size=60,
)


@pytest.fixture(scope="module", params=CLIENTS)
def ingest_service(request: pytest.FixtureRequest, kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    """The ingest service on each Kafka client in turn."""
    prefix = f"ingestprop{int(time.time() * 1000) % 10**8}."
    create_topics(kafka_bootstrap, prefix)
    workdir = tmp_path_factory.mktemp("ingest")
    service = spawn("ingest", ["ingest", "--bootstrap-servers", kafka_bootstrap, "--topic-prefix", prefix, "--metrics-port", "-1",
                               "--kafka-client", request.param], workdir)
    yield service, prefix
    service.stop()


def accounted(records: list, wanted: set[tuple[int, int]]) -> Counter:
    return Counter(
        (int(r.headers["source-partition"]), int(r.headers["source-offset"]))
        for r in records
        if (int(r.headers["source-partition"]), int(r.headers["source-offset"])) in wanted
    )


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large])
@given(batch=payloads)
def test_every_generated_record_lands_exactly_once_and_the_service_survives(
    batch: list[bytes], ingest_service: tuple[Service, str], kafka_bootstrap: str
) -> None:
    service, prefix = ingest_service
    sent = set(produce_acked(kafka_bootstrap, prefix + VITALS_RAW, [(b"k", v) for v in batch]))

    deadline = time.monotonic() + 60
    while True:
        vitals = accounted(read_committed(kafka_bootstrap, prefix + VITALS, timeout_s=5, quiet_s=1), sent)
        dlq = accounted(read_committed(kafka_bootstrap, prefix + VITALS_DLQ, timeout_s=5, quiet_s=1), sent)
        if set(vitals) | set(dlq) >= sent or time.monotonic() > deadline:
            break
    assert service.alive(), service.log()
    assert set(vitals) | set(dlq) == sent, "an input record is missing from both outputs"
    assert not set(vitals) & set(dlq), "a plain record landed in both outputs"
    assert all(n == 1 for n in dlq.values()), "a record was dead-lettered twice"
    assert all(n == 1 for n in vitals.values()), "a plain reading was emitted twice"
