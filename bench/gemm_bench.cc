// sgemm throughput on the shapes of DLRM's dense layers (Criteo shape): the
// forward product y = x W^T, by the BLAS candidates at a 1024-sample
// sub-batch, and by embark's batch-invariant inference kernel (nn/gemm.h)
// against OpenBLAS at 1, 8, 256 and 1024 rows. One thread each: embark
// parallelises over sub-batches.
// Run: build/bench/gemm_bench   (oneDNN rows only when libdnnl-dev is installed)
#include <benchmark/benchmark.h>
#include <cblas.h>

#include <vector>

#include "nn/gemm.h"

#ifdef EMBARK_HAVE_DNNL
#include <oneapi/dnnl/dnnl.h>
#endif

extern "C" void openblas_set_num_threads(int);

namespace {

struct Shape {
  int m, n, k;
};
// (batch, out, in): bottom 13->512, 512->256 (also top 512->256), 256->64,
// top 367->512.
const Shape kShapes[] = {{1024, 512, 13}, {1024, 256, 512}, {1024, 64, 256}, {1024, 512, 367}};

void SetFlops(benchmark::State& st, const Shape& s) {
  st.counters["GFLOP/s"] = benchmark::Counter(2.0 * s.m * s.n * s.k * st.iterations() / 1e9, benchmark::Counter::kIsRate);
}

// The shape of argument 0 with the row count of argument 1 when given.
Shape ShapeOf(const benchmark::State& st) {
  Shape s = kShapes[st.range(0)];
  if (st.range(1) > 0) s.m = static_cast<int>(st.range(1));
  return s;
}

void RowCounts(benchmark::internal::Benchmark* b) {
  for (int shape = 0; shape < 4; ++shape)
    for (int rows : {1, 8, 256, 1024}) b->Args({shape, rows});
}

void BM_OpenBlas(benchmark::State& st) {
  openblas_set_num_threads(1);
  const Shape s = ShapeOf(st);
  std::vector<float> a(s.m * s.k, 0.5f), b(s.n * s.k, 0.25f), c(s.m * s.n);
  for (auto _ : st) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, s.m, s.n, s.k, 1.0f, a.data(), s.k, b.data(), s.k, 0.0f,
                c.data(), s.n);
    benchmark::DoNotOptimize(c.data());
  }
  SetFlops(st, s);
}
BENCHMARK(BM_OpenBlas)->Apply(RowCounts);

void BM_Inference(benchmark::State& st) {
  const Shape s = ShapeOf(st);
  std::vector<float> a(s.m * s.k, 0.5f), w(s.n * s.k, 0.25f), bias(s.n, 0.1f), c(s.m * s.n);
  std::vector<float> packed(embark::PackedSize(s.k, s.n));
  embark::PackWeights(w.data(), s.k, s.n, packed.data());
  for (auto _ : st) {
    embark::InferenceLinear(a.data(), s.m, s.k, packed.data(), bias.data(), s.n, c.data(), true);
    benchmark::DoNotOptimize(c.data());
  }
  SetFlops(st, s);
}
BENCHMARK(BM_Inference)->Apply(RowCounts);

#ifdef EMBARK_HAVE_DNNL
void BM_OneDnn(benchmark::State& st) {
  const Shape s = ShapeOf(st);
  std::vector<float> a(s.m * s.k, 0.5f), b(s.n * s.k, 0.25f), c(s.m * s.n);
  for (auto _ : st) {
    dnnl_sgemm('N', 'T', s.m, s.n, s.k, 1.0f, a.data(), s.k, b.data(), s.k, 0.0f, c.data(), s.n);
    benchmark::DoNotOptimize(c.data());
  }
  SetFlops(st, s);
}
BENCHMARK(BM_OneDnn)->ArgsProduct({{0, 1, 2, 3}, {0}});
#endif

}  // namespace

BENCHMARK_MAIN();
