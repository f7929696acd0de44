"""`wardwatch import`: real ICU data or a generic long-format export -> a cohort directory.

    wardwatch import physionet2019 physionet2019-setB.tar.gz --out cohorts/p19
    wardwatch import physionet2012 set-a/ --outcomes Outcomes-a.txt --out cohorts/p12
    wardwatch import long export.csv --mapping mapping.yaml --out cohorts/mine

The directory has the simulator's layout (readings.jsonl, events.jsonl, summary.json,
readings.npz; plus patients.json and outcomes.jsonl), so `wardwatch train`, `evaluate` and
`replay` take either. Values outside the reading contract's ranges are dropped and counted
by reason in summary.json; unreadable rows are listed with file and line.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ingest.importers import DEFAULT_START_MS, FORMATS, SourceError, import_long, import_physionet2012, import_physionet2019

SHOWN_PROBLEMS = 10


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `wardwatch import` to the CLI."""
    p = subparsers.add_parser(
        "import",
        help="import real ICU data (PhysioNet 2019/2012) or a long-format export into a cohort directory",
        description=__doc__.split("\n\n", 1)[1] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("format", choices=FORMATS, help="source format")
    p.add_argument("source", help="directory, file or .tar.gz holding the source files")
    p.add_argument("--out", required=True, help="cohort directory to write")
    p.add_argument("--outcomes", default=None, help="physionet2012: the Outcomes-*.txt file (found automatically inside SOURCE)")
    p.add_argument("--mapping", default=None, help="long: the mapping YAML (parameter -> contract field, time unit)")
    p.add_argument("--limit", type=int, default=None, help="physionet formats: import at most this many stays (in file-name order)")
    p.add_argument("--start-ms", type=int, default=DEFAULT_START_MS, help="event time of hour 0 of every stay (ms since the epoch)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Import; exit 0 when readings were written, 1 when nothing could be imported, 2 on bad arguments."""
    if args.format == "long" and not args.mapping:
        print("wardwatch import: the long format needs --mapping FILE", file=sys.stderr)
        return 2
    if args.limit is not None and args.limit < 1:
        print(f"wardwatch import: --limit={args.limit}: expected at least 1", file=sys.stderr)
        return 2
    try:
        if args.format == "physionet2019":
            builder = import_physionet2019(args.source, start_ms=args.start_ms, limit=args.limit)
        elif args.format == "physionet2012":
            builder = import_physionet2012(args.source, args.outcomes, start_ms=args.start_ms, limit=args.limit)
        else:
            builder = import_long(args.source, args.mapping, start_ms=args.start_ms)
    except SourceError as exc:
        print(f"wardwatch import: {exc}", file=sys.stderr)
        return 1
    summary = builder.write(Path(args.out))
    for line in summary["problems"][:SHOWN_PROBLEMS]:
        print(f"wardwatch import: {line}", file=sys.stderr)
    if summary["problems_total"] > SHOWN_PROBLEMS:
        print(f"wardwatch import: ... {summary['problems_total'] - SHOWN_PROBLEMS} more problems listed in summary.json", file=sys.stderr)
    dropped = ", ".join(f"{k} {v}" for k, v in summary["dropped_values"].items()) or "none"
    print(
        f"imported {summary['patients']} patients, {summary['readings']} readings, {summary['events']} events"
        + (f", {summary['outcomes']['in_hospital_deaths']} in-hospital deaths" if summary["outcomes"] else "")
        + f" from {summary['files']['read']} files ({summary['files']['rejected']} rejected) into {args.out}; "
        f"dropped values: {dropped}"
    )
    return 0 if summary["readings"] else 1
