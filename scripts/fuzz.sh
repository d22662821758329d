#!/usr/bin/env bash
# Fuzzes the infer request parser with libFuzzer (clang, ASan+UBSan) for a
# bounded time: scripts/fuzz.sh [SECONDS=60]. Starts from the corpus kept in
# fuzz/corpus/infer_request; new inputs that widen coverage are written to
# build-fuzz/corpus (copy the useful ones into the repo's corpus). A crash
# leaves its input in build-fuzz/ and fails the script.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_TO_RUN=${1:-60}
EXTRA_PKGS="clang libclang-rt-14-dev" ./scripts/deps.sh
CC=clang CXX=clang++ cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DEMBARK_SANITIZE=ON -DEMBARK_FUZZ=ON \
  -DEMBARK_TESTS=OFF -DEMBARK_BENCH=OFF >/dev/null
cmake --build build-fuzz -j"$(nproc)" --target infer_request_fuzz
mkdir -p build-fuzz/corpus
cd build-fuzz
./infer_request_fuzz -max_total_time="$SECONDS_TO_RUN" -max_len=4096 -timeout=10 -rss_limit_mb=2048 \
  -print_final_stats=1 corpus ../fuzz/corpus/infer_request
