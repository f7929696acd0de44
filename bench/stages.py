"""`python -m bench.stages [--quick]`: how fast ingest and alerts drain a backlog, beside the ceiling.

Issue 17 asks that ingest and alerts each drain a backlog at >= 0.5x the librdkafka
passthrough. One broker, one run, each process alone on a preloaded backlog, transactional,
read_committed, one process:

- ceiling: the passthrough StreamLoop (`bench.ceiling`), `vitals` -> `risk`;
- ingest: `wardwatch ingest` on the same readings as raw records in `vitals.raw` (time checks
  off, as for a replay: the readings are simulated in the past);
- alerts: `wardwatch alerts` on the risk records the scorer's core makes of the same readings
  (computed in this process, then preloaded into `risk`).

Every process is timed the same way, by its consumer group's committed offsets (alerts writes
an output only now and then, so its outputs cannot time it): the rate is the records committed
after the first commit seen, over the time from that commit to the one that completes the
backlog. Each runs on kafka-python and on confluent-kafka. Writes bench/results/stages.json and
stages.md with the machine and the command.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench.common import (PARTITIONS, Input, broker, cohort_input, create_topics, fresh_prefix, in_records, logger,
                          preload, run_parser, run_record, spawn, stop, stream_flags, write_results, run_header)
from runtime.kafka.client import CLIENTS
from runtime.topics import (ALERTS, ALERTS_CONTROL, ALERTS_STATE, INGEST_STATE, RISK, SCORER_STATE, VITALS, VITALS_DLQ,
                            VITALS_RAW)

SIZES = {"quick": (60_000, 2_000), "full": (200_000, 10_000)}
POLL_S = 0.05
NOTE = ("Each process alone on a preloaded backlog of the same readings (ingest: as raw records in vitals.raw, time "
        "checks off; alerts: the risk records the scorer's core makes of them, in risk; ceiling: the passthrough "
        "StreamLoop on vitals), timed by its consumer group's committed offsets from the first commit to the one that "
        "completes the backlog. Issue 17 asks ingest and alerts, each on its faster client, for >= 0.5x the "
        "passthrough on confluent-kafka measured this way in the same run.")

log = logger("bench.stages")


@dataclass(frozen=True)
class Stage:
    """A process under test: its command, the topics it needs, where its backlog goes, its group."""

    name: str
    command: list[str]
    topics: tuple[str, ...]
    input_topic: str
    stage: str  # names its group: {prefix}wardwatch-{stage}


def stages(bootstrap: str) -> list[Stage]:
    def flags(name: str) -> list[str]:
        return stream_flags(bootstrap, "{prefix}", f"{name}-{{instance}}")

    return [
        Stage("ceiling", ["-m", "bench.worker", "passthrough", *flags("ceiling")],
              (VITALS, RISK, SCORER_STATE, VITALS_DLQ), VITALS, "bench-passthrough"),
        Stage("ingest", ["-m", "wardwatch", "ingest", *flags("ingest"), "--max-age-ms", "0", "--max-future-ms", "0"],
              (VITALS_RAW, VITALS, VITALS_DLQ, INGEST_STATE), VITALS_RAW, "ingest"),
        Stage("alerts", ["-m", "wardwatch", "alerts", *flags("alerts")],
              (RISK, ALERTS_CONTROL, ALERTS, ALERTS_STATE, VITALS_DLQ), RISK, "alerts"),
    ]


@dataclass
class Progress:
    """(monotonic seconds, records committed) samples of one consumer group."""

    samples: list[tuple[float, int]] = field(default_factory=list)

    def rate(self) -> tuple[float, float]:
        """(records/s, window s) from the first commit seen to the last change."""
        first = next(((t, n) for t, n in self.samples if n > 0), None)
        if first is None:
            return 0.0, 0.0
        last = first
        for t, n in self.samples:
            if n > last[1]:
                last = (t, n)
        window = last[0] - first[0]
        return ((last[1] - first[1]) / window if window > 0 else 0.0), window

    @property
    def committed(self) -> int:
        return self.samples[-1][1] if self.samples else 0


def committed_reader(bootstrap: str, group: str):
    """A consumer that reads the committed offsets of `group` without joining it."""
    from confluent_kafka import Consumer

    from runtime.kafka import security

    return Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False,
                     **security.current_properties()})


def committed_total(reader, topic: str) -> int | None:
    """Records of `topic` the group has committed; None while its coordinator is not ready."""
    from confluent_kafka import KafkaException, TopicPartition

    try:
        offsets = reader.committed([TopicPartition(topic, p) for p in range(PARTITIONS)], timeout=10)
    except KafkaException:  # the group's coordinator is still loading or moving (NOT_COORDINATOR)
        return None
    return sum(max(0, tp.offset) for tp in offsets)


def drain(bootstrap: str, stage: Stage, client: str, records: Sequence[tuple[bytes, bytes | None]], logdir: Path,
          time_cap_s: float, start_timeout_s: float = 90.0) -> dict[str, object]:
    """One process on a preloaded backlog of `records` in the stage's input topic, until all is committed."""
    prefix = fresh_prefix(f"{stage.name}-{client}")
    create_topics(bootstrap, prefix, stage.topics)
    preload(bootstrap, prefix + stage.input_topic, records)
    reader = committed_reader(bootstrap, f"{prefix}wardwatch-{stage.stage}")
    command = [a.format(prefix=prefix, instance=uuid.uuid4().hex[:6]) for a in stage.command]
    process = spawn([*command, "--kafka-client", client], logdir / f"{stage.name}-{client}.log")
    progress = Progress()
    started = time.monotonic()
    try:
        while time.monotonic() - started < start_timeout_s + time_cap_s:
            if process.poll() is not None:
                raise RuntimeError(f"{stage.name} on {client} exited with {process.returncode}; "
                                   f"see {logdir / f'{stage.name}-{client}.log'}")
            committed = committed_total(reader, prefix + stage.input_topic)
            if committed is not None:
                progress.samples.append((time.monotonic(), committed))
            if progress.committed >= len(records):
                break
            if progress.committed == 0 and time.monotonic() - started > start_timeout_s:
                break
            time.sleep(POLL_S)
    finally:
        stop([process])
        reader.close()
    rate, window = progress.rate()
    return {"readings": len(records), "committed": progress.committed, "readings_per_s": round(rate, 1),
            "window_s": round(window, 2), "time_capped": progress.committed < len(records)}


