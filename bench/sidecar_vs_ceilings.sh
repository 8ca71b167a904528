#!/usr/bin/env bash
# The sidecar under load against the ceilings of this machine, side by side in one run
# (alternating RUNS times; medians):
#   sidecar   callbackd-load flat out, 64 connections, N unique tasks → the daemon (SQLite in a
#             temp dir) → callbacks to an nginx 204 sink: accepted/s and delivered/s (first
#             send to last delivery, counted from the daemon's /metrics);
#   HTTP      wrk, 64 connections, posting the same bodies to the same nginx;
#   delivery  bare libcurl multi → the same nginx, 32 in flight (callbackd_dispatch_bench
#             BM_BareCurlMulti with SINK_URL);
#   the tool  wrk posting the same tasks to a fresh daemon, against callbackd-load's accepted/s
#             (the load tool must not be what limits the sidecar figure).
#   bench/sidecar_vs_ceilings.sh [build-dir] [N=20000] [RUNS=3]
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build/release}
n=${2:-20000}
runs=${3:-3}
scripts/install-deps bench >/dev/null
source bench/lib.sh
work=$(mktemp -d)
trap cleanup EXIT
start_nginx

wrk_rate() { sed -n 's/^Requests\/sec: *\([0-9.]*\).*/\1/p'; }
app_of() { curl -s -X POST "$1/v1/apps" -d '{"name":"wrk"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["app_id"])'; }

for run in $(seq "$runs"); do
  start_daemon "$build/service/callbackd" "sidecar$run"
  "$build/bench/callbackd-load" --daemon "$daemon_url" --receiver-url "$nginx_url" --rate max \
    --connections 64 --count "$n" --drain-timeout 120 --quiet --json "$work/load.json" >/dev/null
  json_field "$work/load.json" '["accepted_per_s"]' >>"$work/accepted"
  json_field "$work/load.json" '["delivered_per_s"]' >>"$work/delivered"
  kill "$daemon_pid"; wait "$daemon_pid" 2>/dev/null || true

  wrk -c64 -t2 -d5s -s bench/wrk_post_task.lua "${nginx_url%/hook}" -- app "$nginx_url" "n$run" |
    wrk_rate >>"$work/wrk_nginx"
  SINK_URL=$nginx_url "$build/bench/callbackd_dispatch_bench" --benchmark_filter=BM_BareCurlMulti \
    --benchmark_format=json 2>/dev/null |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["benchmarks"][0]["items_per_second"])' \
      >>"$work/curl"

  start_daemon "$build/service/callbackd" "wrk$run"
  wrk -c64 -t2 -d5s -s bench/wrk_post_task.lua "$daemon_url" -- "$(app_of "$daemon_url")" \
    "$nginx_url" "w$run" | wrk_rate >>"$work/wrk_daemon"
  kill "$daemon_pid"; wait "$daemon_pid" 2>/dev/null || true
  echo "run $run: sidecar accepted $(tail -1 "$work/accepted")/s delivered $(tail -1 "$work/delivered")/s;" \
    "wrk→nginx $(tail -1 "$work/wrk_nginx")/s; curl multi→nginx $(tail -1 "$work/curl" | cut -d. -f1)/s;" \
    "wrk→daemon $(tail -1 "$work/wrk_daemon")/s" >&2
done

accepted=$(median <"$work/accepted"); delivered=$(median <"$work/delivered")
wrk_nginx=$(median <"$work/wrk_nginx"); curl=$(median <"$work/curl"); wrk_daemon=$(median <"$work/wrk_daemon")
awk -v a="$accepted" -v d="$delivered" -v w="$wrk_nginx" -v c="$curl" -v wd="$wrk_daemon" -v r="$runs" 'BEGIN {
  printf "medians of %d runs:\n", r
  printf "sidecar accepted and delivered %.0f/s (accepted %.0f/s) vs wrk → nginx %.0f/s: %.2f\n", d, a, w, d / w
  printf "sidecar delivered %.0f/s vs bare curl multi → nginx %.0f/s: %.2f\n", d, c, d / c
  printf "callbackd-load accepted %.0f/s vs wrk → the daemon %.0f/s: %.2f (near 1: the tool is not the limit)\n", a, wd, a / wd
}'
