#!/usr/bin/env bash
# Installs, as root, every Debian package Runnel needs to build, test and run.
# Idempotent: packages already present are skipped and apt is not touched.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config git curl
  liburing-dev            # io_uring: the reactor's only I/O path
  libuv1-dev              # event loop of the asynchronous client library
  node-llhttp             # HTTP/1.1 parser for the admin port (C sources)
  libxxhash-dev           # xxh3 checksums on record batches
  liblz4-dev              # optional per-stream batch compression
  libssl-dev              # TLS, hashes, Ed25519
  openssl ca-certificates # test certificates (proto/tls/test_certs.sh); the system's trusted CAs
  libjemalloc-dev         # allocator of runneld
  libtomlplusplus-dev     # TOML config parsing
  libcli11-dev            # command-line flags
  libfmt-dev              # formatting (GCC 12 has no <format>)
  nlohmann-json3-dev      # JSON for the admin API and config dumps
  libgtest-dev libgmock-dev googletest   # unit tests
  libbenchmark-dev        # component benchmarks
  clang-14 libclang-rt-14-dev            # libFuzzer targets
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "setup: missing packages: ${missing[*]}; run as root" >&2
    exit 1
  fi
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
