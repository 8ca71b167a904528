#!/usr/bin/env bash
# How long the integrity check at open (PRAGMA quick_check) takes on a store of a given size:
# writes a store with callbackd's schema and ~4 KB callbacks up to SIZE_MB (none in flight, so
# start-up has no leases to recover), then times the check alone (sqlite3) with the file
# evicted from the page cache (cold) and again (warm), and a daemon start up to "listening".
#   bench/quick_check_time.sh [callbackd-binary] [SIZE_MB, default 1024]
set -euo pipefail
bin=$(realpath "${1:-build/release/service/callbackd}")
size_mb=${2:-1024}
work=$(mktemp -d "${TMPDIR:-/var/tmp}/callbackd-qc-XXXXXX")
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

wait_listening() {
  for _ in $(seq 1 30000); do
    grep -q 'event=listening' "$1" && return 0
    kill -0 "$2" 2>/dev/null || return 1
    sleep 0.01
  done
  return 1
}

# The schema, from the daemon itself.
"$bin" serve --listen=127.0.0.1:0 --data-dir="$work/data" >"$work/first.log" 2>&1 &
pid=$!
wait_listening "$work/first.log" "$pid"
kill -TERM "$pid"; wait "$pid" || true

db=$work/data/callbackd.db
rows=$((size_mb * 1024 / 4))
sqlite3 "$db" >/dev/null <<SQL
PRAGMA journal_mode=WAL;
INSERT INTO apps VALUES ('app_1', 'acme', 0, x'00', x'', NULL, 0);
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $rows)
INSERT INTO deliveries (seq, id, app_id, task_id, callback_url, state, due_at, attempts_made,
                        budget_used, created_at, host_key)
SELECT i, 'dlv_' || i, 'app_1', 'task_' || i, 'https://customer.example/' || i,
       CASE i % 3 WHEN 0 THEN 0 WHEN 1 THEN 2 ELSE 3 END, i, 0, 0, i,
       'https://customer.example:443' FROM n;
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $rows)
INSERT INTO delivery_bodies (seq, body) SELECT i, randomblob(3900) FROM n;
PRAGMA wal_checkpoint(TRUNCATE);
SQL
sync "$db"
echo "store: $(du -h "$db" | cut -f1), $rows deliveries"

# Only this file leaves the page cache (clean pages after the sync), nothing else's.
python3 -c 'import os,sys; fd=os.open(sys.argv[1], os.O_RDONLY); os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)' "$db"
for cache in cold warm; do
  start=$(date +%s.%N)
  result=$(sqlite3 "$db" 'PRAGMA quick_check(3)')
  echo "PRAGMA quick_check, $cache: $(echo "$(date +%s.%N) - $start" | bc) s ($result)"
done

start=$(date +%s.%N)
"$bin" serve --listen=127.0.0.1:0 --data-dir="$work/data" >"$work/second.log" 2>&1 &
pid=$!
wait_listening "$work/second.log" "$pid" || { cat "$work/second.log"; exit 1; }
echo "daemon start to listening: $(echo "$(date +%s.%N) - $start" | bc) s"
kill -TERM "$pid"; wait "$pid" || true
