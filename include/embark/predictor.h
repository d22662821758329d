// Scoring with a trained model: a Predictor loads a checkpoint (verified
// byte for byte) and gives click probabilities for batches or files, and
// exact metrics on labelled data. `embark eval`, `embark predict` and
// `embark serve` stand on the same scoring path, so a sample's probability
// is the same bits whichever of them computes it and whatever batch it is in.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "embark/arrays.h"
#include "embark/batch.h"
#include "embark/checkpoint.h"
#include "embark/metrics.h"
#include "embark/reader.h"
#include "embark/status.h"

namespace embark {

struct PredictorOptions {
  int threads = 0;  // 0: one per core; at most 1024
  // RAM for the embedding tables; rows beyond it are read from a disk tier
  // under table_dir (filled from the checkpoint at open). 0: all in RAM.
  int64_t memory_budget = 0;
  std::string table_dir;
};

class Predictor {
 public:
  static Result<std::unique_ptr<Predictor>> Open(const std::string& checkpoint_dir,
                                                 const PredictorOptions& options = {});
  ~Predictor();
  Predictor(const Predictor&) = delete;
  Predictor& operator=(const Predictor&) = delete;

  const CheckpointInfo& info() const;

  // A reader of `files` with the model's data spec.
  Result<std::unique_ptr<BatchReader>> Read(const std::vector<std::string>& files,
                                            const ReadSettings& settings = {}) const;

  // Rows [begin, end) of `data` as samples of the model's data spec
  // (embark/arrays.h), appended to *batch after resetting it.
  Status Encode(const ArrayData& data, size_t begin, size_t end, Batch* batch) const;

  // Probabilities of every sample of `batch` (batch.size() values into `out`).
  Status Predict(const Batch& batch, float* out) const;

  // Scores every sample of `files` in input order, calling
  // fn(probabilities, labels, n) for consecutive runs of samples. Skipped
  // bad lines (up to max_bad_lines) get no probability.
  struct FileScores {
    int64_t samples = 0;
    int64_t bad_lines = 0;
    std::vector<std::string> bad_line_examples;
  };
  Result<FileScores> PredictFiles(const std::vector<std::string>& files, int64_t max_bad_lines,
                                  const std::function<void(const float*, const float*, size_t)>& fn) const;

  // Writes one line per input line to `out_path`: the probability ("%.9g")
  // of each scored line, and an empty line for each blank or skipped bad
  // line, so output line k belongs to input line k (a CSV header, which is
  // not data, gets none). Atomic (a temporary beside it, fsynced, renamed):
  // a failure leaves no partial file and any earlier file at that path intact.
  Result<FileScores> PredictToFile(const std::vector<std::string>& files, int64_t max_bad_lines,
                                   const std::string& out_path) const;

  // Exact metrics on labelled `files`, or labelled arrays.
  Result<Metrics> Evaluate(const std::vector<std::string>& files, int64_t max_bad_lines = 0) const;
  Result<Metrics> Evaluate(const ArrayData& data) const;

  // The checkpoint's history (history.json's text; "" when it has none).
  std::string History() const;

 private:
  // PredictFiles; with `skips`, fn also receives the positions of the blank
  // and skipped lines known so far (DataReader::TakeSkippedLines).
  using ScoreFn = std::function<void(const float*, const float*, size_t, std::vector<uint64_t>* skips)>;
  Result<FileScores> ScoreFiles(const std::vector<std::string>& files, int64_t max_bad_lines, bool skips,
                                const ScoreFn& fn) const;

  struct Rep;
  explicit Predictor(std::unique_ptr<Rep> rep);
  std::unique_ptr<Rep> rep_;
};

}  // namespace embark
