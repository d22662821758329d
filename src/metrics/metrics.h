// Exact evaluation metrics over a whole set of predictions.
#pragma once

#include <cstddef>
#include <vector>

#include "embark/metrics.h"

namespace embark {

double Auc(const std::vector<double>& scores, const std::vector<float>& labels);
double LogLoss(const std::vector<double>& probs, const std::vector<float>& labels);
Metrics Evaluate(const std::vector<double>& probs, const std::vector<float>& labels);

// One bucket of a reliability diagram: samples, their mean prediction and
// their observed click rate.
struct ReliabilityBucket {
  size_t count = 0;
  double mean_pred = 0, ctr = 0;
};
// Up to `buckets` buckets of (nearly) equal counts, by ascending prediction
// (scikit-learn's calibration_curve with strategy "quantile"): click
// probabilities crowd near 0, where equal-width buckets would hold almost
// every sample in the first one.
std::vector<ReliabilityBucket> Reliability(const std::vector<double>& probs, const std::vector<float>& labels,
                                           int buckets = 20);

}  // namespace embark
