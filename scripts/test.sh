#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test (unit and end-to-end).
# With --sanitize: the unit tests in an AddressSanitizer + UBSan build.
# With --tsan: the concurrent table and pipeline tests, the HTTP front end's
# tests and the serve end-to-end checks under ThreadSanitizer.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = "--sanitize" ]; then
  ./scripts/build.sh --sanitize
  cd build-sanitize
  ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 ctest -L unit --output-on-failure -j "$(nproc)"
elif [ "${1:-}" = "--tsan" ]; then
  ./scripts/build.sh --tsan
  supp="$PWD/scripts/tsan.supp"
  cd build-tsan
  TSAN_OPTIONS="halt_on_error=1 suppressions=$supp" ./tests/thread_pool_test
  TSAN_OPTIONS="halt_on_error=1 suppressions=$supp" ./tests/embedding_test
  # Eviction against training reads and updates, admission counting.
  TSAN_OPTIONS="halt_on_error=1 suppressions=$supp" ./tests/admission_test
  TSAN_OPTIONS="halt_on_error=1 suppressions=$supp" ./tests/pipeline_test
  # The stream reader's thread against its consumer.
  TSAN_OPTIONS="halt_on_error=1 suppressions=$supp" ./tests/stream_test
  # The tiered store: steps against its prefetch and write-back threads,
  # checkpoint walks and eviction.
  TSAN_OPTIONS="halt_on_error=1 suppressions=$supp" ./tests/tier_test \
    --gtest_filter='TieredStore.*:TieredPolicy.*:Tiered/RowStoreConformance/0.Concurrent*-TieredStore.Corrupted*:TieredStore.Budget*'
  # Distributed training's communication thread against the training threads.
  TSAN_OPTIONS="halt_on_error=1 suppressions=$supp" ./tests/dist_test
  # embark serve's connection thread against its handler threads.
  TSAN_OPTIONS="halt_on_error=1 suppressions=$supp" ./tests/http_test
  # Delta checkpoints applied in place (rows into the served tables, dense
  # weights swapped) while requests are scored.
  TSAN_OPTIONS="halt_on_error=1 suppressions=$supp" ./tests/serve_delta_test
  # Vector indexes: searches from 4 threads while another adds and replaces items.
  TSAN_OPTIONS="halt_on_error=1 suppressions=$supp" ./tests/index_test --gtest_filter='VectorIndex.Concurrent*'
  # The hybrid trainer: 2 threads read a step's rows, then apply the summed
  # gradients of both shares, each to its own store shards.
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  ./embark gen --rows 20000 --valid-rows 2000 --out "$tmp/t.tsv" --valid-out "$tmp/v.tsv" >/dev/null
  TSAN_OPTIONS="halt_on_error=1 suppressions=$supp" ./embark train --data "$tmp/t.tsv" --valid "$tmp/v.tsv" --threads 2 --batch 512 \
    --parse-threads 2 --bottom-mlp 16 --top-mlp 16 --out "$tmp/m" --quiet
  # The same with admission, a cap and a TTL: eviction rounds on their own
  # thread while the 2 training threads read and update rows.
  TSAN_OPTIONS="halt_on_error=1 suppressions=$supp" ./embark train --data "$tmp/t.tsv" --valid "$tmp/v.tsv" --threads 2 --batch 128 \
    --parse-threads 2 --bottom-mlp 16 --top-mlp 16 --admit-min-count 2 --max-rows 5000 --row-ttl 16 \
    --out "$tmp/m2" --quiet
  # Tiered training: 2 training threads against the tables' prefetch,
  # write-back and eviction threads, with a checkpoint walk at the end.
  TSAN_OPTIONS="halt_on_error=1 suppressions=$supp" ./embark train --data "$tmp/t.tsv" --valid "$tmp/v.tsv" --threads 2 --batch 256 \
    --bottom-mlp 16 --top-mlp 16 --memory-budget 16M --table-dir "$tmp/tables" --max-rows 20000 \
    --out "$tmp/m3" --quiet
  # Online training: the stream reader's thread against the 2 training
  # threads, delta checkpoints and eviction rounds; SIGTERM ends it.
  mkdir "$tmp/stream" && cp "$tmp/t.tsv" "$tmp/stream/"
  TSAN_OPTIONS="halt_on_error=1 suppressions=$supp" ./embark train --stream --data "$tmp/stream" --format criteo \
    --threads 2 --batch 256 --bottom-mlp 16 --top-mlp 16 --row-ttl 16 --delta-every 5 --report-every 1s \
    --out "$tmp/m4" --json --quiet >"$tmp/stream.jsonl" &
  pid=$!
  for _ in $(seq 600); do
    grep -q '"samples":20000,' "$tmp/stream.jsonl" 2>/dev/null && break
    sleep 0.5
  done
  kill -TERM $pid
  wait $pid
  # embark serve end to end: reloads under load, pipelining, drips, SIGTERM
  # (a race makes the server exit with an error, which fails the checks).
  TSAN_OPTIONS="halt_on_error=1 suppressions=$supp" EMBARK="$PWD/embark" EMBARK_SOURCE_DIR="$(cd .. && pwd)" bash ../tests/e2e/serve.sh
  # Deltas applied in place under load, a corrupted one refused, a memory budget.
  TSAN_OPTIONS="halt_on_error=1 suppressions=$supp" EMBARK="$PWD/embark" EMBARK_SOURCE_DIR="$(cd .. && pwd)" \
    bash ../tests/e2e/serve_deltas.sh
  echo "ThreadSanitizer: no data race reported"
else
  ./scripts/build.sh
  cd build
  ctest --output-on-failure
fi
