#include "train/config.h"

#include <cctype>
#include <charconv>
#include <cmath>
#include <sstream>

#include <toml++/toml.h>

namespace embark {
namespace {

Status ParseInt64(const std::string& s, int64_t lo, int64_t hi, int64_t* out) {
  int64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || p != s.data() + s.size()) return Status::InvalidArgument("'" + s + "' is not an integer");
  if (v < lo || v > hi)
    return Status::InvalidArgument(s + " is out of range [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
  *out = v;
  return Status::OK();
}

Status ParseF(const std::string& s, double lo, double hi, float* out) {
  double v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || p != s.data() + s.size()) return Status::InvalidArgument("'" + s + "' is not a number");
  if (!(v >= lo && v <= hi)) {
    std::ostringstream o;
    o << s << " is out of range [" << lo << ", " << hi << "]";
    return Status::InvalidArgument(o.str());
  }
  *out = static_cast<float>(v);
  return Status::OK();
}

std::string_view TrimSpaces(std::string_view s) {
  while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
  while (!s.empty() && s.back() == ' ') s.remove_suffix(1);
  return s;
}

// An int list: "64,32" or "[64, 32]"; "" or "[]" is the empty list (no
// hidden layer). An empty item ("8,,8", "8,") is an error, not skipped.
Status ParseList(const std::string& s, std::vector<int>* out) {
  out->clear();
  std::string_view t = TrimSpaces(s);
  if (t.size() >= 2 && t.front() == '[' && t.back() == ']') t = TrimSpaces(t.substr(1, t.size() - 2));
  if (t.empty()) return Status::OK();
  for (size_t start = 0;;) {
    const size_t comma = t.find(',', start);
    const std::string item(TrimSpaces(t.substr(start, comma == std::string_view::npos ? comma : comma - start)));
    if (item.empty()) return Status::InvalidArgument("'" + s + "' has an empty item");
    int64_t v = 0;
    EMBARK_RETURN_IF_ERROR(ParseInt64(item, 1, 65536, &v));
    out->push_back(static_cast<int>(v));
    if (comma == std::string_view::npos) return Status::OK();
    start = comma + 1;
  }
}

std::string ListStr(const std::vector<int>& v) {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) s += (i ? "," : "") + std::to_string(v[i]);
  return s;
}

