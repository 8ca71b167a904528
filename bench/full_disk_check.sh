#!/usr/bin/env bash
# What a callbackd binary answers when its disk fills and when space returns. "Full" is a
# file size limit (RLIMIT_FSIZE) set on the running daemon at its WAL's size with prlimit, so
# no store file can grow; SIGXFSZ is ignored as a full disk gives no signal. Prints the
# status, Retry-After and error of an enqueue, an app creation and /readyz, full and after.
#   bench/full_disk_check.sh [callbackd-binary]
set -euo pipefail
bin=$(realpath "${1:-build/release/service/callbackd}")
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

(trap '' XFSZ; exec "$bin" serve --listen=127.0.0.1:0 --data-dir="$work/data" \
  --allow-networks=127.0.0.0/8 >"$work/log" 2>&1) &
pid=$!
for _ in $(seq 1 500); do grep -q 'event=listening' "$work/log" && break; sleep 0.02; done
port=$(grep -o 'event=listening address=[^ ]*' "$work/log" | sed 's/.*://')

show() {  # METHOD PATH [BODY]
  local out
  out=$(curl -s -D "$work/headers" -X "$1" "localhost:$port$2" ${3:+-d "$3"})
  printf '%-5s %-14s %s retry-after=%s %s\n' "$1" "$2" \
    "$(head -1 "$work/headers" | cut -d' ' -f2)" \
    "$(grep -i '^retry-after:' "$work/headers" | tr -d '\r' | cut -d' ' -f2)" "${out:0:110}"
}
callback() {
  printf '{"app_id":"%s","callback_url":"http://127.0.0.1:9/x","task_id":"%s","status":"failed","error":"%s"}' \
    "$app" "$1" "$(head -c "$2" /dev/zero | tr '\0' e)"
}

app=$(curl -s -X POST "localhost:$port/v1/apps" -d '{"name":"acme"}' |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["app_id"])')
show POST /v1/callbacks "$(callback t0 16)"
show GET /readyz
prlimit --pid "$pid" --fsize="$(stat -c %s "$work/data/callbackd.db-wal")":unlimited
echo "-- disk full"
callback t1 262144 >"$work/big.json"
show POST /v1/callbacks "@$work/big.json"
show POST /v1/apps '{"name":"beta"}'
show GET /readyz
prlimit --pid "$pid" --fsize=unlimited:unlimited
echo "-- space back"
show GET /readyz
show POST /v1/callbacks "$(callback t1 16)"
