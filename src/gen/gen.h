// `embark gen`: Criteo-format data drawn from one planted model whose true
// click probability is known for every row, so tests can measure how close
// training gets to the best possible model.
//
// The planted logit of a row is
//   bias + sum_f w[f, id_f] + sum_{f<g in interacting fields} <u[f, id_f], u[g, id_g]>
//        + sum_i beta_i * (log1p(x_i) - mean_i)
// with Zipf-distributed ids per field, Gaussian weights derived from (seed,
// field, id), and a few informative numeric fields. The pairwise part is an FM
// of rank `latent_dim`, so LR cannot reach the optimum while FM and deep
// models can. The first-order part alone is representable by LR; its AUC is
// reported as the reference for that model class.
#pragma once

#include <cstdint>
#include <string>

#include "util/status.h"

namespace embark {

// gen keeps every row's true probability in memory (20 bytes a row) to
// report the optimal AUC: rows and valid_rows are at most this.
constexpr uint64_t kMaxGenRows = 1000000000;

struct GenOptions {
  uint64_t rows = 100000;
  uint64_t seed = 1;
  std::string out;
  uint64_t valid_rows = 0;
  std::string valid_out;
  uint32_t max_vocab = 20000;  // ids in the largest field
  double zipf = 1.2;           // Zipf exponent of id frequencies
};

struct GenFigures {
  uint64_t rows = 0;
  double ctr = 0;
  double optimal_auc = 0;      // AUC of the true probabilities
  double optimal_logloss = 0;  // logloss of the true probabilities
  double first_order_auc = 0;  // AUC of the planted model's LR-representable part
};

struct GenReport {
  GenFigures train;
  GenFigures valid;  // rows == 0 when no validation file was asked for
};

Result<GenReport> Generate(const GenOptions& opt);

}  // namespace embark
