// What a training run is given: its parameters by name (each declared once;
// `embark params` and docs/parameters.md list them), where they come from,
// and the data.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "embark/arrays.h"
#include "embark/status.h"

namespace embark {

struct TrainOptions {
  // Training files (plain, gzip or zstd; Criteo TSV, libsvm, libffm or CSV
  // with a schema) and validation files, read with the same data spec.
  std::vector<std::string> train_files;
  std::vector<std::string> valid_files;
  std::string schema_file;  // CSV schema (TOML), for format csv
  // Training and validation samples held in arrays (embark/arrays.h), in
  // place of train_files / valid_files; read in place by every epoch and
  // validation, so they must outlive Fit. A new model given no files and no
  // format or schema takes its data spec from train_arrays' columns.
  std::optional<ArrayData> train_arrays, valid_arrays;
  // Where Trainer::Fit writes the checkpoint directory.
  std::string out_dir;
  // Continue training this checkpoint: its config is the base, and the
  // parameters it fixes keep their values (the resume rule of
  // docs/parameters.md). Empty: a new model.
  std::string resume_from;
  // A TOML file of parameters, applied before the values set below.
  std::string config_file;
  // Online training (docs/online.md): when set, Fit() trains on this
  // unbounded source instead of train_files: "-" (standard input), a named
  // pipe, a directory watched for new files (each read once, in name order)
  // or a file followed as it grows. It writes delta checkpoints and
  // snapshots to out_dir and returns only once Trainer::Stop() is called
  // (or the source fails). When out_dir holds a checkpoint and resume_from
  // is empty, the run resumes it: its snapshot, deltas and stream position.
  std::string stream;
  // With stream: called with one JSON object per report_every.
  std::function<void(const std::string&)> on_stream_report;
  // Called on Fit's thread after every training step (a binding checks for
  // an interrupt there), and with each record of the run's history as it is
  // added (JSON, docs/report.md); returning false stops the run as Stop()
  // does. Batch training only.
  std::function<void()> on_step;
  std::function<bool(const std::string&)> on_history;
  // Progress line on stderr and info logs (the CLI's default).
  bool progress = false;
  bool log_info = false;

  // Sets parameter `name` (as in docs/parameters.md: "dense_lr",
  // "embedding_dim", ...) to `value`, written as on the command line
  // ("0.01", "512,256", "true"). An unknown name is refused here; the value
  // is checked, with the parameter's flag in the message, when the trainer
  // opens. Later values of the same name win.
  Status Set(const std::string& name, const std::string& value);
  const std::vector<std::pair<std::string, std::string>>& values() const { return values_; }

 private:
  std::vector<std::pair<std::string, std::string>> values_;
};

// One training parameter, from the same declaration as the CLI's flags.
struct ParamInfo {
  std::string name;           // "dense_lr"
  std::string flag;           // "--dense-lr"
  std::string type;           // "int", "float", "string", "bool", "int list", "size" (bytes, "4G"), "interval" (steps or time, "30s")
  std::string group;          // "model", "optimizer", "training", "data", "distributed"
  std::string default_value;  // as text
  std::string help;
  bool fixed_on_resume = false;  // a resumed run must keep the checkpoint's value
  std::vector<std::string> former_names;  // still read (deprecated): "wide_lr" for "first_order_lr"
};

// Every training parameter, in declaration order.
std::vector<ParamInfo> ListParams();

}  // namespace embark
