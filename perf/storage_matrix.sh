#!/usr/bin/env bash
# The storage engine's figures for perf/RESULTS.md, in one run on one disk:
# fio's O_DIRECT sequential write bandwidth (same write size and queue depth),
# durable append throughput by record size and stream count, ack latency at a
# fixed offered load, read-back throughput from disk, and recovery of a 4 GiB log.
#
#   perf/storage_matrix.sh [DIR] [SECONDS]     (Release build first)
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-./bench-data}
seconds=${2:-3}
bench=build/release/perf/log_bench
command -v fio >/dev/null || apt-get install -y -qq fio >/dev/null
[[ -x $bench ]] || { echo "build first: cmake --preset release && cmake --build --preset release" >&2; exit 1; }
mkdir -p "$dir"

fio_mib=$(fio --name=seqw --filename="$dir/fio.dat" --size=4G --rw=write --bs=4M --iodepth=4 --direct=1 \
  --ioengine=io_uring --sync=dsync --time_based --runtime="$seconds" --output-format=json |
  python3 -c 'import json,sys; print(round(json.load(sys.stdin)["jobs"][0]["write"]["bw"]/1024))')
rm -f "$dir/fio.dat"
echo "fio, 4 MiB O_DSYNC O_DIRECT sequential writes, queue depth 4: ${fio_mib} MiB/s"
echo
echo "| record | streams | records/s | payload MB/s | % of fio | ack p50 / p99 (µs) |"
echo "| --- | --- | --- | --- | --- | --- |"
field() { sed -n "s|.* \([0-9.]*\) $1.*|\1|p" <<<"$2"; }
for spec in "100 1000" "1024 1000" "16384 60"; do
  set -- $spec
  for streams in 1 100 10000; do
    line=$($bench --dir "$dir/log" --record-bytes "$1" --batch-records "$2" --streams "$streams" \
      --seconds "$seconds" --inflight 16)
    rps=$(field "records/s" "$line")
    mbs=$(field "MB/s payload" "$line")
    p50=$(sed -n 's/.*p50=\([0-9]*\)us.*/\1/p' <<<"$line")
    p99=$(sed -n 's/.* p99=\([0-9]*\)us.*/\1/p' <<<"$line")
    pct=$(python3 -c "print(f'{$mbs / 1.048576 / $fio_mib:.0%}')")
    echo "| $1 B × $2/batch | $streams | $rps | $mbs | $pct | $p50 / $p99 |"
  done
done
echo
echo "Ack latency at a fixed offered load (1 KiB records, 100 per batch, 100 streams):"
for rate in 2000 8000; do
  $bench --dir "$dir/log" --record-bytes 1024 --batch-records 100 --streams 100 --seconds "$seconds" --rate "$rate" |
    sed 's/^/  /'
done
echo
echo "Read-back from disk after writing (1 KiB records, 10 streams):"
$bench --dir "$dir/log" --record-bytes 1024 --batch-records 1000 --streams 10 --seconds "$seconds" --read |
  sed 's/^/  /'
echo
echo "Recovery of a ~4 GiB log (16 KiB records):"
$bench --dir "$dir/log" --record-bytes 16384 --batch-records 60 --streams 100 --seconds 60 --inflight 16 \
  --stop-after-bytes 4294967296 >/dev/null
$bench --dir "$dir/log" --recover | sed 's/^/  /'
rm -rf "$dir/log"
