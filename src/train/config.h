// Every training parameter, declared once. The declaration table in
// config.cc feeds the TOML config reader, the CLI flags and their --help,
// validation, and docs/parameters.md (`embark params --markdown`).
#pragma once

#include <chrono>
#include <cstdint>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "util/status.h"

namespace embark {

// A cadence: every `steps` training steps, or every `seconds` of wall time
// (one of the two); neither is off. Parameters of this type
// (checkpoint_every) take "500" (steps), "250ms", "10s", "5m", "1h" (time;
// a decimal number such as "1.5h" too) or "0" (off).
struct Interval {
  int64_t steps = 0;
  double seconds = 0;
  bool off() const { return steps == 0 && seconds == 0; }
  bool operator==(const Interval& o) const { return steps == o.steps && seconds == o.seconds; }
};
// "500" steps; "250ms","10s","5m","1h" time; "0" off; else InvalidArgument naming the text.
Result<Interval> ParseInterval(const std::string& text);
// The text ParseInterval reads back as `iv`: "0", "500", "30s", "10m", "1.5h", "250ms".
std::string IntervalStr(const Interval& iv);

// When an Interval comes round, asked after each step: Due(step, now) is
// true when `step` is a multiple of its steps, or when its seconds have
// passed since it was last due (or since Start). The clock is passed in.
class Cadence {
 public:
  using Clock = std::chrono::steady_clock;
  Cadence(Interval iv, Clock::time_point start) : iv_(iv), last_(start) {}
  bool Due(int64_t step, Clock::time_point now) {
    if (iv_.steps > 0) return step % iv_.steps == 0;
    if (iv_.seconds <= 0 || std::chrono::duration<double>(now - last_).count() < iv_.seconds) return false;
    last_ = now;
    return true;
  }

 private:
  Interval iv_;
  Clock::time_point last_;
};

struct TrainConfig {
  // model
  std::string model = "dlrm";
  int embedding_dim = 16;
  std::vector<int> bottom_mlp = {512, 256, 64};
  std::vector<int> top_mlp = {512, 256};
  std::vector<int> mlp = {400, 400, 400};
  int cross_layers = 3;
  float init_scale = 0.01f;
  // two_tower (docs/retrieval.md)
  std::vector<int> tower_mlp = {64};
  int tower_dim = 32;
  bool tower_normalize = true;
  // objective
  std::string objective = "auto";
  float temperature = 0.1f;
  bool logq_correction = true;
  bool remove_accidental_hits = true;
  // optimizers
  std::string sparse_optimizer = "adam";
  float sparse_lr = 0.003f;
  std::string first_order_optimizer = "adam";
  float first_order_lr = 0.003f;
  float sparse_l2 = 0.0f;
  float ftrl_l1 = 0.0f;
  float adagrad_init = 0.0f;
  std::string dense_optimizer = "adam";
  float dense_lr = 0.003f;
  float weight_decay = 0.0f;
  int64_t warmup_steps = 0;
  std::string lr_decay = "none";
  int64_t decay_steps = 0;
  // training
  int epochs = 1;
  int batch_size = 2048;
  int threads = 0;  // 0 = all cores
  std::string dense_precision = "fp32";
  uint64_t seed = 1;
  bool deterministic = false;
  int64_t shuffle_window = 200000;
  int64_t eval_every = 0;
  int early_stop_patience = 0;
  std::string calibrate = "platt";
  Interval checkpoint_every;  // off
  // online training (train --stream; docs/online.md)
  Interval delta_every{0, 10};
  Interval snapshot_every{0, 3600};
  int64_t metric_window = 100000;
  Interval report_every{0, 10};
  float max_batch_delay = 1.0f;
  // storage of embedding rows (docs/storage.md)
  int64_t memory_budget = 0;  // bytes of RAM for the tables; 0: every row in RAM
  std::string table_dir;      // where rows beyond memory_budget live
  int64_t admit_min_count = 0;
  float admit_probability = 1.0f;
  int64_t max_rows = 0;
  int64_t row_ttl = 0;  // steps
  std::string row_precision = "fp32";
  // data
  std::string format = "auto";
  int64_t max_bad_lines = 0;
  int parse_threads = 1;
  int ffm_fields = 0;
  // distributed (under mpirun/srun; docs/distributed.md)
  int staleness = 1;
  std::string dense_compression = "none";
  float comm_timeout = 120;
};

// What `embark train --resume` may do with a parameter.
enum class OnResume {
  kFixed,      // it shapes the model or its stored state: the checkpoint's value stays, a different one is refused
  kMayChange,  // a setting of the run: an explicit value replaces the checkpoint's
};

struct ParamDef {
  const char* name;
  const char* group;
  const char* type;  // "int", "float", "string", "bool", "int list", "size", "interval"
  OnResume on_resume;
  const char* help;
  std::string (*get)(const TrainConfig&);
  Status (*set)(TrainConfig*, const std::string&);
  void (*copy)(const TrainConfig& from, TrainConfig* to);  // this parameter's value only, exactly
};

const std::vector<ParamDef>& TrainParams();

// A parameter's former name: still read in TOML files (the config.toml of a
// checkpoint written before the rename included) and accepted as a flag and
// in ConfigSources, as the parameter of its new name. Deprecated.
struct ParamAlias {
  const char* old_name;
  const char* name;
};
const std::vector<ParamAlias>& ParamAliases();

// The parameter named `name`, or whose former name `name` is (ParamAliases);
// null for neither. Callers record what was set under p->name.
const ParamDef* FindParam(const std::string& name);
// The command-line flag of a parameter: "--" and the name with '-' for '_'.
std::string FlagName(const std::string& param);

// Reads a TOML file of `name = value` lines (names as in TrainParams()).
// With `names`, adds the name of every parameter the file sets.
Status LoadConfigToml(const std::string& path, TrainConfig* cfg, std::set<std::string>* names = nullptr);
// The same from TOML text already in memory; `name` (a path) is used in errors.
Status ParseConfigToml(std::string_view text, const std::string& name, TrainConfig* cfg);
std::string ConfigToToml(const TrainConfig& cfg);
// Checks values and their combinations.
Status ValidateConfig(const TrainConfig& cfg);

// The resume rule. A resumed run starts from the checkpoint's config
// (`saved`); of `requested`, only the parameters named in
// `explicitly_set` (given as a flag or in --config) count: a parameter
// that may change takes the requested value, and a fixed one must equal
// the checkpoint's, else the error names it with both values.
Result<TrainConfig> ResolveResumeConfig(const TrainConfig& saved, const TrainConfig& requested,
                                        const std::set<std::string>& explicitly_set);
// OK when every fixed parameter of `cfg` equals the checkpoint's
// (`saved`); else the error of the first that differs.
Status CheckFixedParams(const TrainConfig& saved, const TrainConfig& cfg);
// The parameters as a Markdown table (docs/parameters.md).
std::string ParamsMarkdown();

}  // namespace embark
