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
//
// With `drift` the data is a sequence of windows (think hours) whose planted
// model changes from one to the next, for judging online training against
// the truth of each window. Window 0's model is the one above. Then:
//  - ids appear and fade: in each field of n >= kDriftMinVocab ids, every id
//    moves min(1, n / kDriftSlideVocab) ranks a window down the Zipf ranking
//    towards the tail (a fraction accumulates: at 0.3 the ids move a rank in
//    windows 4, 7, 10, ...), and ids never seen before take the top ranks so
//    freed. An id's weights shrink with its rank as it fades.
//  - ids change their click rates: every kDriftPeriod windows, at a phase of
//    its own, each id's weights (first-order and latent) are redrawn as a mix
//    of their window-0 values and a fresh draw (kDriftChange of the fresh
//    one: correlation sqrt(1 - kDriftChange^2) with window 0), so about 1 in
//    kDriftPeriod ids changes from one window to the next.
// Rows, ids and weights are all fixed by the seed. With the defaults, the
// true model of window 0 loses 5 to 8 AUC points to the optimum by window 11
// (GenDrift tests).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "util/status.h"

namespace embark {

// gen keeps every row's true probability in memory (20 bytes a row; with
// drift 8 more for each row of the window being written) to report the
// optimal AUC: rows and valid_rows are at most this.
constexpr uint64_t kMaxGenRows = 1000000000;

// Drift (above): windows when none are asked for, the most there may be;
// the smallest field whose ids slide and the field size that slides a rank
// a window; the windows between an id's new weights and the fresh draw's
// share in them.
constexpr uint32_t kDefaultDriftWindows = 12;
constexpr uint32_t kMaxDriftWindows = 100000;
constexpr uint32_t kDriftMinVocab = 1000;
constexpr uint32_t kDriftSlideVocab = 20000;
constexpr uint32_t kDriftPeriod = 8;
constexpr double kDriftChange = 0.35;

struct GenOptions {
  uint64_t rows = 100000;
  uint64_t seed = 1;
  std::string out;
  uint64_t valid_rows = 0;
  std::string valid_out;
  uint32_t max_vocab = 20000;  // ids in the largest field
  double zipf = 1.2;           // Zipf exponent of id frequencies
  // Drift (see above): `rows` in all, split evenly over `windows` windows
  // (the first rows % windows windows get one more). Written to `out` (all
  // windows in order, one file) and/or to `out_dir`/part-NNNNN.tsv (one
  // file a window, names in time order, each written through a dot-file
  // temporary and renamed). No validation rows: each window is the test of
  // the model trained on those before it.
  bool drift = false;
  uint32_t windows = 0;  // 0: kDefaultDriftWindows
  std::string out_dir;
};

struct GenFigures {
  uint64_t rows = 0;
  double ctr = 0;
  double optimal_auc = 0;      // AUC of the true probabilities
  double optimal_logloss = 0;  // logloss of the true probabilities
  double first_order_auc = 0;  // AUC of the planted model's LR-representable part
};

// One window of drifting data.
struct GenWindow {
  uint32_t index = 0;
  std::string path;  // its file under out_dir; empty without out_dir
  GenFigures figures;
  // AUC of window 0's true model (an id it did not know counts 0) on this
  // window's rows: the best a model trained once on window 0 and never
  // updated can hope for, to set beside optimal_auc.
  double window0_model_auc = 0;
  // Share of this window's categorical values whose id was not in window
  // 0's vocabulary.
  double new_id_share = 0;
};

struct GenReport {
  GenFigures train;  // with drift: all windows together (optimal_auc over all rows)
  GenFigures valid;  // rows == 0 when no validation file was asked for
  std::vector<GenWindow> windows;  // with drift only
};

Result<GenReport> Generate(const GenOptions& opt);

}  // namespace embark
