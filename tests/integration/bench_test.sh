#!/usr/bin/env bash
# runnel-bench against a real runneld (two shards, loopback ports of its
# own, stopped by PID): a short run at full speed with fan-out and a short
# run at a fixed rate must each end with every produced record consumed
# exactly once, and say so in their JSON report.
# Usage: bench_test.sh RUNNELD RUNNEL_BENCH
set -euo pipefail
runneld=$1 bench=$2
# shellcheck source=runneld_scratch.sh
source "$(dirname "$0")/runneld_scratch.sh"

start_runneld "$runneld"

check() {  # check NAME JSON: exit 0 was required already; the report must agree.
  local name=$1 json=$2
  produced=$(sed -n 's/.*"produced":\([0-9]*\).*/\1/p' <<<"$json")
  consumed=$(sed -n 's/.*"consumed":\([0-9]*\).*/\1/p' <<<"$json")
  if [[ $json != *'"exactly_once":true'* || $json != *'"errors":0'* || -z $produced || $produced -eq 0 ]]; then
    echo "$name: bad report: $json"
    exit 1
  fi
  echo "$name: produced $produced, consumed $consumed, exactly once"
}

# Four producers and three consumers sharing eight streams.
out=$(timeout 120 "$bench" --server "127.0.0.1:$port" --producers 4 --consumers 3 --streams 8 \
  --record-size 200 --batch-records 50 --duration 2 --json --quiet)
check "full speed" "$(tail -n 1 <<<"$out")"
# More consumers than streams: fan-out, each stream read by two subscribers.
out=$(timeout 120 "$bench" --server "127.0.0.1:$port" --producers 2 --consumers 4 --streams 2 \
  --record-size 100 --batch-records 10 --duration 2 --rate 20000 --json --quiet)
check "fixed rate, fan-out" "$(tail -n 1 <<<"$out")"
consumed=$(sed -n 's/.*"consumed":\([0-9]*\).*/\1/p' <<<"$out")
produced=$(sed -n 's/.*"produced":\([0-9]*\).*/\1/p' <<<"$out")
[[ $consumed -eq $((2 * produced)) ]] || { echo "fan-out: consumed $consumed, expected $((2 * produced))"; exit 1; }

kill -TERM "$pid"
wait "$pid"
pid=
