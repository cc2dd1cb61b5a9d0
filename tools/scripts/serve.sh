#!/usr/bin/env bash
# Installs what is missing (as root), builds runneld, the runnel CLI and
# runnel-bench (Release) and runs runneld on
# its defaults: data in ./data, binary protocol on 127.0.0.1:7420, admin HTTP
# on 127.0.0.1:7421. Extra arguments go to runneld. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/../.."

tools/scripts/setup.sh
cmake --preset release >/dev/null
cmake --build --preset release --target runneld runnel runnel-bench
exec build/release/tools/runneld "$@"
