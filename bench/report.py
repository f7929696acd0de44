"""Writes bench/results/latest.json and latest.md from one run's results."""

from __future__ import annotations

import json
from pathlib import Path

from bench import latency, transactions
from bench.common import machine_line

# metric: (comparison, target, the issue that set it). Issue 9's are on the default client
# (kafka-python), issue 17's on the faster one (confluent-kafka).
TARGETS = {
    "scorer_vs_ceiling": (">=", 0.70, 9),
    "p99_event_to_score_ms_at_5k": ("<", 100.0, 9),
    "scorer_confluent_vs_kafka_python": (">=", 2.5, 17),
    "scorer_confluent_vs_ceiling_confluent": (">=", 0.5, 17),
    "scorer_confluent_vs_naive": (">=", 10.0, 17),
    "scorer_confluent_vs_peer": (">=", 8.0, 17),
    "scorer_confluent_readings_per_s": (">=", 50_000.0, 17),
    "p99_event_to_score_ms_at_5k_confluent": ("<", 50.0, 17),
    "ingest_vs_ceiling_confluent": (">=", 0.5, 17),
    "alerts_vs_ceiling_confluent": (">=", 0.5, 17),
    "pipeline_sustained_readings_per_s": (">=", 16_700.0, 17),
}


def verdicts(result: dict) -> dict[str, dict[str, object]]:
    out = {}
    for key, (op, target, issue) in TARGETS.items():
        value = result.get(key)
        met = value is not None and (value >= target if op == ">=" else value < target)
        out[key] = {"value": value, "target": f"{op} {target:g}", "met": met, "issue": issue}
    return out


