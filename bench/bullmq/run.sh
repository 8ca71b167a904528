#!/usr/bin/env bash
# callbackd against BullMQ + Redis doing the same job through the same sink process (one
# callbackd_sink for every run) at the same concurrency (32 at a time to the one host), in one
# run, both shapes, alternating RUNS times; prints medians and ratios.
#  drain:  N callbacks already queued; time until all are delivered.
#          callbackd: callbackd_dispatch_bench BM_DrainBacklog with SINK_URL (engine, SQLite).
#          BullMQ: worker.mjs drain (Redis with appendfsync always, as durable as SQLite FULL).
#  ingest: callbackd-load posts N unique tasks flat out over 64 connections, callbacks go to
#          the sink; delivered/s from first send to last delivery.
#          callbackd: the daemon.  BullMQ: service.mjs (HTTP → queue.add) + worker.mjs serve.
#   bench/bullmq/run.sh [build-dir] [N=20000] [RUNS=3]
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${1:-build/release}
n=${2:-20000}
runs=${3:-3}
scripts/install-deps bench >/dev/null
(cd bench/bullmq && [[ -d node_modules/bullmq ]] || npm ci --silent --no-audit --no-fund)
source bench/lib.sh
work=$(mktemp -d)
trap cleanup EXIT

start_redis
coproc SINK { "$build/bench/callbackd_sink"; }
pids+=("$SINK_PID")
read -r sink_url <&"${SINK[0]}"

load() {  # daemon-url metrics-url json-out
  "$build/bench/callbackd-load" --daemon "$1" --metrics-url "$2" --receiver-url "$sink_url" \
    --rate max --connections 64 --count "$n" --drain-timeout 120 --quiet --json "$3" >/dev/null
}

for run in $(seq "$runs"); do
  # drain
  redis-cli -p "$redis_port" flushall >/dev/null
  node bench/bullmq/worker.mjs drain "$redis_port" "$sink_url" "$n" >"$work/b.txt"
  sed -n 's/.*rate=\([0-9]*\)\/s/\1/p' "$work/b.txt" >>"$work/drain_bullmq"
  SINK_URL=$sink_url "$build/bench/callbackd_dispatch_bench" --benchmark_filter=BM_DrainBacklog \
    --benchmark_format=json 2>/dev/null |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["benchmarks"][0]["items_per_second"])' \
      >>"$work/drain_callbackd"
  # ingest and deliver
  start_daemon "$build/service/callbackd" "daemon$run"
  load "$daemon_url" "$daemon_url/metrics" "$work/c.json"
  json_field "$work/c.json" '["delivered_per_s"]' >>"$work/ingest_callbackd"
  kill "$daemon_pid"; wait "$daemon_pid" 2>/dev/null || true
  redis-cli -p "$redis_port" flushall >/dev/null
  service_port=$(free_port); metrics_port=$(free_port)
  node bench/bullmq/service.mjs "$redis_port" "$service_port" & service_pid=$!
  node bench/bullmq/worker.mjs serve "$redis_port" "$metrics_port" & worker_pid=$!
  pids+=("$service_pid" "$worker_pid")
  wait_http "http://127.0.0.1:$service_port/" && wait_http "http://127.0.0.1:$metrics_port/"
  load "http://127.0.0.1:$service_port" "http://127.0.0.1:$metrics_port/metrics" "$work/b.json"
  json_field "$work/b.json" '["delivered_per_s"]' >>"$work/ingest_bullmq"
  kill "$service_pid" "$worker_pid"; wait "$service_pid" "$worker_pid" 2>/dev/null || true
  echo "run $run: drain callbackd $(tail -1 "$work/drain_callbackd" | cut -d. -f1)/s bullmq $(tail -1 "$work/drain_bullmq")/s;" \
    "ingest callbackd $(tail -1 "$work/ingest_callbackd")/s bullmq $(tail -1 "$work/ingest_bullmq")/s" >&2
done
exec 3>&"${SINK[1]}"; exec 3>&-

for shape in drain ingest; do
  ours=$(median <"$work/${shape}_callbackd"); theirs=$(median <"$work/${shape}_bullmq")
  awk -v s="$shape" -v a="$ours" -v b="$theirs" -v r="$runs" \
    'BEGIN {printf "%s: callbackd %.0f/s vs BullMQ %.0f/s (medians of %d): %.1fx\n", s, a, b, r, a / b}'
done
