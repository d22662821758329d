// Exact evaluation metrics over a whole set of predictions.
#pragma once

#include <cstddef>
#include <vector>

#include "embark/metrics.h"

namespace embark {

double Auc(const std::vector<double>& scores, const std::vector<float>& labels);
double LogLoss(const std::vector<double>& probs, const std::vector<float>& labels);
Metrics Evaluate(const std::vector<double>& probs, const std::vector<float>& labels);

}  // namespace embark
