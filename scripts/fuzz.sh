#!/usr/bin/env bash
# Fuzzes every parser with libFuzzer (clang, ASan+UBSan) for a bounded time
# each: scripts/fuzz.sh [SECONDS=60] [TARGET...]. Targets (fuzz/*_fuzz.cc):
# infer_request (serve's request body), http_request (serve's HTTP request
# framing: head, Content-Length and chunked bodies, limits), data_lines (every data-line format),
# config (the training config and the CSV schema), checkpoint (table files
# and the data spec), dist_messages (the distributed sparse, dense and
# validation messages). Each starts from its corpus in fuzz/corpus/<target>;
# new inputs that widen coverage go to build-fuzz/corpus/<target> (copy the
# useful ones into the repo's corpus). A crash leaves its input in
# build-fuzz/ and fails the script.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_TO_RUN=${1:-60}
shift || true
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=(infer_request http_request data_lines config checkpoint dist_messages)
EXTRA_PKGS="clang libclang-rt-14-dev" ./scripts/deps.sh
CC=clang CXX=clang++ cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DEMBARK_SANITIZE=ON -DEMBARK_FUZZ=ON \
  -DEMBARK_TESTS=OFF -DEMBARK_BENCH=OFF >/dev/null
cmake --build build-fuzz -j"$(nproc)" --target "${TARGETS[@]/%/_fuzz}"
cd build-fuzz
for t in "${TARGETS[@]}"; do
  echo "fuzz: $t for ${SECONDS_TO_RUN}s" >&2
  mkdir -p "corpus/$t"
  "./${t}_fuzz" -max_total_time="$SECONDS_TO_RUN" -max_len=4096 -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 "corpus/$t" "../fuzz/corpus/$t"
done
