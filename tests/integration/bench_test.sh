#!/usr/bin/env bash
# runnel-bench against a real runneld (two shards, loopback ports of its
# own, stopped by PID): short runs at full speed, at a fixed rate with
# fan-out, with the producers spread over many client connections, with one
# connection per client (the server forwards), and catching up on a backlog
# must each end with every produced record consumed exactly once, and say so
# in their JSON report.
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

# A warm-up runs the same load but counts in nothing but the exactly-once
# check: about half of what was produced in 1 s + 1 s is in the figures.
out=$(timeout 120 "$bench" --server "127.0.0.1:$port" --producers 2 --consumers 1 --streams 2 \
  --record-size 100 --batch-records 10 --duration 1 --warmup 1 --rate 20000 --json --quiet)
check "warm-up" "$(tail -n 1 <<<"$out")"
produced=$(sed -n 's/.*"produced":\([0-9]*\).*/\1/p' <<<"$out")
counted=$(sed -n 's/.*"duration_s":\([0-9.]*\),"append":{"records_per_s":\([0-9]*\).*/\1 * \2/p' <<<"$out")
share=$(awk "BEGIN {printf \"%d\", 100 * $counted / $produced}")
if [[ $out != *'"warmup_s":1.000,'* || $share -lt 30 || $share -gt 70 ]]; then
  echo "warm-up: expected warmup_s 1 and about half of $produced records counted, got $share%: $out"
  exit 1
fi

# Forty producers on twenty clients (each with a connection per shard).
out=$(timeout 120 "$bench" --server "127.0.0.1:$port" --connections 20 --producers 40 --consumers 2 --streams 8 \
  --record-size 200 --batch-records 20 --window 2 --duration 1 --json --quiet)
check "20 connections" "$(tail -n 1 <<<"$out")"
[[ $out == *'"connections":20,'* ]] || { echo "20 connections: no \"connections\":20 in $out"; exit 1; }
# Catch-up: subscribed only once the producers are done, the consumers read
# the backlog from seq_num 0; the report has a catch_up section, no e2e.
# The rate keeps the backlog small (about 20 MB) so the run stays short.
out=$(timeout 120 "$bench" --server "127.0.0.1:$port" --catch-up --producers 2 --consumers 2 --streams 4 \
  --record-size 200 --batch-records 50 --duration 1 --rate 100000 --json --quiet)
check "catch-up" "$(tail -n 1 <<<"$out")"
produced=$(sed -n 's/.*"produced":\([0-9]*\).*/\1/p' <<<"$out")
if [[ $out != *"\"catch_up\":{\"records\":$produced,"* || $out == *'"e2e"'* ]]; then
  echo "catch-up: expected a catch_up section with all $produced records and no e2e: $out"
  exit 1
fi

# One connection per client instead of one per shard: every append arrives
# on the shard that connection landed on, which forwards half of them (the
# streams of the other shard) and answers for them; each shard's log still
# takes its own streams' appends.
metric() {  # metric NAME SHARD: its value on the running server, 0 if absent
  curl -s "http://127.0.0.1:$admin_port/metrics" | awk -v m="$1{shard=\"$2\"}" '$1 == m {print $2; f = 1} END {if (!f) print 0}'
}
recv0=$(metric runnel_append_seconds_count 0) recv1=$(metric runnel_append_seconds_count 1)
log0=$(metric runnel_log_appends_total 0) log1=$(metric runnel_log_appends_total 1)
out=$(timeout 120 "$bench" --server "127.0.0.1:$port" --one-connection --producers 2 --consumers 1 --streams 8 \
  --record-size 100 --batch-records 10 --duration 1 --json --quiet)
check "one connection" "$(tail -n 1 <<<"$out")"
recv0=$(($(metric runnel_append_seconds_count 0) - recv0)) recv1=$(($(metric runnel_append_seconds_count 1) - recv1))
log0=$(($(metric runnel_log_appends_total 0) - log0)) log1=$(($(metric runnel_log_appends_total 1) - log1))
if ((recv0 * recv1 != 0 || recv0 + recv1 != log0 + log1 || log0 == 0 || log1 == 0)); then
  echo "one connection: appends received per shard $recv0/$recv1, logged $log0/$log1: expected one shard to receive all"
  exit 1
fi
echo "one connection: shard $((recv0 > 0 ? 0 : 1)) received all $((recv0 + recv1)) appends, logs took $log0 and $log1"

kill -TERM "$pid"
wait "$pid"
pid=
