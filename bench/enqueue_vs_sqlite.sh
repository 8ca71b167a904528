#!/usr/bin/env bash
# Engine::enqueue (the whole path: URL check, serialization, quota, commit) against raw SQLite
# inserts of the same rows, synchronous=FULL, side by side in one run (RUNS repetitions,
# medians; repetitions interleaved at random so that a busy disk hits both sides alike), with
# the ceilings fixed before the run:
#   async (4096 in flight)  vs raw 1000-row transactions;
#   8 blocking callers      vs single-row commits/s × the rows per commit the engine reached.
#   bench/enqueue_vs_sqlite.sh [build-dir] [RUNS=5]
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build/release}
runs=${2:-5}
out=$(mktemp)
trap 'rm -f "$out"' EXIT
"$build/bench/callbackd_enqueue_bench" \
  --benchmark_filter='BM_EngineEnqueue|BM_RawBatchedInsert/(1|1000)/' \
  --benchmark_repetitions="$runs" --benchmark_enable_random_interleaving=true \
  --benchmark_report_aggregates_only=true \
  --benchmark_format=json >"$out" 2>/dev/null
python3 - "$out" <<'PY'
import json, re, sys
runs = json.load(open(sys.argv[1]))["benchmarks"]
def get(pattern):  # the median when repeated, else the one run
    rows = [b for b in runs if re.fullmatch(pattern, b["run_name"])]
    return next((b for b in rows if b.get("aggregate_name") == "median"), rows[0])
async_ = get(r"BM_EngineEnqueueAsync/real_time")
blocking = get(r"BM_EngineEnqueue/real_time/threads:8")
raw1000 = get(r"BM_RawBatchedInsert/1000/real_time")
raw1 = get(r"BM_RawBatchedInsert/1/real_time")
ceiling = raw1["items_per_second"] * blocking["rows_per_commit"]
print(f"async: Engine::enqueue_async {async_['items_per_second']:.0f}/s "
      f"({async_['rows_per_commit']:.0f} rows/commit) vs raw 1000-row transactions "
      f"{raw1000['items_per_second']:.0f}/s: {async_['items_per_second'] / raw1000['items_per_second']:.2f}")
print(f"8 blocking callers: Engine::enqueue {blocking['items_per_second']:.0f}/s "
      f"({blocking['rows_per_commit']:.1f} rows/commit) vs single-row commits "
      f"{raw1['items_per_second']:.0f}/s x {blocking['rows_per_commit']:.1f} = {ceiling:.0f}/s: "
      f"{blocking['items_per_second'] / ceiling:.2f}")
PY
