// The figures of a run as JSON: what `embark gen|train|eval --json` print,
// and what a binding hands back. Keys are stable (scripts and the e2e tests
// read them); numbers that are not finite (AUC with one class) are null.
#pragma once

#include <string>

#include <nlohmann/json_fwd.hpp>

#include "gen/gen.h"
#include "metrics/metrics.h"
#include "train/trainer.h"

namespace embark {

// auc, logloss, normalized_entropy, calibration, ctr, rows.
nlohmann::json ToJson(const Metrics& m);

// The training figures (samples, steps, epochs, throughput, phase seconds,
// memory, ...), the distributed ones when r.ranks > 1, and the validation
// metrics (as ToJson(Metrics)) when r.has_valid. `model` is the model's name.
nlohmann::json ToJson(const TrainReport& r, const std::string& model);

// rows, valid_rows, and the figures of the validation data when there is
// some (else of the training data): ctr, optimal_auc, optimal_logloss,
// first_order_auc; plus the training data's train_optimal_auc and
// train_optimal_logloss. With drift (r.windows not empty): rows, ctr,
// optimal_auc and optimal_logloss of all windows together, and "windows":
// an array of {index, rows, ctr, optimal_auc, optimal_logloss,
// first_order_auc, window0_model_auc, new_id_share, path (with out_dir)}.
nlohmann::json ToJson(const GenReport& r);

}  // namespace embark
