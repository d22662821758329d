// sgemm throughput of the BLAS candidates on the shapes of DLRM's dense
// layers (Criteo shape, a 1024-sample sub-batch per thread): the forward
// product y = x W^T. One thread each: embark parallelises over sub-batches.
// Run: build/bench/gemm_bench   (oneDNN rows only when libdnnl-dev is installed)
#include <benchmark/benchmark.h>
#include <cblas.h>

#include <vector>

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

void BM_OpenBlas(benchmark::State& st) {
  openblas_set_num_threads(1);
  const Shape s = kShapes[st.range(0)];
  std::vector<float> a(s.m * s.k, 0.5f), b(s.n * s.k, 0.25f), c(s.m * s.n);
  for (auto _ : st) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, s.m, s.n, s.k, 1.0f, a.data(), s.k, b.data(), s.k, 0.0f,
                c.data(), s.n);
    benchmark::DoNotOptimize(c.data());
  }
  SetFlops(st, s);
}
BENCHMARK(BM_OpenBlas)->DenseRange(0, 3);

#ifdef EMBARK_HAVE_DNNL
void BM_OneDnn(benchmark::State& st) {
  const Shape s = kShapes[st.range(0)];
  std::vector<float> a(s.m * s.k, 0.5f), b(s.n * s.k, 0.25f), c(s.m * s.n);
  for (auto _ : st) {
    dnnl_sgemm('N', 'T', s.m, s.n, s.k, 1.0f, a.data(), s.k, b.data(), s.k, 0.0f, c.data(), s.n);
    benchmark::DoNotOptimize(c.data());
  }
  SetFlops(st, s);
}
BENCHMARK(BM_OneDnn)->DenseRange(0, 3);
#endif

}  // namespace

BENCHMARK_MAIN();