Status ParseSize(const std::string& s, int64_t* out) {
  std::string t = s;
  int shift = 0;
  if (!t.empty()) {
    const char u = static_cast<char>(std::toupper(static_cast<unsigned char>(t.back())));
    const int sh = u == 'K' ? 10 : u == 'M' ? 20 : u == 'G' ? 30 : u == 'T' ? 40 : -1;
    if (sh >= 0) {
      shift = sh;
      t.pop_back();
    }
  }
  int64_t v = 0;
  auto [p, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
  if (t.empty() || ec != std::errc() || p != t.data() + t.size() || v < 0 || v > (int64_t{1} << 50 >> shift))
    return Status::InvalidArgument("'" + s + "' is not a size (bytes, or a number with K, M, G or T)");
  *out = v << shift;
  return Status::OK();
}

std::string FloatStr(float f) {
  std::ostringstream o;
  o << f;
  return o.str();
}

Status OneOf(const std::string& v, std::initializer_list<const char*> options) {
  std::string all;
  for (const char* o : options) {
    if (v == o) return Status::OK();
    all += std::string(all.empty() ? "" : ", ") + o;
  }
  return Status::InvalidArgument("'" + v + "' is not one of: " + all);
}

// Each declaration says whether the checkpoint fixes the parameter on
// --resume (FIXED) or a resumed run may change it (CHANGES); see
// ResolveResumeConfig and the preamble of ParamsMarkdown for the rule.
#define FIXED OnResume::kFixed
#define CHANGES OnResume::kMayChange
#define P_COPY(field) [](const TrainConfig& from, TrainConfig* to) { to->field = from.field; }

#define P_INT(field, group, resume, lo, hi, help)                                                           \
  ParamDef{#field, group, "int", resume, help, [](const TrainConfig& c) { return std::to_string(c.field); }, \
           [](TrainConfig* c, const std::string& s) {                                                \
             int64_t v = 0;                                                                           \
             EMBARK_RETURN_IF_ERROR(ParseInt64(s, lo, hi, &v));                                       \
             c->field = static_cast<decltype(c->field)>(v);                                           \
             return Status::OK();                                                                     \
           },                                                                                         \
           P_COPY(field)}
#define P_FLOAT(field, group, resume, lo, hi, help)                                                    \
  ParamDef{#field, group, "float", resume, help, [](const TrainConfig& c) { return FloatStr(c.field); }, \
           [](TrainConfig* c, const std::string& s) { return ParseF(s, lo, hi, &c->field); }, P_COPY(field)}
#define P_CHOICE(field, group, resume, help, ...)                                                  \
  ParamDef{#field, group, "string", resume, help, [](const TrainConfig& c) { return c.field; },   \
           [](TrainConfig* c, const std::string& s) {                                      \
             EMBARK_RETURN_IF_ERROR(OneOf(s, {__VA_ARGS__}));                              \
             c->field = s;                                                                 \
             return Status::OK();                                                          \
           },                                                                              \
           P_COPY(field)}
// A size in bytes, written as a number with an optional K, M, G or T
// (powers of 1024) and read back as plain bytes.
#define P_SIZE(field, group, resume, help)                                                           \
  ParamDef{#field, group, "size", resume, help, [](const TrainConfig& c) { return std::to_string(c.field); }, \
           [](TrainConfig* c, const std::string& s) { return ParseSize(s, &c->field); }, P_COPY(field)}
// An Interval (ParseInterval): steps or wall time; in TOML an integer
// (steps) or a string ("30s").
#define P_INTERVAL(field, group, resume, help)                                                         \
  ParamDef{#field, group, "interval", resume, help, [](const TrainConfig& c) { return IntervalStr(c.field); }, \
           [](TrainConfig* c, const std::string& s) {                                                 \
             EMBARK_ASSIGN_OR_RETURN(c->field, ParseInterval(s));                                     \
             return Status::OK();                                                                     \
           },                                                                                         \
           P_COPY(field)}
#define P_STRING(field, group, resume, help)                                                          \
  ParamDef{#field, group, "string", resume, help, [](const TrainConfig& c) { return c.field; },       \
           [](TrainConfig* c, const std::string& s) {                                                 \
             c->field = s;                                                                            \
             return Status::OK();                                                                     \
           },                                                                                         \
           P_COPY(field)}
#define P_LIST(field, group, resume, help)                                                             \
  ParamDef{#field, group, "int list", resume, help, [](const TrainConfig& c) { return ListStr(c.field); }, \
           [](TrainConfig* c, const std::string& s) { return ParseList(s, &c->field); }, P_COPY(field)}
#define P_BOOL(field, group, resume, help)                                                         \
  ParamDef{#field, group, "bool", resume, help,                                                    \
           [](const TrainConfig& c) { return std::string(c.field ? "true" : "false"); },           \
           [](TrainConfig* c, const std::string& s) {                                              \
             if (s == "true" || s == "1") c->field = true;                                         \
             else if (s == "false" || s == "0") c->field = false;                                 \
             else return Status::InvalidArgument("'" + s + "' is not true or false");              \
             return Status::OK();                                                                  \
           },                                                                                      \
           P_COPY(field)}

const std::vector<ParamDef> kParams = {
    P_CHOICE(model, "model", FIXED,
             "Model: lr, fm, deepfm, wdl (Wide&Deep), dcnv2 or dlrm (ranking), or two_tower (retrieval: a user "
             "and an item tower, docs/retrieval.md).", "lr", "fm", "deepfm", "wdl", "dcnv2", "dlrm", "two_tower"),
    P_INT(embedding_dim, "model", FIXED, 1, 1024, "Embedding dimension of every sparse field."),
    P_LIST(bottom_mlp, "model", FIXED,
           "DLRM bottom MLP hidden sizes over the numeric fields; a last layer of embedding_dim is added."),
    P_LIST(top_mlp, "model", FIXED, "DLRM top MLP hidden sizes; a last layer of 1 is added."),
    P_LIST(mlp, "model", FIXED, "Deep part of DeepFM, Wide&Deep and DCN-v2: hidden sizes; a last layer of 1 is added."),
    P_INT(cross_layers, "model", FIXED, 0, 16, "DCN-v2 cross layers (full-rank), stacked before the deep part."),
    P_LIST(tower_mlp, "model", FIXED,
           "two_tower: hidden sizes of each tower's MLP over its pooled fields and numeric values; a last layer of "
           "tower_dim is added."),
    P_INT(tower_dim, "model", FIXED, 1, 4096, "two_tower: the dimension of the user and item vectors."),
    P_BOOL(tower_normalize, "model", FIXED,
           "two_tower: L2-normalise both vectors, so the score is their cosine divided by temperature."),
    P_CHOICE(objective, "objective", CHANGES,
             "The loss: bce (binary cross-entropy on the label; for two_tower on the pair's score) or softmax "
             "(two_tower: in-batch sampled softmax, each row's item against the batch's other items); auto is "
             "softmax for two_tower and bce for the rest.", "auto", "bce", "softmax"),
    P_FLOAT(temperature, "objective", CHANGES, 1e-4, 100,
            "two_tower: the score is the vectors' dot product divided by this."),
    P_BOOL(logq_correction, "objective", CHANGES,
           "softmax: subtract log(frequency) of each in-batch item, estimated while training (corrects popular "
           "items being sampled as negatives more often)."),
    P_BOOL(remove_accidental_hits, "objective", CHANGES,
           "softmax: leave out of a row's negatives the other rows of the batch with the same item."),
    P_FLOAT(init_scale, "model", FIXED, 0, 10,
            "Embedding rows start uniform in [-init_scale, init_scale], derived from the key."),
    P_CHOICE(sparse_optimizer, "optimizer", FIXED, "Optimizer of embedding rows.", "sgd", "adagrad", "rowwise_adagrad",
             "adam", "ftrl"),
    P_FLOAT(sparse_lr, "optimizer", CHANGES, 0, 10, "Learning rate of embedding rows (alpha for FTRL)."),
    P_CHOICE(first_order_optimizer, "optimizer", FIXED,
             "Optimizer of the first-order weights (one per feature; lr, fm, deepfm, wdl).", "sgd", "adagrad",
             "rowwise_adagrad", "adam", "ftrl"),
    P_FLOAT(first_order_lr, "optimizer", CHANGES, 0, 10,
            "Learning rate of the first-order weights (alpha for FTRL)."),
    P_FLOAT(sparse_l2, "optimizer", CHANGES, 0, 100, "L2 penalty on embedding and first-order rows."),
    P_FLOAT(ftrl_l1, "optimizer", CHANGES, 0, 100, "L1 penalty of FTRL-Proximal."),
    P_FLOAT(adagrad_init, "optimizer", CHANGES, 0, 100,
            "Initial Adagrad accumulator of embedding and first-order rows: damps the first steps of rare ids."),
    P_CHOICE(dense_optimizer, "optimizer", FIXED, "Optimizer of dense layers.", "sgd", "adam", "adagrad"),
    P_FLOAT(dense_lr, "optimizer", CHANGES, 0, 10, "Learning rate of dense layers."),
    P_FLOAT(weight_decay, "optimizer", CHANGES, 0, 100, "L2 weight decay of dense layers."),
    P_INT(warmup_steps, "optimizer", CHANGES, 0, int64_t{1} << 40, "Steps of linear learning-rate warm-up (dense)."),
    P_CHOICE(lr_decay, "optimizer", CHANGES, "Dense learning-rate decay after warm-up.", "none", "linear", "cosine"),
    P_INT(decay_steps, "optimizer", CHANGES, 0, int64_t{1} << 40, "Steps over which lr_decay brings the rate to 0."),
    P_INT(epochs, "training", CHANGES, 1, 100000, "Passes over the training data."),
    P_INT(batch_size, "training", CHANGES, 1, 1 << 20, "Samples per mini-batch (split across threads)."),
    P_INT(threads, "training", CHANGES, 0, 1024, "Training threads; 0 means one per core."),
    P_CHOICE(dense_precision, "training", CHANGES,
             "Precision of the dense layers' training matmuls: fp32, or bf16 (weights, activations and gradients "
             "rounded to bf16 for the products, which accumulate in fp32; master weights, optimizer, checkpoints "
             "and inference stay fp32).", "fp32", "bf16"),
    P_INT(seed, "training", FIXED, 0, INT64_MAX, "Seed of initialisation and shuffling."),
    P_BOOL(deterministic, "training", CHANGES, "One thread and fixed seed: bit-identical results run to run."),
    P_INT(shuffle_window, "training", CHANGES, 0, int64_t{1} << 32,
          "Samples mixed at once by the shuffle buffer; 0 keeps file order."),
    P_INT(eval_every, "training", CHANGES, 0, int64_t{1} << 40, "Validate every N steps (0: only at epoch end)."),
    P_INT(early_stop_patience, "training", CHANGES, 0, 1000000,
          "Stop after N validations without a better AUC (0: never)."),
    P_CHOICE(calibrate, "training", CHANGES,
             "Post-hoc calibration of the click probability, fitted on the validation data (--valid) at every "
             "validation and stored with the model: platt (p = sigmoid(a * logit + b); AUC unchanged) or none.",
             "platt", "none"),
    P_INTERVAL(checkpoint_every, "training", CHANGES,
               "Also save the checkpoint to --out every N steps (\"500\") or every so much wall time (\"30s\", "
               "\"10m\", \"1h\"; in steps only under MPI); 0: only at the end. Each save replaces the last "
               "atomically, and --resume from one continues mid-epoch at the sample where it was written."),
    P_INTERVAL(delta_every, "online", CHANGES,
               "train --stream: write a delta checkpoint (the rows trained since the last, the dense weights, the "
               "stream position) to --out this often: steps (500) or time (10s, 5m); 0: never. A crash loses at "
               "most this much training."),
    P_INTERVAL(snapshot_every, "online", CHANGES,
               "train --stream: write a full checkpoint to --out this often (steps or time); it folds in and "
               "removes the deltas before it. 0: only when the stream is stopped."),
    P_INT(metric_window, "online", CHANGES, 2, int64_t{1} << 32,
          "train --stream: samples in the sliding window of the progressive metrics (each batch is scored "
          "before it is trained on)."),
    P_INTERVAL(report_every, "online", CHANGES,
               "train --stream: how often the progressive metrics are reported (one --json line each)."),
    P_FLOAT(max_batch_delay, "online", CHANGES, 0.001, 3600,
            "train --stream: seconds a partial batch waits for more samples before it is trained on."),
    P_SIZE(memory_budget, "storage", CHANGES,
           "RAM for the embedding tables (rows, optimizer state, index, cache metadata), e.g. 4G; rows beyond it "
           "live on disk under --table-dir. 0: every row in RAM."),
    P_STRING(table_dir, "storage", CHANGES,
             "Directory for the rows beyond --memory-budget (scratch: the checkpoint is the durable copy)."),
    P_INT(admit_min_count, "storage", CHANGES, 0, 255,
          "Create a row for an id only once training has seen it this many times, counted in a sketch of 16 MiB "
          "per table (0 or 1: at once)."),
    P_FLOAT(admit_probability, "storage", CHANGES, 0, 1,
            "Each time training sees an id without a row, create one with this probability."),
    P_INT(max_rows, "storage", CHANGES, 0, int64_t{1} << 48,
          "Cap on the rows of each table: the least recently used rows over it are dropped (0: no cap)."),
    P_INT(row_ttl, "storage", CHANGES, 0, int64_t{1} << 31,
          "Drop rows not read or updated by training for this many steps (0: never)."),
    P_CHOICE(row_precision, "storage", CHANGES,
             "Precision of embedding rows in memory: fp32, or fp16 (stochastic rounding; checkpoints stay fp32); "
             "int8 only in serving copies made by 'embark export', which cannot be trained.",
             "fp32", "fp16", "int8"),
    P_CHOICE(format, "data", FIXED, "Input format; auto guesses from the first line.", "auto", "criteo", "libsvm",
             "libffm", "csv"),
    P_INT(max_bad_lines, "data", CHANGES, 0, INT64_MAX, "Malformed lines to skip before failing."),
    P_INT(parse_threads, "data", CHANGES, 1, 64, "Threads parsing input."),
    P_INT(ffm_fields, "data", FIXED, 0, 4096, "Fields of libffm input; 0 infers them from the first lines."),
    P_INT(staleness, "distributed", CHANGES, 0, 64,
          "Steps embedding rows may lag behind their updates under MPI (0: synchronous, reproducible)."),
    P_CHOICE(dense_compression, "distributed", CHANGES, "Dense gradients on the wire under MPI: none, fp16, or onebit "
             "(sign and scale, with error feedback).", "none", "fp16", "onebit"),
    P_FLOAT(comm_timeout, "distributed", CHANGES, 1, 86400,
            "Seconds a rank waits for a peer before the job stops with an error naming it."),
};

// The first-order table was named "wide" until it was renamed, with its
// parameters, to "first_order" (Wide&Deep is the model `wdl`).
const std::vector<ParamAlias> kAliases = {
    {"wide_optimizer", "first_order_optimizer"},
    {"wide_lr", "first_order_lr"},
};

}  // namespace

