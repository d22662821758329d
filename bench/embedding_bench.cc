// Embedding table rates against table size, from cache-resident to larger
// than the last cache level, for uniform and Zipf(1.1) keys: lookups of
// existing rows, updates (SGD, Adagrad, Adam), and inserts of new keys; and,
// as the machine's own limit, gathering random rows of the same width from a
// plain array of the same size. Batches of 4096 keys, one thread.
// Run: build/bench/embedding_bench   (rows/s in the "rows/s" counter)
// bench/run.sh compares the update rates at 10^7 rows with machine_bench's
// random gather of rows of the same width.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <random>
#include <vector>

#include "embedding/row_store.h"
#include "util/hash.h"

namespace {

constexpr int kDim = 16;
constexpr size_t kBatch = 4096;

// Key indices in [0, rows): uniform, or Zipf(1.1) by inverse-CDF sampling.
std::vector<uint64_t> Draw(size_t rows, bool zipf, size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<uint64_t> out(n);
  if (!zipf) {
    std::uniform_int_distribution<uint64_t> u(0, rows - 1);
    for (auto& k : out) k = u(rng);
    return out;
  }
  std::vector<double> cdf(rows);
  double sum = 0;
  for (size_t i = 0; i < rows; ++i) cdf[i] = sum += std::pow(static_cast<double>(i + 1), -1.1);
  std::uniform_real_distribution<double> u(0, sum);
  for (auto& k : out) k = std::lower_bound(cdf.begin(), cdf.end(), u(rng)) - cdf.begin();
  return out;
}

// Batches of unique keys (updates take unique keys, as the trainer gives).
std::vector<std::vector<uint64_t>> Batches(size_t rows, bool zipf) {
  std::vector<uint64_t> idx = Draw(rows, zipf, kBatch * 64, 7);
  std::vector<std::vector<uint64_t>> batches;
  for (size_t b = 0; b < 64; ++b) {
    std::vector<uint64_t> keys;
    for (size_t i = 0; i < kBatch; ++i) keys.push_back(embark::Mix64(idx[b * kBatch + i] + 1));
    std::sort(keys.begin(), keys.end());
    keys.erase(std::unique(keys.begin(), keys.end()), keys.end());
    batches.push_back(std::move(keys));
  }
  return batches;
}

std::unique_ptr<embark::RowStore> Filled(size_t rows, embark::SparseOptKind opt) {
  embark::TableConfig cfg;
  cfg.dim = kDim;
  cfg.opt.kind = opt;
  auto t = embark::NewMemoryStore(cfg);
  std::vector<uint64_t> keys(kBatch);
  std::vector<float> out(kBatch * kDim);
  for (size_t i = 0; i < rows; i += kBatch) {
    const size_t n = std::min(kBatch, rows - i);
    for (size_t j = 0; j < n; ++j) keys[j] = embark::Mix64(i + j + 1);
    (void)t->Get(keys.data(), n, out.data(), embark::Access::kTrain);
  }
  return t;
}

void Rate(benchmark::State& st, size_t rows_per_iter) {
  st.counters["rows/s"] =
      benchmark::Counter(static_cast<double>(rows_per_iter * st.iterations()), benchmark::Counter::kIsRate);
}

// args: table rows, zipf (0/1)
void BM_Gather(benchmark::State& st) {
  const size_t rows = st.range(0);
  std::vector<float> table(rows * kDim, 0.5f), out(kBatch * kDim);
  std::vector<uint64_t> idx = Draw(rows, st.range(1), kBatch * 64, 7);
  size_t b = 0;
  for (auto _ : st) {
    const uint64_t* ix = idx.data() + (b++ % 64) * kBatch;
    for (size_t i = 0; i < kBatch; ++i) std::memcpy(&out[i * kDim], &table[ix[i] * kDim], sizeof(float) * kDim);
    benchmark::DoNotOptimize(out.data());
  }
  Rate(st, kBatch);
}

void BM_Lookup(benchmark::State& st) {
  auto t = Filled(st.range(0), embark::SparseOptKind::kSgd);
  auto batches = Batches(st.range(0), st.range(1));
  std::vector<float> out(kBatch * kDim);
  size_t b = 0, n = 0;
  for (auto _ : st) {
    const auto& k = batches[b++ % 64];
    (void)t->Get(k.data(), k.size(), out.data(), embark::Access::kRead);
    n += k.size();
  }
  st.counters["rows/s"] = benchmark::Counter(static_cast<double>(n), benchmark::Counter::kIsRate);
}

void Update(benchmark::State& st, embark::SparseOptKind opt) {
  auto t = Filled(st.range(0), opt);
  auto batches = Batches(st.range(0), st.range(1));
  std::vector<float> grads(kBatch * kDim, 0.001f);
  size_t b = 0, n = 0;
  for (auto _ : st) {
    const auto& k = batches[b++ % 64];
    (void)t->Update(k.data(), k.size(), grads.data());
    n += k.size();
  }
  st.counters["rows/s"] = benchmark::Counter(static_cast<double>(n), benchmark::Counter::kIsRate);
}
void BM_UpdateSgd(benchmark::State& st) { Update(st, embark::SparseOptKind::kSgd); }
void BM_UpdateAdagrad(benchmark::State& st) { Update(st, embark::SparseOptKind::kAdagrad); }
void BM_UpdateAdam(benchmark::State& st) { Update(st, embark::SparseOptKind::kAdam); }

// Inserting new keys into a table that already holds `rows`.
void BM_Insert(benchmark::State& st) {
  auto t = Filled(st.range(0), embark::SparseOptKind::kAdagrad);
  std::vector<uint64_t> keys(kBatch);
  std::vector<float> out(kBatch * kDim);
  uint64_t next = st.range(0) + 1;
  for (auto _ : st) {
    for (auto& k : keys) k = embark::Mix64(next++);
    (void)t->Get(keys.data(), kBatch, out.data(), embark::Access::kTrain);
  }
  Rate(st, kBatch);
}

// 10^4 rows (cache-resident) to 3 x 10^7 (4 GB with Adagrad state; uniform
// keys only, as Zipf keys keep such a table's hot rows in cache anyway).
void Sizes(benchmark::internal::Benchmark* b) {
  for (int64_t rows : {10000, 100000, 1000000, 10000000})
    for (int zipf : {0, 1}) b->Args({rows, zipf});
  b->Args({30000000, 0});
  b->ArgNames({"rows", "zipf"})->Unit(benchmark::kMillisecond);
}

BENCHMARK(BM_Gather)->Apply(Sizes);
BENCHMARK(BM_Lookup)->Apply(Sizes);
BENCHMARK(BM_UpdateSgd)->Apply(Sizes);
BENCHMARK(BM_UpdateAdagrad)->Apply(Sizes);
BENCHMARK(BM_UpdateAdam)->Apply(Sizes);
BENCHMARK(BM_Insert)->Apply([](benchmark::internal::Benchmark* b) {
  for (int64_t rows : {10000, 1000000, 10000000}) b->Args({rows, 0});
  b->ArgNames({"rows", "zipf"})->Unit(benchmark::kMillisecond)->Iterations(200);
});

}  // namespace

BENCHMARK_MAIN();
