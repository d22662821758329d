// Post-hoc calibration of click probabilities (Platt scaling): the model's
// logit z becomes p = sigmoid(a * z + b), with a and b fitted by maximum
// likelihood on held-out data. Monotone (a > 0), so AUC is unchanged; it
// corrects a model that predicts too many or too few clicks on average, or
// is over- or under-confident, which matters where probabilities are spent
// (bidding, budget pacing).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "util/status.h"

namespace embark {

struct PlattScaling {
  double a = 1, b = 0;   // identity until fitted
  uint64_t samples = 0;  // the held-out samples it was fitted on (0: not fitted)
  bool fitted() const { return samples > 0; }
};

// The fewest held-out samples a fit is made on: on the 100 validation rows
// of a 1,000-row sample, a fit moved held-out calibration from 0.99 to 1.30.
constexpr size_t kMinPlattSamples = 1000;

// Fits a and b to (logit, label) pairs by Newton's method on the log loss,
// with Platt's smoothed targets ((N+ + 1) / (N+ + 2) for clicks, 1 / (N- + 2)
// otherwise) so that a small set cannot push probabilities to 0 or 1. An
// error when the data cannot support a fit: one class only, fewer than
// kMinPlattSamples samples, or a fit that is not increasing (a <= 0: the logits rank clicks
// no better than chance).
Result<PlattScaling> FitPlatt(const std::vector<double>& logits, const std::vector<float>& labels);

}  // namespace embark
