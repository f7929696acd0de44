"""`python -m bench [--quick]`: every benchmark scenario against one real broker, in one run.

Starts a local Apache Kafka broker (or uses KAFKA_BOOTSTRAP_SERVERS), runs the scenarios of
issues 9 and 17 in order (ceiling and scorer on each Kafka client, naive, peer, ingest and
alerts draining a backlog on each client, latency on each client, back-to-back transactions at
each retry backoff, state scale, scale-out, the whole pipeline at one reading per patient per
minute, profile on each client) and writes bench/results/latest.json, latest.md and profile.md
with the machine and the command.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path

from bench import (explain, hot_path, latency, peer_quix, pipeline, report, scale_out, scorer, stages, state_scale,
                   transactions)
from bench.common import PARTITIONS, broker, cohort_input, logger, run_parser, run_record
from bench.throughput import run_preloaded
from runtime.kafka.client import CLIENTS


MODES = {
    # readings, patients, naive/peer time cap (s), state sizes, scale-out cap (s); the latency
    # loads and seconds are bench.latency.SIZES (tests/test_bench_latency.py: this input feeds them)
    "quick": dict(readings=60_000, patients=2_000, slow_cap_s=12,
                  state=(10_000, 100_000), scale_cap_s=60),
    "full": dict(readings=200_000, patients=10_000, slow_cap_s=40,
                 state=(10_000, 100_000, 1_000_000), scale_cap_s=120),
}


log = logger("bench")


def main(argv: list[str] | None = None) -> int:
    args = run_parser("bench", __doc__, "CI-size run (a few minutes)", "model for every scenario ('untrained' works)").parse_args(argv)
    mode = "quick" if args.quick else "full"
    size = MODES[mode]
    started = time.monotonic()
    result: dict = run_record("bench", mode, argv)
    args.results.mkdir(parents=True, exist_ok=True)  # profile.md is written before latest.*
    from inference.service import load_model

    result["model"] = load_model(args.checkpoint)[1]
    data = cohort_input(size["readings"], size["patients"])
    result["input"] = {"readings": len(data.records), "patients": data.patients,
                       "mean_value_bytes": round(data.mean_value_bytes, 1), "partitions": PARTITIONS}
    logdir = Path(tempfile.mkdtemp(prefix="wardwatch-bench-logs-"))
    log(f"mode={mode} input={len(data.records)} readings, process logs in {logdir}")
    with broker() as (bootstrap, description):
        result["broker"] = description
        log(f"broker: {description} at {bootstrap}")
        # Ceiling and scorer on each Kafka client; naive on the faster client (confluent), like the
        # scorer it is compared with; the peer runs on confluent-kafka itself.
        kp, cf = CLIENTS
        runs = {}
        for client in CLIENTS:
            flag = ["--kafka-client", client]
            runs[f"ceiling (passthrough StreamLoop), {client}"] = (f"ceiling-{client}", [*scorer.ceiling_command(bootstrap), *flag], 300)
            runs[f"wardwatch scorer, {client}"] = (f"scorer-{client}", [*scorer.command(bootstrap, args.checkpoint), *flag], 300)
        runs[f"naive (batch size 1), {cf}"] = ("naive", [*scorer.naive_command(bootstrap, args.checkpoint), "--kafka-client", cf], size["slow_cap_s"])
        runs["peer (Quix Streams, RocksDB, EOS)"] = ("peer", peer_quix.command(bootstrap, args.checkpoint), size["slow_cap_s"])
        throughput, rate = {}, {}
        for name, (short, command, cap) in runs.items():
            t = run_preloaded(bootstrap, short, data, command, logdir, time_cap_s=cap)
            throughput[name] = t.as_dict()
            rate[short] = t.readings_per_s
            log(f"{short}: {t.readings_per_s:,.0f} readings/s ({t.outputs:,} outputs in {t.seconds:.1f} s)")
        result["throughput"] = throughput

        def ratio(a: str, b: str, digits: int = 2) -> float | None:
            return round(rate[a] / rate[b], digits) if rate.get(b) else None

        # issue 9's targets, on the default client (kafka-python)
        result["scorer_vs_ceiling"] = ratio(f"scorer-{kp}", f"ceiling-{kp}", 3)
        # issue 17's, on the faster client
        result["scorer_confluent_vs_kafka_python"] = ratio(f"scorer-{cf}", f"scorer-{kp}")
        result["scorer_confluent_vs_ceiling_confluent"] = ratio(f"scorer-{cf}", f"ceiling-{cf}", 3)
        result["scorer_confluent_vs_naive"] = ratio(f"scorer-{cf}", "naive")
        result["scorer_confluent_vs_peer"] = ratio(f"scorer-{cf}", "peer")
        result["scorer_confluent_readings_per_s"] = round(rate[f"scorer-{cf}"], 1)
        # Ingest and alerts draining a backlog beside the ceiling, on each client (bench/stages.py).
        result["stages"] = stages.run_all(bootstrap, data, stages.risk_records(data, args.checkpoint), logdir)
        for stage, ratio_key in (("ingest", "ingest_vs_ceiling_confluent"), ("alerts", "alerts_vs_ceiling_confluent")):
            result[ratio_key] = stages.ratios(result["stages"])[f"{stage} (faster client) / ceiling, {cf}"]
        # The scorer with and without explanations (bench/explain.py; `python -m bench.explain` runs only this).
        result["explanations"] = explain.service(bootstrap, data, args.checkpoint, logdir)
        log("explanations: " + ", ".join(f"{p}: {e['readings_per_s']:,.0f}/s" for p, e in result["explanations"].items()))

        result["latency"] = []
        for client in CLIENTS:
            for offered in latency.SIZES[mode].rates:
                command = [*scorer.command(bootstrap, args.checkpoint), "--kafka-client", client]
                lat = latency.run(bootstrap, data, command, offered, latency.SIZES[mode].seconds, logdir)
                result["latency"].append({"client": client, **lat.as_dict()})
                log(f"latency {client} at {offered}/s: {lat.event_to_score_ms} (achieved {lat.achieved_scored_per_s:,.0f}/s)")
        for client in CLIENTS:
            at5k = [run for run in result["latency"] if run["offered_per_s"] == 5_000 and run["client"] == client]
            key = "p99_event_to_score_ms_at_5k" + ("" if client == kp else f"_{client}")
            result[key] = at5k[0]["event_to_score_ms"]["p99"] if at5k else None
        # What a commit costs when transactions follow each other (bench/transactions.py).
        result["transactions"] = transactions.run(bootstrap, transactions.SIZES[mode])
        log("transactions: " + ", ".join(f"{k} ms: p50 {t['p50_ms']}" for k, t in result["transactions"].items()))

        result["state_scale"] = []
        for patients in size["state"]:
            s = state_scale.measure(bootstrap, patients, args.checkpoint)
            result["state_scale"].append(s)
            log(f"state {patients:,}: {s['table_bytes_per_patient']} B/patient table, restore {s['restore_total_s']} s")

        scaled = scale_out.run(bootstrap, data, (1, 2, 3), logdir, size["scale_cap_s"])
        result["scale_out"] = [t.as_dict() for t in scaled]
        log("scale-out: " + ", ".join(f"{t.processes}: {t.readings_per_s:,.0f}/s" for t in scaled))

        # The whole pipeline, ingest + score + alerts, at one reading per patient per minute (bench/pipeline.py).
        sizes = pipeline.SIZES[mode]
        result["pipeline"] = pipeline.run(bootstrap, sizes["patients"], sizes["seconds"], args.checkpoint, logdir)
        last = result["pipeline"]["stages"]["alerts"]
        result["pipeline_sustained_readings_per_s"] = (
            result["pipeline"]["offered_rate_per_s"] if result["pipeline"]["sustained"] else last["rate_while_offered_per_s"])
        log(f"pipeline: {result['pipeline_sustained_readings_per_s']:,.0f} readings/s end to end "
            f"({'sustained' if result['pipeline']['sustained'] else 'fell behind'}), "
            f"{result['pipeline']['missing']} missing, {result['pipeline']['duplicated']} duplicated")

        loops = {client: hot_path.profile_loop(bootstrap, data, args.checkpoint, client) for client in CLIENTS}
        core, core_rate = hot_path.profile_core(data, args.checkpoint)
        result["profile"] = hot_path.write(args.results / "profile.md", loops, core, core_rate, result["command"])
        log("profile written")

    result["notes"] = {
        "ceiling": "the real StreamLoop (one transaction per poll, read_committed, same topics and "
                   "partitions) with a processor that copies each vitals record to risk unchanged. The scorer also "
                   "writes one scorer.state row per changed patient per batch, which the ceiling does not.",
        "peer": "Quix Streams on confluent-kafka (librdkafka): a faster client than kafka-python, so the peer's shell "
                "is not the handicap. commit_interval 0.1 s like the scorer's commit_interval_ms=100; exactly-once.",
        "latency": "Event-to-score = consumer receive time of the risk record (read_committed, same host) minus its "
                   "Kafka timestamp, which the scorer copies from the input record's CreateTime (set when the bench "
                   "producer sent the reading). 'steady' leaves out the first 2 s of the paced phase, when most of the "
                   "patients are new to the scorer and the topics are fresh; the headline p99 includes them. "
                   "Reading-to-alert latency is not measured.",
        "scale_out": scale_out.limit_note(scaled),
        "stages": stages.NOTE,
        "transactions": transactions.NOTE,
    }
    result["wall_s"] = round(time.monotonic() - started, 1)
    json_path, md_path = report.write(result, args.results)
    shutil.rmtree(logdir, ignore_errors=True)
    log(f"wrote {json_path} and {md_path} in {result['wall_s']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
