#!/usr/bin/env bash
# The console's browser test on a store of a million delivered callbacks (the issue's "a dead
# callback among a million"); the ctest run seeds 100,000 to stay quick. Prints the seeding
# time and the median latency of GET /v1/stats and of the dead-deliveries list at that size.
#   bench/console_million.sh [build/release] [count]
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build/release}
count=${2:-1000000}
tests/console/npm-ci-once
node tests/console/browser_test.mjs --daemon "$build/service/callbackd" \
  --seed-store "$build/tests/console/callbackd_seed_store" --seed-count "$count" \
  --screenshots "$build/console-screenshots-million"
