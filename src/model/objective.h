// Objectives: the loss a model's outputs are trained on, kept apart from the
// model (which only maps samples to outputs) and from the trainer (which
// only drives steps). Binary cross-entropy on logits is the CTR objective;
// a retrieval objective (in-batch softmax) couples the samples of a batch,
// which is why an objective says whether it is separable.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "util/status.h"

namespace embark {

struct TrainConfig;

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
  // parallel pass as forward and backward, from several threads at once.
  // Otherwise it sees the whole batch at once, between the two.
  virtual bool separable() const = 0;
  // True when Compute reads each sample's item (Model::ItemKeys).
  virtual bool needs_items() const { return false; }
  // For samples [0, n) with outputs out[n * outputs], labels[n] and, when
  // needs_items(), items[n] (else null): writes scale * d(loss)/d(out) into
  // dout and adds the sums into *sums. A separable objective must not
  // change itself here (it runs on several threads at once).
  virtual void Compute(const float* out, const float* labels, const uint64_t* items, size_t n, int outputs,
                       float scale, float* dout, ObjectiveSums* sums) = 0;
  // The mean loss per sample of a model that knows nothing, for a batch of
  // `batch` samples with this mean label (a run far above it is diverging):
  // the label's entropy for cross-entropy, log(batch) for the softmax.
  virtual double ChanceLoss(double label_mean, size_t batch) const;
  // What the objective learned while training and a resumed run needs
  // (the softmax's item frequencies), as bytes kept in the checkpoint;
  // empty when nothing. LoadState refuses malformed bytes; an objective
  // that keeps no state ignores what another objective kept (a run may
  // change its objective on --resume).
  virtual std::string SaveState() const { return {}; }
  virtual Status LoadState(const std::string& bytes) { return Status::OK(); }
};

// Binary cross-entropy on one logit per sample.
std::unique_ptr<Objective> NewBinaryCrossEntropy();

// Two-tower models (outputs: a user vector u then an item vector v of `dim`
// each). Binary cross-entropy on each row's label with logit u.v / t.
std::unique_ptr<Objective> NewTowerCrossEntropy(int dim, float temperature);

struct SoftmaxOptions {
  int dim = 0;               // of each vector
  float temperature = 0.1f;  // logits are u.v / temperature
  bool logq = true;          // subtract log(estimated item frequency)
  bool remove_hits = true;   // other rows of the same item are not negatives
};
// In-batch sampled softmax: row i (a positive: label > 0) scores its item
// against every item of the batch, z_ij = u_i.v_j / t - log q_j, and its loss
// is -log softmax_j(z_i)_i. q_j, the item's frequency, is estimated while
// streaming: how often the item has come in training batches so far,
// this one included (kept in the checkpoint); rows with label 0 give their
// item as a negative only.
std::unique_ptr<Objective> NewInBatchSoftmax(const SoftmaxOptions& options);

// The objective a config asks for (objective, temperature, logq_correction,
// remove_accidental_hits) for a model with these outputs; `tower_dim` > 0
// for a two-tower model.
Result<std::unique_ptr<Objective>> NewObjective(const TrainConfig& cfg, int tower_dim);

}  // namespace embark
