// GEMM throughput on the shapes of DLRM's and DeepFM's dense layers
// (Criteo shape), one thread each: embark parallelises over sub-batches.
//  - BM_OpenBlas / BM_Inference / BM_OneDnn: the forward product y = x W^T,
//    by embark's batch-invariant inference kernel (nn/gemm.h) against
//    OpenBLAS at 1, 8, 256 and 1024 rows, and by oneDNN's sgemm.
//  - BM_Train: the training products as TrainGemm (nn/train_gemm.h) runs
//    them: forward (bias and, but for a last layer, ReLU included), weight
//    gradient and input gradient of every layer, at 1024 and 2048 rows (a
//    2048 batch on 2 or 1 trainer threads), by OpenBLAS fp32, oneDNN fp32
//    and bf16 as training runs it (bf16 copies of the operands included).
//    Its figures decide which library serves each product (FP32 CHOICE in
//    src/nn/train_gemm.cc).
// The context lines give the CPU, the instruction set oneDNN dispatches to,
// and how bf16 runs (onednn, or rounded-fp32 where oneDNN has none).
// Run: build/bench/gemm_bench [--benchmark_filter=BM_Train]
#include <benchmark/benchmark.h>
#include <cblas.h>

#include <fstream>
#include <string>
#include <vector>

#include <oneapi/dnnl/dnnl.h>

#include "nn/gemm.h"
#include "nn/train_gemm.h"

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

// The dense layers of DLRM (bottom 13-512-256-64-16, top 367-512-256-1) and
// DeepFM (429-400-400-400-1) on the Criteo shape; a layer met twice
// (512->256, 400->400) is listed once.
struct Layer {
  const char* name;
  int in, out;
  bool last;  // no ReLU after it
};
const Layer kLayers[] = {
    {"dlrm.bottom.0", 13, 512, false}, {"dlrm.bottom.1", 512, 256, false}, {"dlrm.bottom.2", 256, 64, false},
    {"dlrm.bottom.3", 64, 16, false},  {"dlrm.top.0", 367, 512, false},    {"dlrm.top.2", 256, 1, true},
    {"deepfm.0", 429, 400, false},     {"deepfm.1", 400, 400, false},      {"deepfm.3", 400, 1, true},
};
const char* const kProducts[] = {"forward", "wgrad", "igrad"};
const char* const kLibs[] = {"openblas-fp32", "onednn-fp32", "bf16"};

// Arguments: layer, rows, product (forward, weight gradient, input
// gradient), library (OpenBLAS fp32, oneDNN fp32, bf16 as training runs it).
void BM_Train(benchmark::State& st) {
  openblas_set_num_threads(1);
  const Layer& l = kLayers[st.range(0)];
  const int m = static_cast<int>(st.range(1)), product = static_cast<int>(st.range(2)), lib = static_cast<int>(st.range(3));
  const int n = l.out, k = l.in;
  std::vector<float> x(static_cast<size_t>(m) * k), w(static_cast<size_t>(n) * k), bias(n, 0.1f);
  std::vector<float> y(static_cast<size_t>(m) * n), dw(w.size()), dx(x.size());
  for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>(i % 17) * 0.03f - 0.2f;
  for (size_t i = 0; i < w.size(); ++i) w[i] = static_cast<float>(i % 13) * 0.01f - 0.05f;
  for (size_t i = 0; i < y.size(); ++i) y[i] = static_cast<float>(i % 7) * 0.02f - 0.06f;  // dy
  embark::TrainGemm gemm;
  gemm.set_fp32_library(lib == 0 ? embark::GemmLibrary::kOpenBlas : embark::GemmLibrary::kOneDnn);
  gemm.set_precision(lib == 2 ? embark::DensePrecision::kBf16 : embark::DensePrecision::kFp32);
  std::vector<float> out(y.size());
  auto run = [&] {
    switch (product) {
      case 0: gemm.Forward(x.data(), w.data(), bias.data(), m, n, k, !l.last, out.data()); break;
      case 1: gemm.Backward(y.data(), x.data(), w.data(), m, n, k, dw.data(), nullptr); break;
      default: gemm.Backward(y.data(), x.data(), w.data(), m, n, k, nullptr, dx.data()); break;
    }
  };
  run();  // makes the primitive
  for (auto _ : st) {
    run();
    benchmark::ClobberMemory();
  }
  st.SetLabel(std::string(l.name) + " " + kProducts[product] + " " + kLibs[lib]);
  SetFlops(st, Shape{m, n, k});
}
BENCHMARK(BM_Train)->ArgsProduct({{0, 1, 2, 3, 4, 5, 6, 7, 8}, {1024, 2048}, {0, 1, 2}, {0, 1, 2}});

std::string CpuModel() {
  std::ifstream in("/proc/cpuinfo");
  for (std::string line; std::getline(in, line);)
    if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
  return "unknown";
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::AddCustomContext("cpu_model", CpuModel());
  benchmark::AddCustomContext("onednn_isa", embark::OneDnnIsa());
  benchmark::AddCustomContext("bf16_method", embark::TrainGemm::Bf16Method());
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
