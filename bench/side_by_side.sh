#!/usr/bin/env bash
# Every side-by-side comparison of issue 10's table in one run, on this machine:
#   bench/side_by_side.sh [build-dir] [RUNS=3]
# (each part is its own command too; see README "Benchmarks").
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build/release}
runs=${2:-3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
scripts/install-deps bench >/dev/null
only=${ONLY:-bullmq sidecar dispatch latency enqueue}  # a subset, e.g. ONLY="latency enqueue"
part() { [[ " $only " == *" $1 "* ]]; }
if part bullmq; then
  echo "== drain and ingest-and-deliver vs BullMQ + Redis (bench/bullmq/run.sh)"
  bench/bullmq/run.sh "$build" 20000 "$runs"
fi
if part sidecar; then
  echo "== the sidecar vs wrk → nginx and bare curl multi → nginx (bench/sidecar_vs_ceilings.sh)"
  bench/sidecar_vs_ceilings.sh "$build" 20000 "$runs"
fi
if part dispatch; then
  echo "== drain in-process vs bare curl multi, same in-process sink (callbackd_dispatch_bench)"
  "$build/bench/callbackd_dispatch_bench" --benchmark_filter='BM_DrainBacklog|BM_BareCurlMulti|BM_HttpClientOnly' \
    --benchmark_repetitions="$runs" --benchmark_report_aggregates_only=true \
    --benchmark_format=json 2>/dev/null >"$work/dispatch.json"
  python3 - "$work/dispatch.json" <<'PY'
import json, sys
rows = {b["run_name"].split("/")[0]: b for b in json.load(open(sys.argv[1]))["benchmarks"]
        if b.get("aggregate_name") == "median"}
d, c, t = rows["BM_DrainBacklog"], rows["BM_BareCurlMulti"], rows["BM_HttpClientOnly"]
print(f"drain {d['items_per_second']:.0f}/s ({d['cpu_us_per_delivery']:.0f} us CPU each) vs bare curl "
      f"multi {c['items_per_second']:.0f}/s ({c['cpu_us_per_delivery']:.0f} us): "
      f"{d['items_per_second'] / c['items_per_second']:.2f}")
print(f"CPU per delivery by thread: drain io {d['io_us']:.0f}, store {d['store_us']:.0f}, sink "
      f"{d['sink_us']:.0f} us; bare loop client {c['client_us']:.0f}, sink {c['sink_us']:.0f} us")
print(f"the transport alone (HttpClient on Asio, no dispatcher, store or signing) {t['items_per_second']:.0f}/s, "
      f"client {t['client_us']:.0f} us: {t['items_per_second'] / c['items_per_second']:.2f} of bare curl multi")
# What the store costs the ratio: the CPU ratio with the store thread's share taken away.
print(f"CPU ratio (bare / drain) {c['cpu_us_per_delivery'] / d['cpu_us_per_delivery']:.2f}; "
      f"without the store thread's CPU {c['cpu_us_per_delivery'] / (d['cpu_us_per_delivery'] - d['store_us']):.2f}")
PY
fi
if part latency; then
  echo "== enqueue → receive latency at 1,000/s (bench/latency_at_rate.sh)"
  bench/latency_at_rate.sh "$build" 1000 30 "$runs"
fi
if part enqueue; then
  echo "== Engine::enqueue vs raw SQLite (bench/enqueue_vs_sqlite.sh)"
  bench/enqueue_vs_sqlite.sh "$build" "$runs"
fi
