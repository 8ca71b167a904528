#!/usr/bin/env bash
# Soak: the daemon (SQLite in a temp dir, default settings) under callbackd-load at a steady
# rate for MINUTES, with hostile customers mixed in — 5 % of callbacks to a receiver that never
# answers, 5 % to one answering after 3 s, 5 % to one answering 500 (each its own port, so its
# own host). Reports per minute the daemon's RSS and open fds (from /proc), enqueue→receive
# latency percentiles of the healthy callbacks, duplicates and bad signatures; at the end
# anything lost; writes the JSON summary and the picture (SVG) to OUT.
# Not part of the tests.
#   bench/soak.sh [MINUTES=30] [RATE=500] [build-dir] [OUT=soak-<time>]
set -euo pipefail
cd "$(dirname "$0")/.."
minutes=${1:-30}
rate=${2:-500}
build=${3:-build/release}
out=${4:-soak-$(date -u +%Y%m%dT%H%M%SZ)}
source bench/lib.sh
work=$(mktemp -d)
trap cleanup EXIT
mkdir -p "$out"
start_daemon "$build/service/callbackd" soak
status=0
"$build/bench/callbackd-load" --daemon "$daemon_url" --rate "$rate" \
  --duration $((minutes * 60)) --connections 64 --receiver-mix silent=5,slow=5,fail=5 \
  --slow-seconds 3 --watch-pid "$daemon_pid" --report-every 60 --drain-timeout 30 \
  --json "$out/soak.json" --svg "$out/soak.svg" >/dev/null 2>"$out/progress.log" || status=$?
curl -s "$daemon_url/metrics" | grep -E '^callbackd_(deliveries|attempts_total)' >"$out/metrics.txt" || true
python3 - "$out/soak.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
print("minute  delivered  p50 ms  p99 ms  p999 ms  max ms  RSS MiB  fds  duplicates  bad signatures")
for i, m in enumerate(s["intervals"], 1):
    l = m["latency_ms"]
    print(f"{i:6d}  {m['delivered']:9d}  {l['p50']:6.2f}  {l['p99']:6.2f}  {l['p999']:7.2f}  "
          f"{l['max']:6.1f}  {m['daemon_rss_kib'] / 1024:7.1f}  {m['daemon_fds']:3d}  "
          f"{m['duplicates']:10d}  {m['bad_signature']:14d}")
l, e = s["delivery_latency_ms"], s["errors"]
print(f"whole run: sent {s['sent']}, accepted {s['accepted']}, healthy delivered {s['delivered']}; "
      f"latency p50 {l['p50']} p99 {l['p99']} p999 {l['p999']} max {l['max']} ms; "
      f"RSS max {s['daemon_process']['rss_kib_max'] / 1024:.1f} MiB, fds max {s['daemon_process']['fds_max']}")
print("errors: " + ", ".join(f"{k} {v}" for k, v in e.items()) +
      "; requests at the hostile receivers: " +
      ", ".join(f"{k} {v}" for k, v in s.get("hostile_requests", {}).items()))
PY
# A daemon that has run half an hour with hostile backlogs must still stop promptly on SIGTERM
# (attempts in flight finish within attempt_timeout, 10 s).
running() { [[ -e /proc/$1 && "$(ps -o stat= -p "$1")" != Z* ]]; }  # exited: gone or a zombie
stop_started=$(date +%s.%N)
kill -TERM "$daemon_pid"
for _ in $(seq 600); do running "$daemon_pid" || break; sleep 0.1; done
if running "$daemon_pid"; then
  echo "the daemon did not stop within 60 s of SIGTERM"; status=1
else
  echo "the daemon stopped $(awk -v a="$stop_started" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }') s after SIGTERM"
fi
echo "summary: $out/soak.json  picture: $out/soak.svg  progress: $out/progress.log  metrics: $out/metrics.txt"
exit "$status"
