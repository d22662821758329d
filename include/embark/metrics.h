// The figures of a model on labelled data: exact (no sampling, no
// bucketing), over every sample of the files or batches given.
#pragma once

#include <cstddef>

namespace embark {

struct Metrics {
  size_t count = 0;
  double auc = 0;          // ties count one half; NaN when one class is absent
  double logloss = 0;      // mean binary cross-entropy, predictions clipped to [1e-15, 1-1e-15]
  double ne = 0;           // normalized entropy: logloss / entropy of the observed CTR
  double ctr = 0;          // observed click rate
  double mean_pred = 0;
  double calibration = 0;  // mean prediction / observed CTR
};

}  // namespace embark
