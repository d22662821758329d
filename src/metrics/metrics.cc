#include "metrics/metrics.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numeric>

namespace embark {

double Auc(const std::vector<double>& scores, const std::vector<float>& labels) {
  const size_t n = scores.size();
  // A NaN score has no rank (and would break the sort's ordering and the
  // tie loop below): the AUC of such scores is undefined.
  for (double s : scores)
    if (std::isnan(s)) return std::numeric_limits<double>::quiet_NaN();
  std::vector<uint32_t> idx(n);
  std::iota(idx.begin(), idx.end(), 0u);
  std::sort(idx.begin(), idx.end(), [&](uint32_t a, uint32_t b) { return scores[a] < scores[b]; });
  double pos_total = 0, neg_total = 0, area = 0;
  size_t i = 0;
  while (i < n) {
    size_t j = i;
    double pos = 0, neg = 0;
    while (j < n && scores[idx[j]] == scores[idx[i]]) {
      (labels[idx[j]] > 0.5f ? pos : neg) += 1;
      ++j;
    }
    // positives in this group rank above all earlier negatives, and tie with
    // this group's negatives.
    area += pos * neg_total + 0.5 * pos * neg;
    pos_total += pos;
    neg_total += neg;
    i = j;
  }
  if (pos_total == 0 || neg_total == 0) return std::numeric_limits<double>::quiet_NaN();
  return area / (pos_total * neg_total);
}

double LogLoss(const std::vector<double>& probs, const std::vector<float>& labels) {
  if (probs.empty()) return std::numeric_limits<double>::quiet_NaN();
  double sum = 0;
  for (size_t i = 0; i < probs.size(); ++i) {
    double p = std::clamp(probs[i], 1e-15, 1.0 - 1e-15);
    sum -= labels[i] > 0.5f ? std::log(p) : std::log1p(-p);
  }
  return sum / static_cast<double>(probs.size());
}

Metrics Evaluate(const std::vector<double>& probs, const std::vector<float>& labels) {
  Metrics m;
  m.count = probs.size();
  m.auc = Auc(probs, labels);
  m.logloss = LogLoss(probs, labels);
  double pos = 0, pred = 0;
  for (size_t i = 0; i < probs.size(); ++i) {
    pos += labels[i];
    pred += probs[i];
  }
  const double n = std::max<double>(1, static_cast<double>(probs.size()));
  m.ctr = pos / n;
  m.mean_pred = pred / n;
  double h = (m.ctr <= 0 || m.ctr >= 1) ? 0 : -(m.ctr * std::log(m.ctr) + (1 - m.ctr) * std::log1p(-m.ctr));
  m.ne = h > 0 ? m.logloss / h : std::numeric_limits<double>::quiet_NaN();
  m.calibration = m.ctr > 0 ? m.mean_pred / m.ctr : std::numeric_limits<double>::quiet_NaN();
  return m;
}

std::vector<ReliabilityBucket> Reliability(const std::vector<double>& probs, const std::vector<float>& labels,
                                           int buckets) {
  const size_t n = probs.size();
  std::vector<size_t> order(n);
  for (size_t i = 0; i < n; ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return probs[a] < probs[b]; });
  const size_t k = std::min<size_t>(n, static_cast<size_t>(std::max(1, buckets)));
  std::vector<ReliabilityBucket> out;
  for (size_t b = 0; b < k; ++b) {
    const size_t lo = n * b / k, hi = n * (b + 1) / k;
    ReliabilityBucket r;
    r.count = hi - lo;
    for (size_t i = lo; i < hi; ++i) {
      r.mean_pred += probs[order[i]];
      r.ctr += labels[order[i]];
    }
    r.mean_pred /= static_cast<double>(r.count);
    r.ctr /= static_cast<double>(r.count);
    out.push_back(r);
  }
  return out;
}

}  // namespace embark
