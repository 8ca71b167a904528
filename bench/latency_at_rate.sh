#!/usr/bin/env bash
# enqueue → receive latency through the daemon (SQLite in a temp dir) at a fixed rate:
# callbackd-load posts on an open-loop schedule over 64 connections and receives the callbacks
# itself (verifying each signature), latency counted from each send's scheduled time.
# RUNS runs of SECONDS each on a fresh daemon; prints each run and the medians.
#   bench/latency_at_rate.sh [build-dir] [RATE=1000] [SECONDS=30] [RUNS=3]
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build/release}
rate=${2:-1000}
seconds=${3:-30}
runs=${4:-3}
source bench/lib.sh
work=$(mktemp -d)
trap cleanup EXIT
for run in $(seq "$runs"); do
  start_daemon "$build/service/callbackd" "latency$run"
  "$build/bench/callbackd-load" --daemon "$daemon_url" --rate "$rate" --duration "$seconds" \
    --quiet --json "$work/$run.json" --svg "$work/$run.svg" >/dev/null
  kill "$daemon_pid"; wait "$daemon_pid" 2>/dev/null || true
  for q in p50 p99 p999 max; do json_field "$work/$run.json" "[\"delivery_latency_ms\"][\"$q\"]" >>"$work/$q"; done
  echo "run $run: p50 $(tail -1 "$work/p50") p99 $(tail -1 "$work/p99") p999 $(tail -1 "$work/p999") max $(tail -1 "$work/max") ms," \
    "errors $(json_field "$work/$run.json" '["errors"]')" >&2
done
[[ -n "${SVG_OUT:-}" ]] && cp "$work/$runs.svg" "$SVG_OUT"
echo "enqueue → receive at $rate/s, medians of $runs runs of ${seconds}s: p50 $(median <"$work/p50") ms," \
  "p99 $(median <"$work/p99") ms, p999 $(median <"$work/p999") ms, max $(median <"$work/max") ms"
