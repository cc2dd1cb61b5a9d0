#!/usr/bin/env bash
# Durable append bandwidth of the storage engine (no network) next to fio's
# O_DIRECT sequential writes of the same size and queue depth on the same
# disk, in one run. Prints each figure and ours as a fraction of fio's.
#
#   perf/engine_vs_fio.sh [DIR] [SECONDS]
#
# DIR must be on the disk under test (default: ./bench-data). Needs a
# Release build (cmake --preset release && cmake --build --preset release).
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-./bench-data}
seconds=${2:-5}
bench=build/release/perf/log_bench
command -v fio >/dev/null || apt-get install -y -qq fio >/dev/null
[[ -x $bench ]] || { echo "build first: cmake --preset release && cmake --build --preset release" >&2; exit 1; }
mkdir -p "$dir"

fio_mib() {  # fio_mib BS DEPTH EXTRA... -> MiB/s
  fio --name=seqw --filename="$dir/fio.dat" --size=4G --rw=write --bs="$1" --iodepth="$2" --direct=1 \
      --ioengine=io_uring --time_based --runtime="$seconds" --output-format=json "${@:3}" |
    python3 -c 'import json,sys; print(round(json.load(sys.stdin)["jobs"][0]["write"]["bw"]/1024))'
}

echo "fio: 4 MiB O_DIRECT sequential writes, queue depth 4 (the engine's flush size and flushes in flight)"
fio_dsync=$(fio_mib 4M 4 --sync=dsync)
fio_plain=$(fio_mib 4M 4)
echo "  fio RWF_DSYNC-equivalent (O_DSYNC): ${fio_dsync} MiB/s    fio without sync: ${fio_plain} MiB/s"
rm -f "$dir/fio.dat"

for spec in "100 1000" "1024 1000" "16384 60"; do
  set -- $spec
  line=$($bench --dir "$dir/log" --record-bytes "$1" --batch-records "$2" --streams 1 --seconds "$seconds" --inflight 8)
  mbs=$(sed -n 's/.* \([0-9.]*\) MB\/s payload.*/\1/p' <<<"$line")
  ratio=$(python3 -c "print(f'{$mbs / 1.048576 / $fio_dsync:.0%}')")
  echo "  $line"
  echo "    => ${ratio} of fio's durable bandwidth (payload bytes only)"
done
rm -rf "$dir/log"
