#!/usr/bin/env bash
# Runnel as a packager and a new user get it: `cmake --install` of this
# build into a scratch prefix must hold the three programs (runnable from
# there: they find the installed librunnel), their man pages and the example
# config; then proto/client/examples is built with plain CMake against the
# installed CMake package (and once more with pkg-config and nothing else),
# and both run against the installed runneld on loopback ports of its own,
# stopped by PID. The public headers must compile clean under -Wall -Wextra -Werror.
# Usage: install_test.sh BUILD_DIR SOURCE_DIR RUNNELD
set -euo pipefail
build_dir=$1 source_dir=$2 runneld=$3
# shellcheck source=runneld_scratch.sh
source "$(dirname "$0")/runneld_scratch.sh"

cmake --install "$build_dir" --prefix "$scratch/prefix" >/dev/null
prefix=$scratch/prefix
for f in bin/runneld bin/runnel bin/runnel-bench include/runnel/blocking_client.h \
         share/man/man1/runneld.1 share/man/man1/runnel.1 share/man/man1/runnel-bench.1 \
         share/doc/runnel/examples/runneld.toml; do
  if [[ ! -e $prefix/$f ]]; then
    echo "not installed: $f" >&2
    find "$prefix" -type f >&2
    exit 1
  fi
done
# The installed programs run from the prefix alone (no LD_LIBRARY_PATH).
"$prefix/bin/runnel" --help | grep -q "bucket"
"$prefix/bin/runnel-bench" --help | grep -q -- "--producers"
grep -q -- "--data-dir" "$prefix/share/man/man1/runneld.1"
# The example config is the one the installed server accepts.
"$prefix/bin/runneld" --config "$prefix/share/doc/runnel/examples/runneld.toml" --print-config >/dev/null
runneld="$prefix/bin/runneld"
cmake -S "$source_dir/proto/client/examples" -B "$scratch/example" -DCMAKE_PREFIX_PATH="$scratch/prefix" >/dev/null
cmake --build "$scratch/example" >/dev/null
pc_dir=$(dirname "$(find "$scratch/prefix" -name runnel.pc)")
libdir=$(PKG_CONFIG_PATH=$pc_dir pkg-config --variable=libdir runnel)
# shellcheck disable=SC2046  # pkg-config's flags are meant to split.
c++ -Wall -Wextra -Werror -o "$scratch/with_pkg_config" "$source_dir/proto/client/examples/append_and_read.cc" \
  $(PKG_CONFIG_PATH=$pc_dir pkg-config --cflags --libs runnel)

start_runneld "$runneld"

expect() {  # expect NAME OUTPUT EXPECTED
  if [[ $2 != "$3" ]]; then
    printf '%s printed:\n%s\nexpected:\n%s\n' "$1" "$2" "$3"
    exit 1
  fi
}
out=$(timeout 30 "$scratch/example/append_and_read" "$port")
expect "the CMake-built example" "$out" $'appended seq_nums 0..2\n0 hello\n1 from\n2 runnel'
out=$(LD_LIBRARY_PATH=$libdir timeout 30 "$scratch/with_pkg_config" "$port")
expect "the pkg-config-built example" "$out" $'appended seq_nums 3..5\n3 hello\n4 from\n5 runnel'

kill -TERM "$pid"
wait "$pid"
pid=
echo "installed librunnel: both examples built and ran"
