#!/usr/bin/env bash
# The lockmgr demo: runs each backend's story against real, private
# services. Usage: scripts/demo.sh PREFIX (an installed tree; `make demo`
# installs one under ./_install first).
set -euo pipefail
prefix=${1:?usage: scripts/demo.sh PREFIX}
here=$(cd "$(dirname "$0")" && pwd)
for part in "$here"/demo/[0-9]*.sh; do
    bash "$part" "$prefix"
done