Result<Interval> ParseInterval(const std::string& text) {
  auto bad = [&] {
    return Status::InvalidArgument("'" + text +
                                   "' is not an interval: steps (\"500\"), a time (\"250ms\", \"10s\", \"5m\", "
                                   "\"1h\") or 0 (off)");
  };
  const std::string_view t = TrimSpaces(text);
  size_t digits = 0;
  while (digits < t.size() && (std::isdigit(static_cast<unsigned char>(t[digits])) || t[digits] == '.')) ++digits;
  const std::string_view number = t.substr(0, digits), unit = t.substr(digits);
  if (number.empty()) return bad();
  Interval iv;
  if (unit.empty()) {  // steps: a whole number
    int64_t v = 0;
    auto [p, ec] = std::from_chars(number.data(), number.data() + number.size(), v);
    if (ec != std::errc() || p != number.data() + number.size() || v < 0 || v > (int64_t{1} << 40)) return bad();
    iv.steps = v;
    return iv;
  }
  double v = 0;
  auto [p, ec] = std::from_chars(number.data(), number.data() + number.size(), v);
  if (ec != std::errc() || p != number.data() + number.size() || !(v >= 0)) return bad();
  const double scale = unit == "ms" ? 1e-3 : unit == "s" ? 1 : unit == "m" ? 60 : unit == "h" ? 3600 : -1;
  if (scale < 0) return bad();
  iv.seconds = v * scale;
  if (!(iv.seconds <= 1e9)) return bad();  // about 30 years
  return iv;
}