def write(result: dict, directory: Path) -> tuple[Path, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    result["targets"] = verdicts(result)
    json_path, md_path = directory / "latest.json", directory / "latest.md"
    json_path.write_text(json.dumps(result, indent=2, default=str) + "\n")
    md_path.write_text(markdown(result))
    return json_path, md_path


def _fmt(x: object) -> str:
    return f"{x:,.1f}" if isinstance(x, float) else f"{x:,}" if isinstance(x, int) else str(x)


def markdown(r: dict) -> str:
    m = r["machine"]
    lines = [
        f"# wardwatch benchmarks ({r['mode']} mode)", "",
        f"- command: `{r['command']}`",
        f"- when: {r['started_at']} UTC, took {r['wall_s']:.0f} s",
        f"- broker: {r['broker']}",
        f"- machine: {machine_line(m)} (shared machine: other work was running)",
        f"- software: Python {m['python']}, onnxruntime {m.get('onnxruntime')} (the model step), torch {m['torch']}, kafka-python {m['kafka_python']}, "
        f"confluent-kafka {m['confluent_kafka']} (librdkafka {m['librdkafka']}), quixstreams {m['quixstreams']}",
        f"- model: {r['model']}; input: {r['input']['readings']:,} readings of {r['input']['patients']:,} patients, "
        f"{r['input']['mean_value_bytes']:.0f} B each, {r['input']['partitions']} partitions",
        "", "## Targets (issue 9: the default client, kafka-python; issue 17: confluent-kafka)", "",
        "| issue | metric | value | target | met |", "|---|---|---:|---|---|",
    ]
    for key, v in r["targets"].items():
        value = v["value"]
        shown = f"{value:,.2f}" if isinstance(value, float) else value
        lines.append(f"| {v['issue']} | {key} | {shown} | {v['target']} | {'yes' if v['met'] else '**no**'} |")
    lines += ["", "## Throughput (same input, same broker, one process each)", "",
              "| scenario | readings/s | window s | outputs seen | time-capped |", "|---|---:|---:|---:|---|"]
    for name, t in r["throughput"].items():
        lines.append(f"| {name} | {_fmt(t['readings_per_s'])} | {t['window_s']} | {t['outputs_seen']:,} | {t['time_capped']} |")
    if r.get("stages"):
        lines += ["", "## Draining a backlog: ingest and alerts beside the ceiling (`python -m bench.stages` runs only this)", "",
                  r["notes"]["stages"], "",
                  "| process | client | records/s | window s | committed | time-capped |", "|---|---|---:|---:|---:|---|"]
        for name, t in r["stages"].items():
            stage, client = name.split("-", 1)
            lines.append(f"| {stage} | {client} | {_fmt(t['readings_per_s'])} | {t['window_s']} | {t['committed']:,} | {t['time_capped']} |")
    if r.get("explanations"):
        lines += ["", "## The scorer with and without explanations (same run, `--explain`)", "",
                  "| explain | readings/s | vs off |", "|---|---:|---:|"]
        for policy, e in r["explanations"].items():
            lines.append(f"| {policy} | {_fmt(e['readings_per_s'])} | {e.get('vs_off', 1.0)} |")
    lines += ["", f"Ceiling: {r['notes']['ceiling']}", "", f"Peer: {r['notes']['peer']}", "",
              "## Latency: event-to-score (`python -m bench.latency` runs only this)", "", r["notes"]["latency"], "",
              *latency.HEADER, *latency.table_rows(r["latency"])]
    if r.get("transactions"):
        lines += ["", "## Back-to-back transactions (`python -m bench.transactions` runs only this)", "",
                  r["notes"]["transactions"], "", *transactions.table(r["transactions"])]
    lines += ["", "## State scale (restore from scorer.state)", "",
              "| patients | table B/patient | RSS B/patient | read changelog s | restore_partition s | total s | rows/s |",
              "|---:|---:|---:|---:|---:|---:|---:|"]
    for s in r["state_scale"]:
        lines.append(f"| {s['patients']:,} | {s['table_bytes_per_patient']} | {s['rss_delta_bytes_per_patient']} | "
                     f"{s['read_changelog_s']} | {s['restore_partition_s']} | {s['restore_total_s']} | {_fmt(s['rows_per_s'])} |")
    if r.get("pipeline"):
        p = r["pipeline"]
        behind = p["fell_behind"]
        lines += ["", "## The whole pipeline at one reading per patient per minute (`python -m bench.pipeline` runs only this)", "",
                  f"ingest, score and alerts, one process each on {p['client']}; {p['patients']:,} patients offered at "
                  f"{p['offered_rate_per_s']:,.0f} readings/s for up to {p['seconds_planned']:g} s; "
                  + ("sustained." if p["sustained"] else f"fell behind at {behind['at_s']} s (a stage over {p['lag_limit_s']:g} s of input behind)." if behind else "not sustained.")
                  + f" Offered {p['sent']:,}; scored {p['distinct_readings_scored']:,} distinct readings in {p['risk_records']:,} risk records "
                  f"({p['missing']:,} missing, {p['duplicated']:,} duplicated).", "",
                  "| stage | rate while offered /s | max lag records | max lag (s of input) |", "|---|---:|---:|---:|"]
        for stage, st in p["stages"].items():
            lines.append(f"| {stage} | {_fmt(st['rate_while_offered_per_s'])} | {st['max_lag_records']:,} | {st['max_lag_s_of_input']} |")
    lines += ["", "## Scale-out (one group, live input)", "", "| processes | readings/s | window s |", "|---:|---:|---:|"]
    for s in r["scale_out"]:
        lines.append(f"| {s['processes']} | {_fmt(s['readings_per_s'])} | {s['window_s']} |")
    lines += ["", r["notes"]["scale_out"], "", "## Profile", "", "See `profile.md`."]
    for client, shares in r["profile"]["loop_share"].items():
        lines += ["", f"Shares of the StreamLoop run on {client}:", ""]
        lines += [f"- {k}: {100 * v:.1f}%" for k, v in shares.items()]
    lines += ["", "Shares inside ScorerProcessor.process:", ""]
    for k, v in r["profile"]["core_share"].items():
        lines.append(f"- {k}: {100 * v:.1f}%")
    return "\n".join(lines) + "\n"
