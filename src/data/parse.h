// Line parsers for every supported format. A chunk of lines becomes samples
// appended to a Batch; each malformed line becomes a BadLine naming the file,
// line, field and reason, and contributes nothing to the batch.
#pragma once

#include <memory>
#include <string>
#include <string_view>
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

// `s` without the spaces and tabs around it (a CSV value or column name
// under the schema's `trim`).
std::string_view TrimBlanks(std::string_view s);

// Splits one CSV line at `sep`, honouring double quotes ("" is a literal
// quote); false for an unterminated quote.
bool SplitCsvLine(std::string_view line, char sep, std::vector<std::string>* out);

Result<ColumnPlan> MakeColumnPlan(const DataSpec& spec, const std::string& header_line, const std::string& file);

// Parses every line of `chunk` (skipping `skip_lines` leading lines, e.g. a
// CSV header). `plan` is required for CSV and ignored otherwise. With
// `skipped`, adds for every blank or bad line the number of samples in `out`
// before it, so a caller can line its output up with the input's lines.
void ParseChunk(const Chunk& chunk, const DataSpec& spec, const ColumnPlan* plan, size_t skip_lines, Batch* out,
                std::vector<BadLine>* bad, std::vector<uint32_t>* skipped = nullptr);

// One input of a model as a caller supplies it when rows arrive one by one
// (embark serve): the spec's numeric columns and sparse fields by name.
struct InputField {
  enum Kind : uint8_t {
    kNumber,  // a numeric column (Criteo: an integer)
    kToken,   // one categorical value (Criteo: a hexadecimal id)
    kTokens,  // several values in one string: a CSV multi-valued column
              // ("a|b"), or libsvm/libffm "index:value index:value"
  };
  std::string name;
  Kind kind = kNumber;
  int slot = 0;  // dense index (kNumber) or field index
  char sep = 0;  // kTokens: separator between values
  bool integer = false;  // kNumber: only integers are valid (Criteo)
};

// A raw value: missing (JSON null, an empty string), a number or a string.
struct RawValue {
  enum Kind : uint8_t { kMissing, kNumber, kString } kind = kMissing;
  double number = 0;
  std::string_view text;
};

// Builds samples from raw values with exactly the validation, hashing and
// transforms that ParseChunk applies to the same values in a file, so a row
// scores the same whether it is read from disk or sent over the network.
class RowEncoder {
 public:
  explicit RowEncoder(const DataSpec& spec);
  const std::vector<InputField>& inputs() const { return inputs_; }
  int num_dense() const { return spec_.num_dense; }
  int num_fields() const { return spec_.num_fields; }
  // Appends one sample (label 0) from values[i] for inputs()[i]; on error
  // appends nothing and returns "field NAME: reason".
  std::string Append(const RawValue* values, Batch* out) const;

 private:
  DataSpec spec_;
  std::vector<InputField> inputs_;
};

}  // namespace embark
