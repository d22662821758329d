#include "nn/layers.h"

#include <gtest/gtest.h>

#include <cmath>

#include "nn/dense_optimizer.h"

namespace embark {
namespace {

TEST(Linear, ForwardMatchesNaive) {
  InitBlas();
  ParamSet ps;
  Linear l(&ps, "l", 3, 2, 7);
  float* p = ps.data();
  p[6] = 0.5f;  // bias[0]
  p[7] = -1.0f;
  const float x[6] = {1, 2, 3, -1, 0, 4};
  float y[4];
  TrainGemm gemm;
  l.Forward(&gemm, p, x, 2, y, false);
  for (int b = 0; b < 2; ++b)
    for (int o = 0; o < 2; ++o) {
      float want = p[6 + o];
      for (int i = 0; i < 3; ++i) want += x[b * 3 + i] * p[o * 3 + i];
      EXPECT_NEAR(y[b * 2 + o], want, 1e-5);
    }
  float yr[4];
  l.Forward(&gemm, p, x, 2, yr, true);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(yr[i], std::max(0.0f, y[i]));
}

// loss = sum(out * w) for fixed random w; checks dParams and dInput.
TEST(Mlp, GradientsMatchFiniteDifferences) {
  InitBlas();
  ParamSet ps;
  Mlp mlp(&ps, "m", 5, {7, 6, 3}, false, 11);
  const int B = 4;
  std::vector<float> x(B * 5), w(B * 3);
  for (size_t i = 0; i < x.size(); ++i) x[i] = std::sin(1.3f * i) + 0.1f;
  for (size_t i = 0; i < w.size(); ++i) w[i] = std::cos(0.7f * i);
  Mlp::State st;
  TrainGemm gemm;
  auto loss = [&]() {
    const float* out = mlp.Forward(&gemm, ps.data(), x.data(), B, &st);
    double l = 0;
    for (size_t i = 0; i < w.size(); ++i) l += static_cast<double>(out[i]) * w[i];
    return l;
  };
  loss();
  std::vector<float> g(ps.size(), 0.0f), dx(x.size()), dout = w;
  mlp.Backward(&gemm, ps.data(), x.data(), B, &st, dout.data(), g.data(), dx.data());
  const float eps = 1e-3f;
  for (size_t i = 0; i < ps.size(); ++i) {
    float keep = ps.data()[i];
    ps.data()[i] = keep + eps;
    double lp = loss();
    ps.data()[i] = keep - eps;
    double lm = loss();
    ps.data()[i] = keep;
    EXPECT_NEAR((lp - lm) / (2 * eps), g[i], 2e-3 + 1e-2 * std::fabs(g[i])) << "param " << i;
  }
  for (size_t i = 0; i < x.size(); ++i) {
    float keep = x[i];
    x[i] = keep + eps;
    double lp = loss();
    x[i] = keep - eps;
    double lm = loss();
    x[i] = keep;
    EXPECT_NEAR((lp - lm) / (2 * eps), dx[i], 2e-3 + 1e-2 * std::fabs(dx[i])) << "input " << i;
  }
}

TEST(DenseOptimizer, AdamFirstStepAndSchedule) {
  DenseOptimizerConfig c;
  c.kind = DenseOptKind::kAdam;
  c.lr = 0.1f;
  c.warmup_steps = 4;
  c.decay = LrDecay::kLinear;
  c.decay_steps = 10;
  DenseOptimizer opt(c, 2);
  EXPECT_FLOAT_EQ(opt.CurrentLr(), 0.025f);
  float w[2] = {1, 1};
  const float g[2] = {2, -3};
  opt.Step(w, g);
  EXPECT_NEAR(w[0], 1 - 0.025f, 1e-6);
  EXPECT_NEAR(w[1], 1 + 0.025f, 1e-6);
  for (int i = 0; i < 3; ++i) opt.Step(w, g);
  EXPECT_FLOAT_EQ(opt.CurrentLr(), 0.1f);  // warm-up done
  for (int i = 0; i < 5; ++i) opt.Step(w, g);
  EXPECT_NEAR(opt.CurrentLr(), 0.05f, 1e-6);  // half way through linear decay
  for (int i = 0; i < 20; ++i) opt.Step(w, g);
  EXPECT_NEAR(opt.CurrentLr(), 0.0f, 1e-7);
}

TEST(DenseOptimizer, SgdAndAdagrad) {
  DenseOptimizerConfig c;
  c.kind = DenseOptKind::kSgd;
  c.lr = 0.5f;
  DenseOptimizer sgd(c, 1);
  float w = 1;
  const float g = 2;
  sgd.Step(&w, &g);
  EXPECT_FLOAT_EQ(w, 0.0f);
  c.kind = DenseOptKind::kAdagrad;
  DenseOptimizer ada(c, 1);
  w = 1;
  ada.Step(&w, &g);
  EXPECT_NEAR(w, 0.5f, 1e-6);
}

}  // namespace
}  // namespace embark
