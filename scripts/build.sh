#!/usr/bin/env bash
# Installs what is missing and builds embark (Release) into build/.
# With --sanitize: an ASan+UBSan build into build-sanitize/; with --tsan: a
# ThreadSanitizer build of the concurrency tests and the binary into build-tsan/.
set -euo pipefail
cd "$(dirname "$0")/.."
"$PWD/scripts/deps.sh"
dir=build
args=(-DCMAKE_BUILD_TYPE=Release)
targets=()
case "${1:-}" in
  --sanitize) dir=build-sanitize; args=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DEMBARK_SANITIZE=ON) ;;
  --tsan) dir=build-tsan; args=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DEMBARK_TSAN=ON)
          targets=(--target thread_pool_test embedding_test admission_test tier_test pipeline_test stream_test dist_test http_test serve_delta_test index_test delta_writer embark) ;;
esac
cmake -S . -B "$dir" "${args[@]}" >/dev/null
cmake --build "$dir" -j "$(nproc)" "${targets[@]}"
