# Sourced by the shell-script integration tests: a scratch dir removed on
# exit, and start_runneld RUNNELD, which starts it there on loopback ports of
# its own (2 shards), sets $pid, $port (binary protocol) and $admin_port once it is ready,
# and has it killed by PID on exit if the test did not stop it.
scratch=$(mktemp -d)
pid=
cleanup() {
  if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid"; fi
  rm -rf "$scratch"
}
trap cleanup EXIT

start_runneld() {
  "$1" --data-dir "$scratch/data" --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 --shards 2 \
    >"$scratch/runneld.out" 2>"$scratch/runneld.err" &
  pid=$!
  port=
  for _ in $(seq 1 200); do
    port=$(sed -n 's/^runneld ready .*binary=127\.0\.0\.1:\([0-9]*\).*/\1/p' "$scratch/runneld.out")
    admin_port=$(sed -n 's/^runneld ready .*admin=127\.0\.0\.1:\([0-9]*\).*/\1/p' "$scratch/runneld.out")
    [[ -n $port ]] && return 0
    sleep 0.1
  done
  echo "runneld did not get ready:"
  cat "$scratch/runneld.err"
  exit 1
}
