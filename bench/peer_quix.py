"""Scenario 4, the peer: the same per-patient GRU scoring written the idiomatic Quix Streams way.

`python -m bench.peer_quix --bootstrap-servers B --topic-prefix P [--checkpoint default]`

One `StreamingDataFrame.apply(score, stateful=True)`: per message, read the patient's state
from the RocksDB store (changelogged to Kafka by Quix), step the same model once (the same exported step on ONNX Runtime), compute
the same model inputs and NEWS2 with the same functions, write the state back, emit the same risk fields. Exactly-once
processing guarantee (Kafka transactions), read_committed input. Quix Streams runs on
confluent-kafka (librdkafka), not kafka-python: its client is the faster one.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile

import numpy as np

from inference.features import N_FEATURES, NEVER, model_inputs, remember
from inference.news2 import NEWS2_MAX_AGE_MS
from inference.news2_batch import PARAMETERS, news2_batch
from inference.service import load_model
from ingest import Reading
from runtime.topics import RISK, VITALS

GROUP = "{prefix}quix-peer"


def command(bootstrap: str, checkpoint: str = "default", commit_interval_s: float = 0.1) -> list[str]:
    return ["-m", "bench.peer_quix", "--bootstrap-servers", bootstrap, "--topic-prefix", "{prefix}",
            "--checkpoint", checkpoint, "--commit-interval", str(commit_interval_s)]


def make_score(model, version: str):
    """The per-message stateful function Quix calls: (reading dict, State) -> risk dict."""

    def score(reading: dict, state) -> dict:
        saved = state.get("scorer")
        if saved is None:
            hidden = np.zeros((1, model.state_size), dtype=np.float32)
            last_values = np.zeros(N_FEATURES, dtype=np.float32)
            seen = np.full(N_FEATURES, NEVER, dtype=np.int64)
            last_ts, scale = NEVER, 1
        else:
            hidden = np.asarray([saved["hidden"]], dtype=np.float32)
            last_values = np.asarray(saved["last_values"], dtype=np.float32)
            seen = np.asarray(saved["seen_ts"], dtype=np.int64)
            last_ts, scale = saved["last_ts"], saved["spo2_scale"]
        ts = int(reading["ts_ms"])
        if last_ts != NEVER and ts < last_ts:
            return {"patient_id": reading["patient_id"], "ts_ms": ts, "late": True}
        x = model_inputs([Reading(**reading)], seen[None], last_values[None])
        hidden, risks = model.step(hidden, *x.step_args())
        risk = float(risks[0])
        seen_after, values_after = remember(x, seen[None])
        seen, last_values = seen_after[0], values_after[0]
        scale = int(reading.get("spo2_scale") or 1)
        fresh = seen >= ts - NEWS2_MAX_AGE_MS
        n2 = news2_batch(last_values[None], fresh[None], np.asarray([scale], dtype=np.int8))
        state.set("scorer", {"hidden": hidden[0].tolist(), "last_values": last_values.tolist(),
                             "seen_ts": seen.tolist(), "last_ts": ts, "spo2_scale": scale})
        present, scores = n2.present[0].tolist(), n2.scores[0].tolist()
        return {
            "patient_id": reading["patient_id"], "ts_ms": ts, "seq": reading["seq"], "risk": round(risk, 6),
            "news2": int(n2.total[0]), "news2_single3": bool(n2.single3[0]),
            "news2_scores": {p: (s if ok else None) for p, s, ok in zip(PARAMETERS, scores, present)}, "model": version,
        }

    return score


def main(argv: list[str] | None = None) -> int:
    from quixstreams import Application
    from quixstreams.kafka.configuration import ConnectionConfig

    from runtime.kafka import security

    parser = argparse.ArgumentParser(prog="python -m bench.peer_quix")
    parser.add_argument("--bootstrap-servers", required=True)
    parser.add_argument("--topic-prefix", required=True)
    parser.add_argument("--checkpoint", default="default")
    parser.add_argument("--commit-interval", type=float, default=0.1)
    args = parser.parse_args(argv)
    model, version = load_model(args.checkpoint)  # one model thread, as the scorer
    app = Application(
        # Secured as the scorer is (the process's TLS + SCRAM settings, standard property names).
        broker_address=ConnectionConfig.from_librdkafka_dict({"bootstrap.servers": args.bootstrap_servers, **security.current_properties()}),
        consumer_group=GROUP.format(prefix=args.topic_prefix),
        auto_offset_reset="earliest",
        processing_guarantee="exactly-once",
        commit_interval=args.commit_interval,
        state_dir=tempfile.mkdtemp(prefix="bench-quix-state-"),
        loglevel="WARNING",
    )
    source = app.topic(args.topic_prefix + VITALS, value_deserializer="json", key_deserializer="str")
    sink = app.topic(args.topic_prefix + RISK, value_serializer="json", key_serializer="str")
    sdf = app.dataframe(source)
    sdf = sdf.apply(make_score(model, version), stateful=True)
    sdf.to_topic(sink)
    logging.getLogger("quixstreams").setLevel(logging.WARNING)
    app.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
