#include "metrics/metrics.h"

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