def risk_records(data: Input, checkpoint: str) -> list[tuple[bytes, bytes | None]]:
    """The `risk` records the scorer's core makes of the input, in order (key, value)."""
    from inference.service import ScoreConfig, build_scorer, load_model
    from runtime.metrics import StreamMetrics, new_registry

    model, version = load_model(checkpoint)
    scorer = build_scorer(ScoreConfig(metrics_port=-1), StreamMetrics(new_registry(), "score"), model, version)
    records = in_records(data.records)
    out: list[tuple[bytes, bytes | None]] = []
    for i in range(0, len(records), 2_000):
        out += [(o.key, o.value) for o in scorer.process(records[i : i + 2_000]) if o.topic == RISK]
    return out


def main(argv: list[str] | None = None) -> int:
    args = run_parser("bench.stages", __doc__, "smaller input (a few minutes)", "model whose risk records alerts reads").parse_args(argv)
    mode = "quick" if args.quick else "full"
    readings, patients = SIZES[mode]
    data = cohort_input(readings, patients)
    risk = risk_records(data, args.checkpoint)
    result: dict = run_record("bench.stages", mode, argv) | {
        "input": {"readings": len(data.records), "patients": data.patients, "risk_records": len(risk),
                  "partitions": PARTITIONS},
    }
    logdir = Path(tempfile.mkdtemp(prefix="wardwatch-bench-stages-"))
    with broker() as (bootstrap, description):
        result["broker"] = description
        result["drain"] = run_all(bootstrap, data, risk, logdir)
    result["ratios"] = ratios(result["drain"])
    write_results(args.results, "stages", result, markdown(result))
    shutil.rmtree(logdir, ignore_errors=True)
    log(f"wrote {args.results / 'stages.json'} and stages.md")
    return 0


def run_all(bootstrap: str, data: Input, risk: list[tuple[bytes, bytes | None]], logdir: Path,
            time_cap_s: float = 300.0) -> dict[str, dict[str, object]]:
    """Every stage on every client: {"<stage>-<client>": drain result}."""
    out: dict[str, dict[str, object]] = {}
    for client in CLIENTS:
        for stage in stages(bootstrap):
            records = risk if stage.input_topic == RISK else data.records
            name = f"{stage.name}-{client}"
            out[name] = drain(bootstrap, stage, client, records, logdir, time_cap_s)
            log(f"{name}: {out[name]['readings_per_s']:,.0f} records/s ({out[name]['committed']:,} in {out[name]['window_s']} s)")
    return out


def ratios(drained: dict[str, dict[str, object]]) -> dict[str, float | None]:
    """Each stage against the passthrough ceiling on the same client, and against librdkafka's."""
    def rate(name: str) -> float:
        return float(drained.get(name, {}).get("readings_per_s", 0.0))  # type: ignore[arg-type]

    out: dict[str, float | None] = {}
    kp, cf = CLIENTS
    for stage in ("ingest", "alerts"):
        for client in CLIENTS:
            ceiling = rate(f"ceiling-{client}")
            out[f"{stage} / ceiling, {client}"] = round(rate(f"{stage}-{client}") / ceiling, 2) if ceiling else None
        ceiling = rate(f"ceiling-{cf}")
        best = max(rate(f"{stage}-{client}") for client in CLIENTS)
        out[f"{stage} (faster client) / ceiling, {cf}"] = round(best / ceiling, 2) if ceiling else None
    return out


def markdown(r: dict) -> str:
    lines = [
        *run_header(r, "Draining a backlog: ingest and alerts beside the passthrough ceiling"),
        f"Input: {r['input']['readings']:,} readings of {r['input']['patients']:,} patients ({r['input']['partitions']} partitions), "
        f"preloaded; alerts reads the {r['input']['risk_records']:,} risk records the scorer's core makes of them. "
        "One process, transactional, read_committed; rate from the group's first commit to the one that completes the backlog.",
        "",
        "| process | client | records/s | window s | committed | time-capped |",
        "|---|---|---:|---:|---:|---|",
    ]
    for name, t in r["drain"].items():
        stage, client = name.split("-", 1)
        lines.append(f"| {stage} | {client} | {t['readings_per_s']:,.0f} | {t['window_s']} | {t['committed']:,} | {t['time_capped']} |")
    lines += ["", "| ratio | value | issue 17 target |", "|---|---:|---|"]
    for k, v in r["ratios"].items():
        target = ">= 0.5" if "faster client" in k else ""
        lines.append(f"| {k} | {v} | {target} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
