#!/usr/bin/env bash
# callbackd against a BullMQ + Redis Node worker doing the same job (sign and POST to the same
# loopback sink, 32 at a time, draining a backlog), in one run. Installs redis-server and
# bullmq (pinned in package.json) if needed.
#   bench/bullmq/run.sh [build-dir] [N]
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${1:-build/release}
n=${2:-20000}
command -v redis-server >/dev/null || apt-get install -y --no-install-recommends redis-server >/dev/null
(cd bench/bullmq && [[ -d node_modules/bullmq ]] || npm install --silent --no-audit --no-fund)

work=$(mktemp -d)
port=$((20000 + RANDOM % 20000))
redis-server --port "$port" --save '' --appendonly no --dir "$work" --daemonize yes >/dev/null
coproc SINK { "$build/bench/callbackd_sink"; }
read -r sink_url <&"${SINK[0]}"
trap 'redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true; rm -rf "$work"' EXIT

node bench/bullmq/worker.mjs "$port" "$sink_url" "$n" | tee "$work/bullmq.txt"
ours=$("$build/bench/callbackd_dispatch_bench" --benchmark_filter="BM_DrainBacklog" \
  --benchmark_format=json 2>/dev/null |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["benchmarks"][0]["items_per_second"])')
theirs=$(sed -n 's/.*rate=\([0-9]*\)\/s/\1/p' "$work/bullmq.txt")
awk -v a="$ours" -v b="$theirs" \
  'BEGIN {printf "callbackd %.0f/s vs bullmq %.0f/s: %.1fx\n", a, b, a / b}'
