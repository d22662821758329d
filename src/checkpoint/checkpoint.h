// Checkpoints: a directory with the model's config, data spec, dense
// weights, embedding rows and all optimizer state, plus a manifest of sizes
// and checksums. Format in docs/checkpoint.md.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "model/model.h"
#include "util/status.h"

namespace embark {

constexpr int kCheckpointVersion = 1;

struct TrainerState {
  int epochs_done = 0;
  int64_t step = 0;
  uint64_t samples = 0;
  double best_auc = 0;
};

struct DenseOptState {
  int64_t step = 0;
  std::vector<std::vector<float>> slots;
};

// Writes the checkpoint into a staging directory beside `dir`, fsyncs every
// file and the directory, then swaps it into place atomically.
Status SaveCheckpoint(const std::string& dir, const Model& model, const DenseOptState& opt, const TrainerState& ts);

struct LoadedCheckpoint {
  std::unique_ptr<Model> model;
  DenseOptState opt;
  TrainerState state;
};

// Verifies the manifest, sizes and checksums before reading anything else;
// a truncated or corrupted checkpoint is refused with the reason.
Result<LoadedCheckpoint> LoadCheckpoint(const std::string& dir);

}  // namespace embark