std::string IntervalStr(const Interval& iv) {
  if (iv.steps > 0) return std::to_string(iv.steps);
  if (iv.seconds <= 0) return "0";
  const double s = iv.seconds;
  std::ostringstream o;
  o.precision(15);
  if (s >= 3600 && std::fmod(s, 3600) == 0) o << s / 3600 << "h";
  else if (s >= 60 && std::fmod(s, 60) == 0) o << s / 60 << "m";
  else if (s >= 1) o << s << "s";
  else o << s * 1000 << "ms";
  return o.str();
}

const std::vector<ParamDef>& TrainParams() { return kParams; }

const std::vector<ParamAlias>& ParamAliases() { return kAliases; }

const ParamDef* FindParam(const std::string& name) {
  std::string_view want = name;
  for (const auto& a : kAliases)
    if (want == a.old_name) want = a.name;
  for (const auto& p : kParams)
    if (want == p.name) return &p;
  return nullptr;
}

std::string FlagName(const std::string& param) {
  std::string flag = "--" + param;
  for (char& c : flag)
    if (c == '_') c = '-';
  return flag;
}

// What a TOML value is, for errors: "a string: \"sixteen\"", "a table".
static std::string TomlTypeName(const toml::node& v) {
  std::ostringstream o;
  switch (v.type()) {
    case toml::node_type::string: o << "a string: \"" << v.as_string()->get() << '"'; break;
    case toml::node_type::integer: o << "an integer: " << v.as_integer()->get(); break;
    case toml::node_type::floating_point: o << "a floating-point number: " << *v.as_floating_point(); break;
    case toml::node_type::boolean: o << "a boolean: " << (v.as_boolean()->get() ? "true" : "false"); break;
    case toml::node_type::array: o << "a list"; break;
    case toml::node_type::table: o << "a table"; break;
    default: o << "a date or time"; break;
  }
  return o.str();
}

