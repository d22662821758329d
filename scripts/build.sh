#!/usr/bin/env bash
# Installs what is missing and builds embark (Release) into build/.
# With --sanitize: an ASan+UBSan build of the tests into build-sanitize/.
set -euo pipefail
cd "$(dirname "$0")/.."
"$PWD/scripts/deps.sh"
dir=build
args=(-DCMAKE_BUILD_TYPE=Release)
if [ "${1:-}" = "--sanitize" ]; then
  dir=build-sanitize
  args=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DEMBARK_SANITIZE=ON)
fi
cmake -S . -B "$dir" "${args[@]}" >/dev/null
cmake --build "$dir" -j "$(nproc)"
