// The dense layers' training products (nn/train_gemm.h): every library and
// precision against a double-precision reference, bf16 against fp32, and
// the rounding to bf16 itself. tests/CMakeLists.txt runs this file again
// with oneDNN held to AVX-512 without bf16 units and to AVX2 (bf16 on the
// rounded-fp32 path, fp32 on oneDNN's other kernels).
#include "nn/train_gemm.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "nn/layers.h"

namespace embark {
namespace {

float Round(float x) {
  float r;
  RoundToBf16(&x, 1, &r);
  return r;
}

TEST(TrainGemm, RoundsToNearestBf16TiesToEven) {
  EXPECT_EQ(Round(1.0f), 1.0f);
  EXPECT_EQ(Round(-2.5f), -2.5f);
  // bf16 keeps 8 significant bits: near 1 its step is 2^-7.
  EXPECT_EQ(Round(1.0f + 0x1p-9f), 1.0f);              // below half a step: down
  EXPECT_EQ(Round(1.0f + 0x1p-8f + 0x1p-12f), 1.0f + 0x1p-7f);  // above half: up
  EXPECT_EQ(Round(1.0f + 0x1p-8f), 1.0f);              // a tie goes to the even 1.0
  EXPECT_EQ(Round(1.0f + 3 * 0x1p-8f), 1.0f + 0x1p-6f);  // a tie goes to the even 1 + 2^-6
  EXPECT_EQ(Round(std::numeric_limits<float>::infinity()), std::numeric_limits<float>::infinity());
  EXPECT_TRUE(std::isnan(Round(std::numeric_limits<float>::quiet_NaN())));
  uint32_t snan_bits = 0x7f800001u;  // a NaN whose payload is below the bf16 bits: must not become inf
  float snan;
  std::memcpy(&snan, &snan_bits, sizeof snan);
  EXPECT_TRUE(std::isnan(Round(snan)));
  EXPECT_EQ(Round(std::numeric_limits<float>::max()), std::numeric_limits<float>::infinity());
}

TEST(TrainGemm, Bf16RunsOnOneDnnWhereTheCpuHasBf16Units) {
  const std::string isa = OneDnnIsa();
  const bool units = isa == "avx512_core_bf16" || isa == "avx512_core_amx";
  EXPECT_EQ(TrainGemm::Bf16Method(), units ? "onednn" : "rounded-fp32") << isa;
}

std::vector<float> Values(size_t n, float scale, uint32_t seed) {
  std::vector<float> v(n);
  uint32_t s = seed;
  for (auto& x : v) {
    s = s * 1664525u + 1013904223u;
    x = scale * (static_cast<float>(s >> 8) / static_cast<float>(1u << 24) - 0.5f);
  }
  return v;
}

std::vector<float> Maybe(const std::vector<float>& v, bool bf16) {
  if (!bf16) return v;
  std::vector<float> r(v.size());
  RoundToBf16(v.data(), v.size(), r.data());
  return r;
}

// c[i, j] = sum_l a(i, l) b(l, j) in double, and the sum of the terms'
// magnitudes, which bounds the fp32 rounding error of any summation order.
struct Ref {
  std::vector<double> value, magnitude;
};
template <class A, class B>
Ref Product(int rows, int cols, int inner, A a, B b) {
  Ref r{std::vector<double>(static_cast<size_t>(rows) * cols), std::vector<double>(static_cast<size_t>(rows) * cols)};
  for (int i = 0; i < rows; ++i)
    for (int j = 0; j < cols; ++j) {
      double s = 0, m = 0;
      for (int l = 0; l < inner; ++l) {
        const double t = static_cast<double>(a(i, l)) * b(l, j);
        s += t;
        m += std::fabs(t);
      }
      r.value[static_cast<size_t>(i) * cols + j] = s;
      r.magnitude[static_cast<size_t>(i) * cols + j] = m;
    }
  return r;
}

// got = base + ref within fp32 rounding (a few ulps of the magnitude).
void ExpectNear(const std::vector<float>& got, const std::vector<float>& base, const Ref& ref, const char* what) {
  ASSERT_EQ(got.size(), ref.value.size());
  for (size_t i = 0; i < got.size(); ++i) {
    const double want = (base.empty() ? 0.0 : base[i]) + ref.value[i];
    const double tol = 1e-6 * (ref.magnitude[i] + std::fabs(base.empty() ? 0.0 : base[i])) + 1e-30;
    ASSERT_NEAR(got[i], want, tol) << what << " [" << i << "]";
  }
}

struct Mode {
  const char* name;
  GemmLibrary lib;
  DensePrecision precision;
};
const Mode kModes[] = {{"openblas fp32", GemmLibrary::kOpenBlas, DensePrecision::kFp32},
                       {"onednn fp32", GemmLibrary::kOneDnn, DensePrecision::kFp32},
                       {"auto fp32", GemmLibrary::kAuto, DensePrecision::kFp32},
                       {"bf16", GemmLibrary::kAuto, DensePrecision::kBf16}};

// Each product, in each mode, equals the double-precision product of its
// operands (rounded to bf16 first in bf16) up to fp32 summation error: in
// bf16, operands are rounded to nearest even and products accumulate in
// fp32, whichever path runs them.
TEST(TrainGemm, ProductsMatchADoubleReference) {
  struct Shape {
    int m, n, k;
  };
  for (const Shape s : {Shape{37, 19, 45}, Shape{130, 70, 300}, Shape{64, 1, 33}, Shape{5, 16, 3}}) {
    const int m = s.m, n = s.n, k = s.k;
    const auto x = Values(static_cast<size_t>(m) * k, 2.0f, 1), w = Values(static_cast<size_t>(n) * k, 0.5f, 2);
    const auto bias = Values(n, 0.2f, 3), dy = Values(static_cast<size_t>(m) * n, 1.0f, 4);
    const auto dw0 = Values(static_cast<size_t>(n) * k, 0.1f, 5);  // gradients already there: dw is added to
    for (const Mode& mode : kModes) {
      SCOPED_TRACE(std::string(mode.name) + " " + std::to_string(m) + "x" + std::to_string(n) + "x" +
                   std::to_string(k));
      const bool bf16 = mode.precision == DensePrecision::kBf16;
      const auto xr = Maybe(x, bf16), wr = Maybe(w, bf16), dyr = Maybe(dy, bf16);
      TrainGemm gemm;
      gemm.set_fp32_library(mode.lib);
      gemm.set_precision(mode.precision);
      for (int rep = 0; rep < 2; ++rep) {  // the second time on the cached primitives
        std::vector<float> y(static_cast<size_t>(m) * n), yrelu(y.size());
        gemm.Forward(x.data(), w.data(), bias.data(), m, n, k, false, y.data());
        gemm.Forward(x.data(), w.data(), bias.data(), m, n, k, true, yrelu.data());
        const Ref fwd = Product(m, n, k, [&](int i, int l) { return xr[static_cast<size_t>(i) * k + l]; },
                                [&](int l, int j) { return wr[static_cast<size_t>(j) * k + l]; });
        std::vector<float> b(y.size());
        for (int i = 0; i < m; ++i)
          for (int j = 0; j < n; ++j) b[static_cast<size_t>(i) * n + j] = bias[j];
        ExpectNear(y, b, fwd, "forward");
        for (size_t i = 0; i < y.size(); ++i) ASSERT_EQ(yrelu[i], std::max(y[i], 0.0f)) << i;

        std::vector<float> dw = dw0, dx(static_cast<size_t>(m) * k);
        gemm.Backward(dy.data(), x.data(), w.data(), m, n, k, dw.data(), dx.data());
        ExpectNear(dw, dw0,
                   Product(n, k, m, [&](int j, int i) { return dyr[static_cast<size_t>(i) * n + j]; },
                           [&](int i, int l) { return xr[static_cast<size_t>(i) * k + l]; }),
                   "weight gradient");
        ExpectNear(dx, {},
                   Product(m, k, n, [&](int i, int j) { return dyr[static_cast<size_t>(i) * n + j]; },
                           [&](int j, int l) { return wr[static_cast<size_t>(j) * k + l]; }),
                   "input gradient");
        // Either product alone gives the same.
        std::vector<float> dw_only = dw0, dx_only(dx.size());
        gemm.Backward(dy.data(), x.data(), w.data(), m, n, k, dw_only.data(), nullptr);
        gemm.Backward(dy.data(), x.data(), w.data(), m, n, k, nullptr, dx_only.data());
        EXPECT_EQ(dw_only, dw);
        EXPECT_EQ(dx_only, dx);
      }
    }
  }
}

double RelativeError(const float* a, const float* b, size_t n) {
  double num = 0, den = 0;
  for (size_t i = 0; i < n; ++i) {
    num += (static_cast<double>(a[i]) - b[i]) * (static_cast<double>(a[i]) - b[i]);
    den += static_cast<double>(b[i]) * b[i];
  }
  return std::sqrt(num / std::max(den, 1e-300));
}

// An MLP's forward pass and gradients in bf16 agree with fp32's to bf16
// precision (8 significant bits: 2^-8 relative per rounding, a few
// roundings deep), and are not simply fp32's. The gradients are compared
// on the same activations: where bf16 moves a pre-activation across zero,
// its ReLU passes another gradient, which no precision bound covers.
TEST(TrainGemm, Bf16MlpAgreesWithFp32WithinBf16Precision) {
  ParamSet ps;
  Mlp mlp(&ps, "m", 29, {64, 32, 1}, false, 3);
  const int B = 96;
  const auto x = Values(static_cast<size_t>(B) * 29, 2.0f, 9);
  const auto dout = Values(B, 1.0f, 10);
  TrainGemm fp32, bf16;
  bf16.set_precision(DensePrecision::kBf16);
  Mlp::State sf, sh;
  const float* of = mlp.Forward(&fp32, ps.data(), x.data(), B, &sf);
  const float* oh = mlp.Forward(&bf16, ps.data(), x.data(), B, &sh);
  const double eout = RelativeError(oh, of, B);
  EXPECT_LT(eout, 0.01);
  EXPECT_GT(eout, 1e-6);  // bf16 did round
  auto grads = [&](TrainGemm* gemm, std::vector<float>* g, std::vector<float>* dx) {
    Mlp::State st = sf;  // fp32's activations
    std::vector<float> d = dout;
    g->assign(ps.size(), 0.0f);
    dx->resize(x.size());
    mlp.Backward(gemm, ps.data(), x.data(), B, &st, d.data(), g->data(), dx->data());
  };
  std::vector<float> gf, dxf, gh, dxh;
  grads(&fp32, &gf, &dxf);
  grads(&bf16, &gh, &dxh);
  const double eg = RelativeError(gh.data(), gf.data(), gf.size()), edx = RelativeError(dxh.data(), dxf.data(), dxf.size());
  EXPECT_LT(eg, 0.01);
  EXPECT_LT(edx, 0.01);
  EXPECT_GT(eg, 1e-6);
  EXPECT_GT(edx, 1e-6);
}

}  // namespace
}  // namespace embark