// The TOML text (or, when text is null, the file at path) into cfg; with
// `names`, adds the name of every parameter it sets.
static Status ReadConfigToml(const std::string_view* text, const std::string& path, TrainConfig* cfg,
                             std::set<std::string>* names) {
  toml::table t;
  try {
    t = text != nullptr ? toml::parse(*text, path) : toml::parse_file(path);
  } catch (const toml::parse_error& e) {
    return Status::ParseError(path + ":" + std::to_string(e.source().begin.line) + ": " + std::string(e.description()));
  }
  std::set<std::string> set_here;  // by current name: a former name and its new one may not both be set
  for (auto& [k, node] : t) {
    const toml::node& v = node;  // a plain reference: lambdas below may capture it
    std::string key(k.str());
    const ParamDef* p = FindParam(key);
    if (p == nullptr) return Status::InvalidArgument(path + ": unknown parameter '" + key + "'");
    if (!set_here.insert(p->name).second)
      return Status::InvalidArgument(path + ": '" + key + "' sets '" + p->name +
                                     "' again (one is the other's former name): keep '" + p->name + "'");
    // The value must have the parameter's TOML type: `epochs = 1e3` or
    // `deterministic = 1` is a mistake to report, not to convert.
    const std::string_view type = p->type;
    auto wrong = [&](const char* expected) {
      return Status::InvalidArgument(path + ": '" + key + "': expected " + expected + ", found " + TomlTypeName(v));
    };
    std::string s;
    if (type == "string") {
      if (!v.is_string()) return wrong("a string");
      s = v.as_string()->get();
    } else if (type == "int") {
      if (!v.is_integer()) return wrong("an integer");
      s = std::to_string(v.as_integer()->get());
    } else if (type == "float") {
      if (auto* i = v.as_integer()) {
        s = std::to_string(i->get());
      } else if (auto* f = v.as_floating_point()) {
        std::ostringstream o;
        o.precision(17);
        o << f->get();
        s = o.str();
      } else {
        return wrong("a number");
      }
    } else if (type == "interval") {
      if (auto* i = v.as_integer()) s = std::to_string(i->get());  // steps, as written before time was allowed
      else if (auto* str = v.as_string()) s = str->get();
      else return wrong("an interval (steps, or a string such as \"30s\")");
    } else if (type == "size") {
      if (auto* i = v.as_integer()) s = std::to_string(i->get());
      else if (auto* str = v.as_string()) s = str->get();
      else return wrong("a size (bytes, or a string such as \"4G\")");
    } else if (type == "bool") {
      if (!v.is_boolean()) return wrong("true or false");
      s = v.as_boolean()->get() ? "true" : "false";
    } else {  // "int list"
      if (!v.is_array()) return wrong("a list of integers");
      for (auto& e : *v.as_array()) {
        // as_integer, not value<int64_t>: the latter converts a float such as
        // 6e22 to an integer, which is undefined when it does not fit.
        const auto* iv = e.as_integer();
        if (iv == nullptr) return Status::InvalidArgument(path + ": '" + key + "': expected a list of integers");
        s += (s.empty() ? "" : ",") + std::to_string(iv->get());
      }
    }
    Status st = p->set(cfg, s);
    if (!st.ok()) return Status::InvalidArgument(path + ": '" + key + "': " + st.message());
    if (names != nullptr) names->insert(p->name);
  }
  return Status::OK();
}

