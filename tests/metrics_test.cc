#include "metrics/metrics.h"
#include "metrics/platt.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

namespace embark {
namespace {

TEST(Metrics, AucCountsPairsAndHalfTies) {
  // pos scores {0.8, 0.4}, neg scores {0.4, 0.1}: pairs (0.8>0.4), (0.8>0.1),
  // (0.4=0.4 -> 1/2), (0.4>0.1) = 3.5 of 4.
  std::vector<double> s = {0.8, 0.4, 0.4, 0.1};
  std::vector<float> y = {1, 1, 0, 0};
  EXPECT_DOUBLE_EQ(Auc(s, y), 3.5 / 4);
  EXPECT_DOUBLE_EQ(Auc({0.1, 0.2}, {1, 0}), 0.0);
  EXPECT_DOUBLE_EQ(Auc({0.5, 0.5, 0.5}, {1, 0, 1}), 0.5);
  EXPECT_TRUE(std::isnan(Auc({0.5, 0.7}, {1, 1})));
}

TEST(Metrics, LoglossNeAndCalibration) {
  std::vector<double> p = {0.9, 0.2, 0.6, 0.3};
  std::vector<float> y = {1, 0, 0, 1};
  double ll = -(std::log(0.9) + std::log(0.8) + std::log(0.4) + std::log(0.3)) / 4;
  Metrics m = Evaluate(p, y);
  EXPECT_NEAR(m.logloss, ll, 1e-15);
  EXPECT_NEAR(m.ctr, 0.5, 1e-15);
  EXPECT_NEAR(m.ne, ll / std::log(2.0), 1e-12);
  EXPECT_NEAR(m.calibration, 0.5 / 0.5, 1e-12);
  EXPECT_EQ(m.count, 4u);
  // Clipping keeps certain-but-wrong predictions finite.
  EXPECT_TRUE(std::isfinite(LogLoss({0.0, 1.0}, {1, 0})));
}

}  // namespace
}  // namespace embark

namespace embark {
namespace {

// NaN scores (a diverged model) end in an undefined AUC, at once: no hang in
// the tie loop, no broken sort.
TEST(Metrics, NanScoresGiveNanAndTerminate) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  std::vector<double> s(100000, nan);
  std::vector<float> y(100000);
  for (size_t i = 0; i < y.size(); ++i) y[i] = i % 3 == 0;
  EXPECT_TRUE(std::isnan(Auc(s, y)));
  s[7] = 0.3;
  EXPECT_TRUE(std::isnan(Auc(s, y)));
  Metrics m = Evaluate(s, y);
  EXPECT_EQ(m.count, s.size());
  EXPECT_TRUE(std::isnan(m.auc));
  EXPECT_TRUE(std::isnan(m.logloss));
}

}  // namespace
}  // namespace embark

namespace embark {
namespace {

// Labels drawn with click probability sigmoid(2 z - 1): Platt scaling of the
// logits z recovers a = 2, b = -1, and the calibrated probabilities average
// to the click rate.
TEST(Platt, RecoversAPlantedScaleAndShift) {
  std::vector<double> z;
  std::vector<float> y;
  uint64_t s = 12345;
  for (int i = 0; i < 200000; ++i) {
    s = s * 6364136223846793005ULL + 1442695040888963407ULL;
    const double zi = ((s >> 11) * (1.0 / 9007199254740992.0)) * 6 - 3;
    s = s * 6364136223846793005ULL + 1442695040888963407ULL;
    const double u = (s >> 11) * (1.0 / 9007199254740992.0);
    z.push_back(zi);
    y.push_back(u < 1 / (1 + std::exp(-(2 * zi - 1))) ? 1.0f : 0.0f);
  }
  auto c = FitPlatt(z, y);
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_NEAR(c->a, 2.0, 0.05);
  EXPECT_NEAR(c->b, -1.0, 0.05);
  EXPECT_EQ(c->samples, z.size());
  std::vector<double> p;
  for (double zi : z) p.push_back(1 / (1 + std::exp(-(c->a * zi + c->b))));
  EXPECT_NEAR(Evaluate(p, y).calibration, 1.0, 0.01);
  // The uncalibrated sigmoid(z) is far off.
  std::vector<double> raw;
  for (double zi : z) raw.push_back(1 / (1 + std::exp(-zi)));
  EXPECT_GT(std::fabs(Evaluate(raw, y).calibration - 1.0), 0.1);
}

// Data that cannot support a fit is an error that says why, not a scaling
// that ruins the model.
TEST(Platt, RefusesOneClassAndScoresThatRankBackwards) {
  auto one = FitPlatt({0.1, 0.2, 0.3}, {1, 1, 1});
  ASSERT_FALSE(one.ok());
  EXPECT_NE(one.status().message().find("both classes"), std::string::npos) << one.status().message();
  auto few = FitPlatt({-2, -1, 1, 2, -3, 3}, {0, 1, 0, 1, 1, 0});
  ASSERT_FALSE(few.ok());
  EXPECT_NE(few.status().message().find("at least 1000"), std::string::npos) << few.status().message();
  std::vector<double> z;
  std::vector<float> y;
  for (int i = 0; i < 2000; ++i) {
    z.push_back(i % 7 - 3.0);
    y.push_back(i % 7 < 3 ? 1.0f : 0.0f);  // the lower the score, the likelier a click
  }
  auto backwards = FitPlatt(z, y);
  ASSERT_FALSE(backwards.ok());
  EXPECT_NE(backwards.status().message().find("not positive"), std::string::npos) << backwards.status().message();
  EXPECT_FALSE(FitPlatt({}, {}).ok());
}

}  // namespace
}  // namespace embark
