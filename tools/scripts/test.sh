#!/usr/bin/env bash
# Installs what is missing (as root), then builds and runs every test:
#   1. Release build: unit, integration and fuzz-corpus replay tests (ctest).
#   2. AddressSanitizer + UBSan build: the unit tests again.
#   3. libFuzzer build (clang): each fuzz target for FUZZ_SECONDS (default 20).
# Idempotent; exits non-zero on the first failure.
set -euo pipefail
cd "$(dirname "$0")/../.."
# Each fuzz target runs this long (CI's default); hunting for bugs by hand,
# run longer: FUZZ_SECONDS=600 tools/scripts/test.sh.
FUZZ_SECONDS=${FUZZ_SECONDS:-20}

# Each step says how long the one before it took (CI must stay well inside its budget).
step_started=$SECONDS
step() {
  printf '\n=== %s === (previous step: %d s, total %d s)\n' "$*" $((SECONDS - step_started)) "$SECONDS"
  step_started=$SECONDS
}

step "install dependencies"
tools/scripts/setup.sh

step "release build and full test suite"
cmake --preset release >/dev/null
cmake --build --preset release
ctest --preset release

step "asan-ubsan build and unit tests"
cmake --preset asan-ubsan >/dev/null
cmake --build --preset asan-ubsan
ctest --preset asan-ubsan

step "fuzz targets, ${FUZZ_SECONDS}s each"
cmake --preset fuzz >/dev/null
cmake --build --preset fuzz
for corpus in tests/fuzz/corpus/*/; do
  target=$(basename "$corpus")
  echo "fuzzing $target for ${FUZZ_SECONDS}s"
  scratch=$(mktemp -d)
  # New inputs go to a scratch dir; the checked-in corpus is only read.
  build/fuzz/tests/fuzz/fuzz_"$target" -max_total_time="$FUZZ_SECONDS" -print_final_stats=1 \
    -artifact_prefix="$scratch/" "$scratch" "$corpus" 2>&1 | tail -n 3
  if ls "$scratch"/crash-* "$scratch"/leak-* "$scratch"/timeout-* >/dev/null 2>&1; then
    echo "fuzz target $target found a failure; inputs kept in $scratch" >&2
    exit 1
  fi
  rm -rf "$scratch"
done

step "all tests passed"
