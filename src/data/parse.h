// Line parsers for every supported format. A chunk of lines becomes samples
// appended to a Batch; each malformed line becomes a BadLine naming the file,
// line, field and reason, and contributes nothing to the batch.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "data/batch.h"
#include "data/source.h"
#include "data/spec.h"

namespace embark {

struct BadLine {
  uint64_t line = 0;
  std::string message;  // "file:line: field X: reason"
};

// For CSV: what each column of a file is, resolved from its header (or the
// schema's column list) against the schema.
struct ColumnPlan {
  enum Role : uint8_t { kIgnore, kLabel, kNumeric, kCategorical, kMulti };
  std::vector<Role> role;
  std::vector<int> slot;          // index into dense or fields
  std::vector<char> multi_sep;
  std::vector<std::string> name;
};

Result<ColumnPlan> MakeColumnPlan(const DataSpec& spec, const std::string& header_line, const std::string& file);

// Parses every line of `chunk` (skipping `skip_lines` leading lines, e.g. a
// CSV header). `plan` is required for CSV and ignored otherwise.
void ParseChunk(const Chunk& chunk, const DataSpec& spec, const ColumnPlan* plan, size_t skip_lines, Batch* out,
                std::vector<BadLine>* bad);

}  // namespace embark
