#!/usr/bin/env bash
# perf/callgrind_append.sh — instructions per append of one runneld shard,
# counted by callgrind (repeatable to about ±0.5%, unlike timings here).
#
#   perf/callgrind_append.sh [RUNNELD] [-- wire_bench options]
#   perf/callgrind_append.sh build/release/tools/runneld -- --record-bytes 1024 --batch-records 100
#
# Starts RUNNELD (default build/release/tools/runneld) under
# `valgrind --tool=callgrind` with one shard and instrumentation off, turns it
# on only while perf/wire_bench appends for 3 s (window 16, 4 streams, 100 ×
# 100 B unless told otherwise), then stops runneld by PID. Prints the
# instructions per append and per record (callgrind's total over the appends
# /metrics counted in the same window) and the top functions; the profile
# stays in callgrind.out.append for callgrind_annotate. Needs valgrind.
# CALLGRIND_AUTH=1: runneld runs with --auth and wire_bench signs in with a
# token scoped to its bucket (the cost of access checks per append).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
runneld=$repo/build/release/tools/runneld
if [[ $# -gt 0 && $1 != -- ]]; then runneld=$1; shift; fi
[[ ${1:-} == -- ]] && shift
bench_args=(--seconds 3 --window 16 --record-bytes 100 --batch-records 100 --streams 4 "$@")
port=${CALLGRIND_PORT:-17760}
out=$PWD/callgrind.out.append
scratch=$(mktemp -d /var/tmp/runnel-callgrind.XXXXXX)
pid=
cleanup() {
  if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid"; fi
  rm -rf "$scratch"
}
trap cleanup EXIT

auth_args=()
[[ ${CALLGRIND_AUTH:-0} == 1 ]] && auth_args=(--auth)
valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$out" "$runneld" --data-dir "$scratch/data" \
  --shards 1 --listen "127.0.0.1:$port" --admin-listen "127.0.0.1:$((port + 1))" --log-level warn "${auth_args[@]}" \
  > "$scratch/log" 2>&1 &
pid=$!
for _ in $(seq 600); do
  curl -s "127.0.0.1:$((port + 1))/ready" 2> /dev/null | grep -q true && break
  sleep 0.1
done
admin_auth=()
if [[ ${CALLGRIND_AUTH:-0} == 1 ]]; then
  root=$(cat "$scratch/data/root-token")
  admin_auth=(-H "Authorization: Bearer $root")
  token=$(curl -s "${admin_auth[@]}" -d '{"id":"bench","buckets":"bench","streams":"*","ops":["read","append","create-stream","create-bucket"]}' \
    "127.0.0.1:$((port + 1))/v1/tokens" | sed 's/.*"token":"\([^"]*\)".*/\1/')
  bench_args+=(--token "$token")
fi
metric() { curl -s "${admin_auth[@]}" "127.0.0.1:$((port + 1))/metrics" | awk -v m="$1" '$1 ~ "^" m "({|$)" {s += $2} END {print s + 0}'; }
appends=$(metric runnel_log_appends_total) records=$(metric runnel_log_records_appended_total)
callgrind_control -i on "$pid" > /dev/null
"$repo/build/release/perf/wire_bench" --port "$port" "${bench_args[@]}"
callgrind_control -i off "$pid" > /dev/null
appends=$(($(metric runnel_log_appends_total) - appends)) records=$(($(metric runnel_log_records_appended_total) - records))
kill -TERM "$pid"
wait "$pid" || true
pid=
if ((appends == 0)); then
  echo "callgrind_append: no append was counted; runneld said:" >&2
  cat "$scratch/log" >&2
  exit 1
fi
total=$(callgrind_annotate "$out" | awk '/PROGRAM TOTALS/ && !t {gsub(",", "", $1); t = $1} END {print t}')
awk -v t="$total" -v a="$appends" -v r="$records" \
  'BEGIN {printf "%d appends, %d records: %.0f instructions per append, %.0f per record\n", a, r, t / a, t / r}'
callgrind_annotate "$out" | sed -n '/file:function/,$p' | sed -n '3,12p' | cut -c1-160
