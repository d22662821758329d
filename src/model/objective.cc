#include "model/objective.h"

#include <algorithm>
#include <cmath>

#include "model/model.h"

namespace embark {
namespace {

class BinaryCrossEntropy : public Objective {
 public:
  const char* name() const override { return "bce"; }
  bool separable() const override { return true; }
  void Compute(const float* out, const float* labels, size_t n, int outputs, float scale, float* dout,
               ObjectiveSums* sums) const override {
    double loss = 0, pred = 0, clicks = 0;
    for (size_t k = 0; k < n; ++k) {
      const float z = out[k * outputs], y = labels[k];
      // log(1 + e^-|z|) + max(z, 0) - z*y: stable binary cross-entropy on logits.
      loss += std::log1p(std::exp(-std::fabs(z))) + std::max(z, 0.0f) - z * y;
      const float p = Sigmoid(z);
      pred += p;
      clicks += y;
      dout[k * outputs] = (p - y) * scale;
    }
    sums->loss += loss;
    sums->pred += pred;
    sums->labels += clicks;
  }
};

}  // namespace

std::unique_ptr<Objective> NewBinaryCrossEntropy() { return std::make_unique<BinaryCrossEntropy>(); }

Result<std::unique_ptr<Objective>> NewObjective(const std::string& name) {
  if (name == "bce") return NewBinaryCrossEntropy();
  return Status::InvalidArgument("unknown objective '" + name + "' (expected bce)");
}

}  // namespace embark
