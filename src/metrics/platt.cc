#include "metrics/platt.h"

#include <cmath>
#include <string>

namespace embark {

Result<PlattScaling> FitPlatt(const std::vector<double>& z, const std::vector<float>& y) {
  const size_t n = z.size();
  if (n != y.size()) return Status::InvalidArgument("calibration: logits and labels differ in count");
  double pos = 0;
  for (float l : y) pos += l > 0.5f ? 1 : 0;
  const double neg = static_cast<double>(n) - pos;
  if (n < 2 || pos == 0 || neg == 0)
    return Status::InvalidArgument("calibration needs held-out samples of both classes (has " +
                                   std::to_string(static_cast<uint64_t>(pos)) + " clicks and " +
                                   std::to_string(static_cast<uint64_t>(neg)) + " non-clicks)");
  if (n < kMinPlattSamples)
    return Status::InvalidArgument("calibration needs at least " + std::to_string(kMinPlattSamples) +
                                   " held-out samples (has " + std::to_string(n) +
                                   "): a fit on fewer moves the probabilities by its own noise");
  const double t1 = (pos + 1) / (pos + 2), t0 = 1 / (neg + 2);
  auto loss = [&](double a, double b) {
    double s = 0;
    for (size_t i = 0; i < n; ++i) {
      const double u = a * z[i] + b, t = y[i] > 0.5f ? t1 : t0;
      // -(t log p + (1 - t) log(1 - p)) with p = sigmoid(u), stably.
      s += (u > 0 ? u + std::log1p(std::exp(-u)) : std::log1p(std::exp(u))) - t * u;
    }
    return s;
  };
  double a = 1, b = std::log(t1 * pos + t0 * neg) - std::log(n - (t1 * pos + t0 * neg));
  double f = loss(a, b);
  for (int it = 0; it < 100; ++it) {
    // Gradient and Hessian of the loss in (a, b).
    double ga = 0, gb = 0, haa = 0, hab = 0, hbb = 0;
    for (size_t i = 0; i < n; ++i) {
      const double u = a * z[i] + b, p = 1 / (1 + std::exp(-u)), t = y[i] > 0.5f ? t1 : t0;
      const double d = p - t, w = p * (1 - p);
      ga += d * z[i];
      gb += d;
      haa += w * z[i] * z[i];
      hab += w * z[i];
      hbb += w;
    }
    haa += 1e-12;
    hbb += 1e-12;
    const double det = haa * hbb - hab * hab;
    if (!(det > 0)) break;
    double da = -(hbb * ga - hab * gb) / det, db = -(haa * gb - hab * ga) / det;
    // Halve the Newton step until the loss does not rise.
    double step = 1, fn = f;
    for (int k = 0; k < 40; ++k, step /= 2) {
      fn = loss(a + step * da, b + step * db);
      if (fn <= f) break;
    }
    if (!(fn <= f)) break;
    a += step * da;
    b += step * db;
    const bool done = f - fn <= 1e-12 * (1 + std::fabs(f));
    f = fn;
    if (done) break;
  }
  if (!(a > 0) || !std::isfinite(a) || !std::isfinite(b))
    return Status::InvalidArgument("calibration: the fitted scale is not positive (" + std::to_string(a) +
                                   "): the model's scores do not rank the held-out clicks");
  PlattScaling c;
  c.a = a;
  c.b = b;
  c.samples = n;
  return c;
}

}  // namespace embark
