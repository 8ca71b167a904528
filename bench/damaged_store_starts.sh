#!/usr/bin/env bash
# How many of nine damaged positions of a real store a callbackd binary starts on, and what
# the started ones then do (take a new callback, answer a list). Builds the store with the
# daemon itself (400 callbacks, every tenth with a 9 KB body: overflow pages), stops it,
# and overwrites one 4 KiB page with noise per copy: pages 1-4, 1/4, 1/2, 3/4, last-1, last.
#   bench/damaged_store_starts.sh [callbackd-binary]
set -euo pipefail
bin=$(realpath "${1:-build/release/service/callbackd}")
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

# Starts the daemon on a data dir; prints the port once listening, or "exit" if it stops.
start() {
  "$bin" serve --listen=127.0.0.1:0 --data-dir="$1" --allow-networks=127.0.0.0/8 >"$1.log" 2>&1 &
  echo $! >"$1.pid"
  for _ in $(seq 1 500); do
    if port=$(grep -o 'event=listening address=[^ ]*' "$1.log" | sed 's/.*://'); then
      echo "$port"; return
    fi
    kill -0 "$(cat "$1.pid")" 2>/dev/null || { echo exit; return; }
    sleep 0.02
  done
  echo timeout
}
stop() { kill -TERM "$(cat "$1.pid")" 2>/dev/null || true; wait "$(cat "$1.pid")" 2>/dev/null || true; }
post() { curl -s -o /dev/null -w '%{http_code}' -X POST "localhost:$1$2" -d "$3"; }

port=$(start "$work/data")
app=$(curl -s -X POST "localhost:$port/v1/apps" -d '{"name":"acme"}' |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["app_id"])')
for i in $(seq 0 399); do
  size=600; ((i % 10 == 0)) && size=9000
  error=$(head -c "$size" /dev/zero | tr '\0' e)
  post "$port" /v1/callbacks \
    "{\"app_id\":\"$app\",\"callback_url\":\"http://127.0.0.1:9/x\",\"task_id\":\"t$i\",\"status\":\"failed\",\"error\":\"$error\"}" >/dev/null
done
stop "$work/data"

db=$work/data/callbackd.db
pages=$(($(stat -c %s "$db") / 4096))
started=0; took=0; list_failed=0; total=0
for page in 1 2 3 4 $((pages / 4)) $((pages / 2)) $((3 * pages / 4)) $((pages - 1)) $pages; do
  copy=$work/p$page
  cp -a "$work/data" "$copy"
  python3 - "$copy/callbackd.db" "$page" <<'PY'
import random, sys
path, page = sys.argv[1], int(sys.argv[2])
noise = random.Random(page).randbytes(4096)
with open(path, "r+b") as f:
    f.seek((page - 1) * 4096); f.write(noise)
PY
  total=$((total + 1))
  port=$(start "$copy")
  if [[ $port =~ ^[0-9]+$ ]]; then
    started=$((started + 1))
    code=$(post "$port" /v1/callbacks \
      "{\"app_id\":\"$app\",\"callback_url\":\"http://127.0.0.1:9/x\",\"task_id\":\"new\",\"status\":\"failed\",\"error\":\"e\"}")
    [[ $code == 202 ]] && took=$((took + 1))
    list=$(curl -s -o /dev/null -w '%{http_code}' "localhost:$port/v1/callbacks?limit=1000")
    [[ $list == 200 ]] || list_failed=$((list_failed + 1))
    echo "page $page/$pages: started; new callback $code; list $list"
    stop "$copy"
  else
    echo "page $page/$pages: refused ($(grep -o 'reason="[^"]\{0,90\}' "$copy.log" | head -1))"
  fi
done
echo "started on $started of $total damaged positions; $took took a new callback; $list_failed failed a list"
