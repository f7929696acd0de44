#!/usr/bin/env bash
# Measure the README's first-run figure: seconds from `make demo` in a fresh clone with an EMPTY
# cache (no virtual environment, no uv, no Kafka jars, an empty Maven repository) to the first
# reading the scorer has consumed (its wardwatch_records_in_total metric above zero).
#
#   deploy/scripts/time-demo.sh [MAKE_ARGS...]     e.g. DURATION=30 (default 20 s of demo)
#
# It clones this repository's HEAD into a temporary directory, which it deletes afterwards.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
git clone -q "$repo" "$work/clone"
export WARDWATCH_CACHE_DIR="$work/cache"
export UV_CACHE_DIR="$work/cache/uv-cache"
# Maven's own repository (~/.m2) would otherwise keep the jars between runs.
export MAVEN_OPTS="-Dmaven.repo.local=$work/m2${MAVEN_OPTS:+ $MAVEN_OPTS}"
score_metrics=http://127.0.0.1:9103/metrics

start=$EPOCHREALTIME
# Each output line is stamped with the seconds since the start, to show where the time goes.
(cd "$work/clone" && setsid make demo DURATION=20 "$@" 2>&1 | while IFS= read -r line; do
  printf '%6.1f  %s\n' "$(awk -v a="$start" -v b="$EPOCHREALTIME" 'BEGIN {print b - a}')" "$line"
done) >"$work/demo.log" &
demo=$!
first=""
while kill -0 "$demo" 2>/dev/null; do
  scored=$(curl -sf --max-time 1 "$score_metrics" | awk '/^wardwatch_records_in_total/ {s += $NF} END {print s + 0}' || true)
  if [ -z "$first" ] && awk -v n="${scored:-0}" 'BEGIN {exit !(n > 0)}'; then
    first=$EPOCHREALTIME
    echo "first scored reading after $(awk -v a="$start" -v b="$first" 'BEGIN {printf "%.1f", b - a}') s"
  fi
  sleep 0.5
done
wait "$demo" && rc=0 || rc=$?
if [ -z "$first" ]; then
  echo "no reading was scored (make demo exited with $rc); its output:" >&2
  cat "$work/demo.log" >&2
  tail -n 5 "$WARDWATCH_CACHE_DIR"/demo/*.log >&2 || true
  exit 1
fi
grep -E "^ *[0-9.]+  (installing|setting up|resolving|starting|pipeline running)" "$work/demo.log" || true
du -sh "$WARDWATCH_CACHE_DIR"/venv-serve-* 2>/dev/null | sed 's/^/serving environment: /' || true
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores"
