// DataSpec: how raw lines become samples (format, fields, hashing, numeric
// transform). It is saved in every checkpoint so that predict and serve parse
// exactly as training did.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "util/status.h"

namespace embark {

enum class Format { kCriteo, kLibsvm, kLibffm, kCsv };
const char* FormatName(Format f);
Result<Format> ParseFormat(const std::string& s);

// Numeric fields are fed to models as log(1 + max(x, 0)), as DLRM does.
// Missing numeric values are 0 after the transform.
enum class DenseTransform { kLog1p, kNone };

struct CsvSchema {
  char separator = ',';
  bool header = true;
  bool trim = false;                          // strip spaces around values
  std::vector<std::string> columns;           // names when there is no header
  std::string label;                          // label column
  double label_threshold = 0;                 // with use_threshold: label = value >= threshold
  bool use_threshold = false;
  std::vector<std::string> positive;          // label strings meaning 1 (else 0/1/-1 numbers)
  std::vector<std::string> numeric;           // dense columns
  std::vector<std::string> categorical;       // one token each
  std::map<std::string, std::string> multi;   // multi-valued column -> separator
  // A two-tower (retrieval) model's towers: the feature columns of the user
  // (query) tower and of the item tower, each feature column in exactly one,
  // and the item tower's categorical column that names the item.
  std::vector<std::string> user, item;
  std::string item_id;
};

// Loads a CSV schema from a TOML file; errors name the file and the key.
Result<CsvSchema> LoadCsvSchema(const std::string& path);
// The same from TOML text; `path` names it in errors.
Result<CsvSchema> ParseCsvSchema(std::string_view text, const std::string& path);

// The most sparse (and numeric) fields a sample may have, as the
// `ffm_fields` parameter's range says.
constexpr int kMaxFields = 4096;

struct DataSpec {
  Format format = Format::kCriteo;
  int num_dense = 13;
  int num_fields = 26;
  std::vector<std::string> dense_names;
  std::vector<std::string> field_names;
  uint64_t hash_salt = 0;
  // FeatureKey's version: 2 for new models, 1 for a checkpoint whose data
  // spec does not say (written before version 2), so its keys stay its own.
  int key_hash = 2;
  DenseTransform transform = DenseTransform::kLog1p;
  CsvSchema csv;

  static DataSpec Criteo();
  static DataSpec Libsvm();
  static DataSpec Libffm(int fields);
  static DataSpec Csv(const CsvSchema& schema);

  std::string ToJson() const;
  static Result<DataSpec> FromJson(const std::string& text);
};

// Which fields feed which tower of a two-tower model (from the CSV
// schema's `user`, `item` and `item_id`), as indices into a DataSpec's
// field_names and dense_names.
struct TowerFields {
  std::vector<int> user_fields, item_fields;  // sparse fields
  std::vector<int> user_dense, item_dense;    // numeric fields
  int item_id_field = -1;                     // the sparse field naming the item
};
// The towers of `spec`; an error naming what is missing when the data
// does not declare them (only a CSV schema can).
Result<TowerFields> TowersOf(const DataSpec& spec);

// Whether `path` can be read more than once (a regular file, or one that
// does not exist): false for a pipe, FIFO, socket or device.
bool IsReReadable(const std::string& path);

// A pipe or device listed twice in `files` (given as `flag`) is an error:
// its second read would wait for a writer that never comes.
Status CheckReadOnce(const std::vector<std::string>& files, const std::string& flag);

// Guesses the format from the first line of a file: 40 tab-separated fields
// is Criteo, `label f:i:v` is libffm, `label i:v` is libsvm.
Result<Format> SniffFormat(const std::string& path);

// For libffm: the number of fields, from the largest field index in the
// first lines of `path`.
Result<int> SniffFfmFields(const std::string& path);

// The data spec of a new model from the `format` and `ffm_fields`
// parameters: "auto" means CSV when a schema is given, else the format
// sniffed from `first_file`; libffm with ffm_fields 0 counts the fields in
// `first_file`'s first lines; CSV needs `schema_path` (a TOML schema).
Result<DataSpec> ResolveDataSpec(const std::string& format, int ffm_fields, const std::string& schema_path,
                                 const std::string& first_file);

}  // namespace embark
