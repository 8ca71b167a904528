#!/usr/bin/env bash
# Signing at 64 B, 1 KiB and 16 KiB: callbackd's keyed HMAC-SHA256 against
# `openssl speed -hmac sha256` on the same machine, in the same run. Alternates the two for
# several rounds and prints the median throughput of each and their ratio (goal: >= 0.9).
#   bench/sign_vs_openssl.sh [build-dir] [rounds]
set -euo pipefail
build=${1:-build/release}
rounds=${2:-5}
bench="$build/bench/callbackd_sign_bench"
[[ -x "$bench" ]] || { echo "missing $bench: build the release preset first" >&2; exit 1; }

median() { sort -g | awk '{v[NR]=$1} END {print (NR%2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }

printf '%-8s %16s %16s %8s\n' bytes "callbackd MB/s" "openssl MB/s" ratio
for size in 64 1024 16384; do
  ours=(); theirs=()
  for ((r = 0; r < rounds; r++)); do
    ours+=("$("$bench" --benchmark_filter="^BM_HmacSha256/$size\$" --benchmark_min_time=1 \
      --benchmark_format=json 2>/dev/null |
      python3 -c 'import json,sys; print(json.load(sys.stdin)["benchmarks"][0]["bytes_per_second"])')")
    theirs+=("$(openssl speed -seconds 1 -bytes "$size" -mr -hmac sha256 2>/dev/null |
      awk -F: '/^\+F:/ {print $4}')")
  done
  a=$(printf '%s\n' "${ours[@]}" | median)
  b=$(printf '%s\n' "${theirs[@]}" | median)
  awk -v s="$size" -v a="$a" -v b="$b" \
    'BEGIN {printf "%-8s %16.1f %16.1f %8.2f\n", s, a / 1e6, b / 1e6, a / b}'
done
