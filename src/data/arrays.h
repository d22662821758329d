// Samples from a caller's arrays (embark/arrays.h): the columns matched to a
// data spec's inputs, rows encoded through RowEncoder (the hashing and
// transforms every file parser applies), and a SampleSource of them for the
// training pipeline.
#pragma once

#include <memory>

#include "data/parse.h"
#include "data/pipeline.h"
#include "data/spec.h"
#include "embark/arrays.h"

namespace embark {

class ArrayEncoder {
 public:
  // Matches `a`'s columns to `spec`'s inputs; the error says which columns
  // the spec reads. With `labels`, every row needs a 0/1 label.
  static Result<std::shared_ptr<const ArrayEncoder>> Make(const DataSpec& spec, const ArrayData& a, bool labels);

  size_t rows() const { return a_.rows; }
  const DataSpec& spec() const { return spec_; }
  // Appends rows [begin, end) to `out` (shaped for the spec). An error names
  // the row and column and leaves `out` as it was before the bad row.
  Status Append(size_t begin, size_t end, Batch* out) const;

 private:
  struct Input {
    enum From : uint8_t { kDense, kId, kCsr } from;
    int col = 0;
  };
  ArrayEncoder(const DataSpec& spec, const ArrayData& a, bool labels);
  std::string Text(size_t row, const Input& in, const InputField& field, std::string* buf) const;

  DataSpec spec_;
  RowEncoder enc_;
  ArrayData a_;
  bool labels_;
  std::vector<Input> inputs_;  // one per enc_.inputs()
};

// The data spec of a new model trained from `a` alone: a CSV file's with
// columns label, dense names, id names; libsvm's for a CSR matrix alone.
Result<DataSpec> ArraySpec(const ArrayData& a);

// The rows of `enc` in input order, `block_rows` at a time.
std::unique_ptr<SampleSource> NewArraySource(std::shared_ptr<const ArrayEncoder> enc, size_t block_rows = 4096);

}  // namespace embark
