# Helpers for the side-by-side scripts in bench/: a daemon, an nginx 204 sink, a Redis, all on
# loopback in one temporary directory ($work) that the caller's EXIT trap removes (cleanup).
#   source bench/lib.sh; work=$(mktemp -d); trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  [[ -n "${redis_port:-}" ]] && redis-cli -p "$redis_port" shutdown nosave >/dev/null 2>&1
  [[ -n "${work:-}" ]] && rm -rf "$work"
  return 0
}

wait_http() {  # URL: until it answers at all
  for _ in $(seq 200); do curl -s -o /dev/null "$1" && return 0; sleep 0.05; done
  echo "no answer from $1" >&2; return 1
}

# start_daemon BINARY NAME [flags…]: daemon_url, daemon_pid; SQLite in $work/NAME.
start_daemon() {
  local binary=$1 name=$2; shift 2
  local port; port=$(free_port)
  "$binary" serve --data-dir "$work/$name" --listen "127.0.0.1:$port" \
    --allow-networks 127.0.0.0/8 --log-level warn "$@" 2>"$work/$name.log" &
  daemon_pid=$!; pids+=("$daemon_pid")
  daemon_url="http://127.0.0.1:$port"
  wait_http "$daemon_url/healthz"
}

# start_nginx: nginx_url, a sink answering every request 204 (one worker per core).
start_nginx() {
  local port; port=$(free_port)
  mkdir -p "$work/nginx"
  cat >"$work/nginx/nginx.conf" <<CONF
worker_processes auto;
daemon off;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $work/nginx;
  proxy_temp_path $work/nginx; fastcgi_temp_path $work/nginx;
  uwsgi_temp_path $work/nginx; scgi_temp_path $work/nginx;
  keepalive_requests 1000000;
  server { listen 127.0.0.1:$port; location / { return 204; } }
}
CONF
  nginx -c "$work/nginx/nginx.conf" -p "$work/nginx" &
  pids+=($!)
  nginx_url="http://127.0.0.1:$port/hook"
  wait_http "$nginx_url"
}

# start_redis: redis_port; durable like callbackd's store (every write fsynced before it is
# answered: appendfsync always), nothing else kept.
start_redis() {
  redis_port=$(free_port)
  redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly yes \
    --appendfsync always --dir "$work" --daemonize yes --logfile "$work/redis.log" >/dev/null
  for _ in $(seq 100); do redis-cli -p "$redis_port" ping >/dev/null 2>&1 && return 0; sleep 0.05; done
  echo "redis did not start" >&2; return 1
}

# cpu_seconds PID…: user + system CPU the processes have used so far (all their threads).
cpu_seconds() {
  local ticks=0 pid
  for pid in "$@"; do
    ticks=$((ticks + $(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null || echo 0)))
  done
  awk -v t="$ticks" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.2f\n", t / hz }'
}
# nginx_cpu: the CPU seconds start_nginx's workers have used so far.
nginx_cpu() {
  local workers
  mapfile -t workers < <(pgrep -P "$(cat "$work/nginx/nginx.pid")")
  cpu_seconds "${workers[@]}"
}
# run_timed FILE COMMAND…: runs it; FILE gets the user + system CPU seconds it and its children used.
run_timed() {
  local file=$1; shift
  local TIMEFORMAT='%3U %3S'
  { time "$@" 2>&3; } 3>&2 2>"$file.time"
  awk '{ printf "%.3f\n", $1 + $2 }' "$file.time" >"$file"
}

median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
json_field() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval("d"+sys.argv[2]))' "$@"; }
