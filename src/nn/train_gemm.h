// The matrix products of the dense layers' training passes (nn/layers.h),
// on OpenBLAS or oneDNN, in fp32 or bf16. One TrainGemm per training
// thread (it lives in the thread's Workspace): it keeps the oneDNN
// primitives it made, one per shape and product, and its conversion
// buffers, so once shapes have settled a step allocates nothing but what
// oneDNN allocates inside each execution (see OneDnnProducts). oneDNN
// runs on one thread inside the calling thread (embark parallelises over
// sub-batches); inference never comes here (nn/gemm.h).
//
// fp32: each product on the library that ran it faster where measured
// (FP32 CHOICE in train_gemm.cc: oneDNN for layers of 16 outputs or more,
// OpenBLAS for the narrower ones).
//
// bf16: weights, activations and output gradients are rounded to bf16 (to
// nearest even) for each product; products accumulate in fp32, and the
// layer's outputs, the gradients handed to the optimizer and the master
// weights stay fp32. On a CPU with bf16 units (oneDNN's avx512_core_bf16
// and AMX) the products of layers of 16 outputs or more run as oneDNN bf16
// matmuls. The others, and all of them on other CPUs (AVX-512 without bf16
// units, where oneDNN's emulated bf16 ran 2.5-3.5x slower than fp32, and
// AVX2, where it has only a reference bf16 matmul), run as OpenBLAS fp32
// GEMMs on the bf16-rounded values: the same numbers up to the order of the
// fp32 sums, at fp32's speed.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "util/status.h"

namespace embark {

enum class DensePrecision { kFp32, kBf16 };
// "fp32" or "bf16" (the dense_precision parameter).
Result<DensePrecision> ParseDensePrecision(const std::string& s);

// The library of fp32 products. kAuto is embark's choice, by measurement
// (bench/gemm_bench.cc; see FP32 CHOICE in train_gemm.cc).
enum class GemmLibrary { kAuto, kOpenBlas, kOneDnn };

// The instruction set oneDNN dispatches to on this CPU, e.g. "avx512_core_bf16"
// (after DNNL_MAX_CPU_ISA, when set).
std::string OneDnnIsa();

class TrainGemm {
 public:
  TrainGemm();
  ~TrainGemm();
  TrainGemm(TrainGemm&&) noexcept;
  TrainGemm& operator=(TrainGemm&&) noexcept;

  DensePrecision precision() const { return precision_; }
  void set_precision(DensePrecision p) { precision_ = p; }
  // Which library runs fp32 products (benchmarks and tests compare them).
  void set_fp32_library(GemmLibrary lib) { fp32_lib_ = lib; }
  // How bf16 products of wide layers run on this CPU: "onednn" or
  // "rounded-fp32" (see above).
  static std::string Bf16Method();
  // Products run on oneDNN so far, by every TrainGemm of the process. Each
  // allocates a few small blocks inside oneDNN (its argument map), the only
  // allocations of a training step once sizes have settled; the tests of
  // that count them with this.
  static uint64_t OneDnnProducts();

  // y[m, n] = x[m, k] w[n, k]^T + bias[n], then ReLU when `relu`.
  void Forward(const float* x, const float* w, const float* bias, int m, int n, int k, bool relu, float* y);
  // dw[n, k] += dy[m, n]^T x[m, k] and dx[m, k] = dy[m, n] w[n, k], each
  // unless its pointer is null.
  void Backward(const float* dy, const float* x, const float* w, int m, int n, int k, float* dw, float* dx);

 private:
  struct Impl;
  struct Entry;
  Impl* impl();
  // The oneDNN matmul of a product (an Op of train_gemm.cc) in this
  // precision, or null when OpenBLAS runs it.
  Entry* Matmul(int op, int m, int n, int k);
  DensePrecision precision_ = DensePrecision::kFp32;
  GemmLibrary fp32_lib_ = GemmLibrary::kAuto;
  std::unique_ptr<Impl> impl_;  // made on first use of oneDNN
};

// Rounds n floats to the nearest bf16 (ties to even), kept as floats.
void RoundToBf16(const float* x, size_t n, float* out);

}  // namespace embark