Status LoadConfigToml(const std::string& path, TrainConfig* cfg, std::set<std::string>* names) {
  return ReadConfigToml(nullptr, path, cfg, names);
}

Status ParseConfigToml(std::string_view text, const std::string& name, TrainConfig* cfg) {
  return ReadConfigToml(&text, name, cfg, nullptr);
}

std::string ConfigToToml(const TrainConfig& cfg) {
  std::string out;
  for (const auto& p : kParams) {
    std::string v = p.get(cfg);
    std::string t = p.type;
    if (t == "string" || (t == "interval" && v.find_first_not_of("0123456789") != std::string::npos)) {
      std::string q = "\"";
      for (char c : v) {
        if (c == '"' || c == '\\') q += '\\';
        q += c;
      }
      v = q + "\"";
    }
    if (t == "int list") v = "[" + v + "]";
    out += std::string(p.name) + " = " + v + "\n";
  }
  return out;
}

Status ValidateConfig(const TrainConfig& cfg) {
  if (cfg.model == "dlrm" && !cfg.bottom_mlp.empty() && cfg.bottom_mlp.back() == 0)
    return Status::InvalidArgument("bottom_mlp sizes must be positive");
  if (cfg.objective == "softmax" && cfg.model != "two_tower")
    return Status::InvalidArgument("objective softmax ranks a row's item against the batch's items: it needs model "
                                   "two_tower (ranking models train on bce)");
  if (!cfg.checkpoint_every.off() && cfg.early_stop_patience > 0)
    return Status::InvalidArgument(
        "--checkpoint-every and --early-stop-patience both write --out (the latest model, the best one): use one");
  if (cfg.memory_budget > 0 && cfg.table_dir.empty())
    return Status::InvalidArgument("--memory-budget keeps the rows beyond it on disk: give --table-dir too");
  if (cfg.memory_budget > 0 && cfg.memory_budget < (int64_t{16} << 20))
    return Status::InvalidArgument("--memory-budget " + std::to_string(cfg.memory_budget) +
                                   " is below the smallest budget, 16M");
  if (cfg.deterministic && cfg.threads > 1)
    return Status::InvalidArgument("deterministic runs on one thread, but threads is " + std::to_string(cfg.threads) +
                                   ": set threads to 1 or leave it out (flag or --config)");
  return Status::OK();
}

