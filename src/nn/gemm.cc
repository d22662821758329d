#include "nn/gemm.h"

#include <algorithm>
#include <cmath>

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#endif

namespace embark {

size_t PackedSize(int in, int out) {
  return static_cast<size_t>((out + kPanel - 1) / kPanel) * static_cast<size_t>(in) * kPanel;
}

void PackWeights(const float* w, int in, int out, float* packed) {
  std::fill(packed, packed + PackedSize(in, out), 0.0f);
  for (int n = 0; n < out; ++n)
    for (int k = 0; k < in; ++k)
      packed[(static_cast<size_t>(n / kPanel) * in + k) * kPanel + n % kPanel] = w[static_cast<size_t>(n) * in + k];
}

namespace {

// Writes act(bias + acc) for `R` rows of one panel.
template <int R>
inline void Store(const float (&acc)[6][kPanel], const float* bias, float* y, int ldy, int cols, bool relu) {
  for (int r = 0; r < R; ++r) {
    float* yr = y + static_cast<size_t>(r) * ldy;
    for (int j = 0; j < cols; ++j) {
      const float v = bias[j] + acc[r][j];
      yr[j] = relu ? std::max(v, 0.0f) : v;
    }
  }
}

#if defined(__AVX2__) && defined(__FMA__)
// R rows (R <= 6) times one panel of 16 columns, accumulators in registers
// (named, not an array, which GCC keeps on the stack). Each lane performs
// exactly the scalar fma chain of the portable version.
template <int R>
void Kernel(const float* x, int in, const float* panel, const float* bias, float* y, int ldy, int cols, bool relu) {
  const __m256 z = _mm256_setzero_ps();
  __m256 a00 = z, a01 = z, a10 = z, a11 = z, a20 = z, a21 = z, a30 = z, a31 = z, a40 = z, a41 = z, a50 = z, a51 = z;
  auto row = [](const float* xr, int k, __m256 w0, __m256 w1, __m256& lo, __m256& hi) {
    const __m256 v = _mm256_broadcast_ss(xr + k);
    lo = _mm256_fmadd_ps(v, w0, lo);
    hi = _mm256_fmadd_ps(v, w1, hi);
  };
  for (int k = 0; k < in; ++k) {
    const float* wk = panel + static_cast<size_t>(k) * kPanel;
    const __m256 w0 = _mm256_loadu_ps(wk), w1 = _mm256_loadu_ps(wk + 8);
    row(x, k, w0, w1, a00, a01);
    if constexpr (R > 1) row(x + static_cast<size_t>(in), k, w0, w1, a10, a11);
    if constexpr (R > 2) row(x + 2 * static_cast<size_t>(in), k, w0, w1, a20, a21);
    if constexpr (R > 3) row(x + 3 * static_cast<size_t>(in), k, w0, w1, a30, a31);
    if constexpr (R > 4) row(x + 4 * static_cast<size_t>(in), k, w0, w1, a40, a41);
    if constexpr (R > 5) row(x + 5 * static_cast<size_t>(in), k, w0, w1, a50, a51);
  }
  alignas(32) float acc[6][kPanel];
  const __m256 out[6][2] = {{a00, a01}, {a10, a11}, {a20, a21}, {a30, a31}, {a40, a41}, {a50, a51}};
  for (int r = 0; r < R; ++r) {
    _mm256_store_ps(acc[r], out[r][0]);
    _mm256_store_ps(acc[r] + 8, out[r][1]);
  }
  Store<R>(acc, bias, y, ldy, cols, relu);
}
#else
// Portable version: the same fma chains, one scalar at a time.
template <int R>
void Kernel(const float* x, int in, const float* panel, const float* bias, float* y, int ldy, int cols, bool relu) {
  float acc[6][kPanel] = {};
  for (int k = 0; k < in; ++k) {
    const float* wk = panel + static_cast<size_t>(k) * kPanel;
    for (int r = 0; r < R; ++r) {
      const float xv = x[static_cast<size_t>(r) * in + k];
      for (int j = 0; j < kPanel; ++j) acc[r][j] = std::fma(xv, wk[j], acc[r][j]);
    }
  }
  Store<R>(acc, bias, y, ldy, cols, relu);
}
#endif

}  // namespace

void InferenceLinear(const float* x, int rows, int in, const float* packed, const float* bias, int out, float* y,
                     bool relu) {
  for (int n = 0; n < out; n += kPanel) {
    const float* panel = packed + static_cast<size_t>(n / kPanel) * in * kPanel;
    const int cols = std::min(kPanel, out - n);
    int m = 0;
    auto at = [&](int row) { return x + static_cast<size_t>(row) * in; };
    auto yat = [&](int row) { return y + static_cast<size_t>(row) * out + n; };
    for (; m + 6 <= rows; m += 6) Kernel<6>(at(m), in, panel, bias + n, yat(m), out, cols, relu);
    switch (rows - m) {
      case 5: Kernel<5>(at(m), in, panel, bias + n, yat(m), out, cols, relu); break;
      case 4: Kernel<4>(at(m), in, panel, bias + n, yat(m), out, cols, relu); break;
      case 3: Kernel<3>(at(m), in, panel, bias + n, yat(m), out, cols, relu); break;
      case 2: Kernel<2>(at(m), in, panel, bias + n, yat(m), out, cols, relu); break;
      case 1: Kernel<1>(at(m), in, panel, bias + n, yat(m), out, cols, relu); break;
      default: break;
    }
  }
}

}  // namespace embark
