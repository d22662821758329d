// Objectives: the loss a model's outputs are trained on, kept apart from the
// model (which only maps samples to outputs) and from the trainer (which
// only drives steps). Binary cross-entropy on logits is the CTR objective;
// a retrieval objective (in-batch softmax) couples the samples of a batch,
// which is why an objective says whether it is separable.
#pragma once

#include <cstddef>
#include <memory>
#include <string>

#include "util/status.h"

namespace embark {

// Sums over the samples an objective saw, for progress and calibration.
struct ObjectiveSums {
  double loss = 0;    // sum of per-sample losses
  double pred = 0;    // sum of predicted click probabilities
  double labels = 0;  // sum of labels (clicks)
};

class Objective {
 public:
  virtual ~Objective() = default;
  virtual const char* name() const = 0;
  // True when a sample's loss depends on its own outputs only: the trainer
  // then evaluates it on each thread's share of the batch in the same
  // parallel pass as forward and backward. Otherwise it sees the whole batch
  // at once, between the two.
  virtual bool separable() const = 0;
  // For samples [0, n) with outputs out[n * outputs] and labels[n]: writes
  // scale * d(loss)/d(out) into dout and adds the sums into *sums.
  virtual void Compute(const float* out, const float* labels, size_t n, int outputs, float scale, float* dout,
                       ObjectiveSums* sums) const = 0;
};

// Binary cross-entropy on one logit per sample.
std::unique_ptr<Objective> NewBinaryCrossEntropy();

// By name: "bce" (binary cross-entropy).
Result<std::unique_ptr<Objective>> NewObjective(const std::string& name);

}  // namespace embark