namespace {
Status FixedParamError(const ParamDef& p, const TrainConfig& saved, const TrainConfig& cfg) {
  return Status::InvalidArgument(std::string("cannot change '") + p.name + "' when resuming: the checkpoint has " +
                                 p.get(saved) + ", requested " + p.get(cfg) +
                                 " (it is fixed by the checkpoint; see docs/parameters.md)");
}
}  // namespace

Status CheckFixedParams(const TrainConfig& saved, const TrainConfig& cfg) {
  for (const auto& p : kParams)
    if (p.on_resume == OnResume::kFixed && p.get(cfg) != p.get(saved)) return FixedParamError(p, saved, cfg);
  return Status::OK();
}

Result<TrainConfig> ResolveResumeConfig(const TrainConfig& saved, const TrainConfig& requested,
                                        const std::set<std::string>& explicitly_set) {
  TrainConfig cfg = saved;
  for (const auto& name : explicitly_set)
    if (FindParam(name) == nullptr) return Status::InvalidArgument("unknown parameter '" + name + "'");
  for (const auto& p : kParams) {  // in declaration order: the first error is always the same one
    if (explicitly_set.count(p.name) == 0) continue;
    // Fixed parameters compare as written in config.toml, the form the checkpoint keeps.
    if (p.on_resume == OnResume::kFixed) {
      if (p.get(requested) != p.get(saved)) return FixedParamError(p, saved, requested);
    } else {
      p.copy(requested, &cfg);
    }
  }
  return cfg;
}

