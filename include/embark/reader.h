// Reading data files into batches with a model's data spec (the format,
// hashing and numeric transform its checkpoint fixes), so that a caller of
// the API feeds Trainer::Step and Predictor::Predict exactly what embark's
// own loops feed them.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "embark/batch.h"
#include "embark/status.h"

namespace embark {

struct ReadSettings {
  int batch_size = 4096;
  // Samples mixed at once (0 keeps input order) and the shuffle's seed.
  int64_t shuffle_window = 0;
  uint64_t seed = 1;
  // Malformed lines skipped before reading fails (each is counted and the
  // first ones are kept as examples: file:line: reason).
  int64_t max_bad_lines = 0;
  int parse_threads = 1;
};

class BatchReader {
 public:
  virtual ~BatchReader() = default;
  // The next batch (at most batch_size samples) into *batch; false at the
  // end. An error names the file and line.
  virtual Result<bool> Next(Batch* batch) = 0;
  // Lines skipped so far, and the first ones (file:line: reason).
  virtual int64_t bad_lines() const = 0;
  virtual std::vector<std::string> bad_line_examples() const = 0;
};

}  // namespace embark
