#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test (unit and end-to-end).
# With --sanitize: the unit tests in an AddressSanitizer + UBSan build.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = "--sanitize" ]; then
  ./scripts/build.sh --sanitize
  cd build-sanitize
  ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 ctest -L unit --output-on-failure -j "$(nproc)"
else
  ./scripts/build.sh
  cd build
  ctest --output-on-failure
fi