std::string ParamsMarkdown() {
  std::string out =
      "# Training parameters\n\n"
      "Generated by `embark params --markdown` from the one declaration in `src/train/config.cc`.\n"
      "Each can be given in a TOML file (`--config FILE`, `name = value`) or on the command line\n"
      "(`--name value`, with `_` written as `-`); the command line wins. In TOML a value has the\n"
      "parameter's type: an int is an integer, a float an integer or a float, a bool `true` or\n"
      "`false`, a string quoted, an int list `[a, b]`, a size or an interval an integer or a string\n"
      "(`\"4G\"`, `\"30s\"`); another type (`epochs = 1e3`) is refused. An interval is steps (`500`),\n"
      "wall time (`\"250ms\"`, `\"30s\"`, `\"10m\"`, `\"1h\"`) or `0` (off).\n\n"
      "## On `--resume`\n\n"
      "A resumed run starts from the checkpoint's config (its `config.toml`), not from the defaults.\n"
      "Values given explicitly, as a flag or in `--config`, then apply by the column *on resume*:\n\n"
      "- **may change**: a setting of the run (learning rates, penalties, schedules, epochs, batch size,\n"
      "  threads, the dense layers' precision, validation and early stopping, input handling, the wire):\n"
      "  the explicit value is used.\n"
      "- **fixed**: the checkpoint's value stays. An explicit value that differs is refused (nothing\n"
      "  is trained or written) with an error naming the parameter, the checkpoint's value and the\n"
      "  requested one. Why each is fixed:\n"
      "  - `model`, `embedding_dim`, `bottom_mlp`, `top_mlp`, `mlp`, `cross_layers`: the shapes of the\n"
      "    stored weights and embedding rows.\n"
      "  - `sparse_optimizer`, `first_order_optimizer`, `dense_optimizer`: the stored optimizer state\n"
      "    (each row's `[weights | state]` layout, the dense slots) belongs to that optimizer.\n"
      "  - `init_scale`, `seed`: rows first seen after the resume are derived from (key, seed,\n"
      "    init_scale) as the stored ones were, and each epoch's shuffle order from (seed, epoch); with\n"
      "    them fixed, 1 epoch + resume equals 2 epochs.\n"
      "  - `format`, `ffm_fields`: the checkpoint's data spec (format, fields, hashing) decides how lines\n"
      "    are parsed and keyed, in training, `predict` and `serve` alike.\n\n"
      "The sparse settings that may change (`sparse_lr`, `first_order_lr`, `sparse_l2`, `ftrl_l1`,\n"
      "`adagrad_init`) apply to the loaded tables' optimizer; `adagrad_init` only to rows created after.\n\n"
      "| name | group | type | default | on resume | description |\n|---|---|---|---|---|---|\n";
  TrainConfig def;
  for (const auto& p : kParams)
    out += std::string("| `") + p.name + "` | " + p.group + " | " + p.type + " | `" + p.get(def) + "` | " +
           (p.on_resume == OnResume::kFixed ? "fixed" : "may change") + " | " + p.help + " |\n";
  out +=
      "\n## Former names\n\n"
      "Deprecated names still accepted, as the parameter of the new name: in TOML files (`--config`,\n"
      "and the `config.toml` of checkpoints written before the rename, which load and resume as\n"
      "before) and as flags. Both names of one parameter in one file, or both as flags, are refused.\n"
      "Checkpoints record the new names.\n\n"
      "| former name | flag | now |\n|---|---|---|\n";
  for (const auto& a : kAliases)
    out += std::string("| `") + a.old_name + "` | `" + FlagName(a.old_name) + "` | `" + a.name + "` |\n";
  return out;
}

}  // namespace embark
