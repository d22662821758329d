// A training run from what its user gives: the parameter sources layered
// into one TrainConfig, the resume rule applied, and the data spec resolved.
// `embark train` is this plus a communicator; a binding calls it the same way.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "embark/arrays.h"
#include "train/config.h"
#include "train/trainer.h"
#include "util/status.h"

namespace embark {

// Where a run's parameters come from, lowest precedence first: the defaults
// (or, with resume_dir, the checkpoint's config), config_file, values.
struct ConfigSources {
  std::string resume_dir;   // checkpoint directory whose config.toml is the base ('' for a new model)
  std::string config_file;  // TOML file of parameters ('' for none)
  // Explicit values (parameter name, text as on the command line), applied
  // in order after config_file; errors name the value's flag (--dense-lr).
  std::vector<std::pair<std::string, std::string>> values;
};

// The run's config, validated. Without resume_dir: defaults < config_file <
// values. With it: ResolveResumeConfig(checkpoint's config, that layering,
// the names config_file and values set), so a fixed parameter given a value
// other than the checkpoint's is an error naming both.
Result<TrainConfig> ResolveTrainConfig(const ConfigSources& src);

struct TrainRequest {
  ConfigSources params;
  std::vector<std::string> train_files;  // at least one, unless allow_no_train_files
  // A model trained on batches its caller builds (the API's Trainer::Step):
  // no training files, the data spec from the format parameter or schema.
  bool allow_no_train_files = false;
  // Online training: the samples come from a stream source, not from
  // train_files (so the data format cannot be guessed from a file).
  bool stream = false;
  std::vector<std::string> valid_files;
  std::string out_dir;
  std::string schema_file;  // CSV schema (TOML), for format csv
  // Training from a caller's arrays (no train_files): a new model given no
  // format or schema takes its data spec from their columns (ArraySpec).
  const ArrayData* arrays = nullptr;
  bool progress = true;
};

// The job `Train()` runs: the resolved config, the data spec of a new model
// (ResolveDataSpec over the first training file; a resumed model keeps its
// checkpoint's), the files and the distributed options. job.comm is left
// null for the caller to set.
Result<TrainJob> MakeTrainJob(const TrainRequest& req);

}  // namespace embark
