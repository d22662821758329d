#include "checkpoint/checkpoint.h"

#include <cinttypes>
#include <cmath>
#include <cstring>
#include <map>

#include <nlohmann/json.hpp>

#include "checkpoint/delta.h"
#include "checkpoint/files.h"
#include "checkpoint/table_file.h"
#include "util/fs.h"
#include "util/hash.h"
#include "util/json.h"

namespace embark {
namespace {

constexpr char kDenseMagic[8] = {'E', 'M', 'B', 'D', 'E', 'N', 'S', '1'};

template <typename T>
void Put(std::string* s, const T& v) {
  s->append(reinterpret_cast<const char*>(&v), sizeof(T));
}
void PutFloats(std::string* s, const float* p, size_t n) { s->append(reinterpret_cast<const char*>(p), n * sizeof(float)); }

// Bounds-checked reader over a file's verified bytes.
class Reader {
 public:
  Reader(std::string_view data, std::string name) : d_(data), name_(std::move(name)) {}
  template <typename T>
  Status Get(T* v) {
    if (d_.size() - pos_ < sizeof(T)) return Truncated();
    std::memcpy(v, d_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return Status::OK();
  }
  Status GetFloats(float* p, size_t n) {
    if (n > (d_.size() - pos_) / sizeof(float)) return Truncated();
    std::memcpy(p, d_.data() + pos_, n * sizeof(float));
    pos_ += n * sizeof(float);
    return Status::OK();
  }
  Status Truncated() const { return Status::Corruption(name_ + ": truncated"); }

 private:
  std::string_view d_;
  std::string name_;
  size_t pos_ = 0;
};

}  // namespace

std::string EncodeDense(const Model& m, const DenseOptState& opt) {
  std::string s(kDenseMagic, 8);
  Put<uint64_t>(&s, m.params().size());
  PutFloats(&s, m.params().data(), m.params().size());
  Put<int64_t>(&s, opt.step);
  Put<uint32_t>(&s, static_cast<uint32_t>(opt.slots.size()));
  for (const auto& v : opt.slots) {
    Put<uint64_t>(&s, v.size());
    PutFloats(&s, v.data(), v.size());
  }
  return s;
}

Status DecodeDense(std::string_view data, const std::string& path, size_t params, float* out, DenseOptState* opt) {
  Reader r(data, path);
  char magic[8];
  for (char& c : magic) EMBARK_RETURN_IF_ERROR(r.Get(&c));
  if (std::memcmp(magic, kDenseMagic, 8) != 0) return Status::Corruption(path + ": not an embark dense file");
  uint64_t n = 0;
  EMBARK_RETURN_IF_ERROR(r.Get(&n));
  if (n != params)
    return Status::Corruption(path + ": " + std::to_string(n) + " parameters, the model has " +
                              std::to_string(params));
  EMBARK_RETURN_IF_ERROR(r.GetFloats(out, n));
  EMBARK_RETURN_IF_ERROR(r.Get(&opt->step));
  uint32_t slots = 0;
  EMBARK_RETURN_IF_ERROR(r.Get(&slots));
  if (slots > 4) return Status::Corruption(path + ": bad optimizer slot count");
  for (uint32_t i = 0; i < slots; ++i) {
    uint64_t len = 0;
    EMBARK_RETURN_IF_ERROR(r.Get(&len));
    if (len != n) return Status::Corruption(path + ": optimizer slot size mismatch");
    opt->slots.emplace_back(len);
    EMBARK_RETURN_IF_ERROR(r.GetFloats(opt->slots.back().data(), len));
  }
  return Status::OK();
}

std::string Hex(uint64_t v) {
  char buf[20];
  std::snprintf(buf, sizeof(buf), "%016" PRIx64, v);
  return buf;
}

namespace {

// ---- the model's tables ----------------------------------------------------------

// Streams every row of `t` (with its metadata) into a version 2 table file,
// one block at a time.
Status WriteTable(Env* env, const std::string& path, const RowStore& t, uint64_t* bytes, uint64_t* sum) {
  const bool int8 = t.config().precision == RowPrecision::kInt8;
  EMBARK_ASSIGN_OR_RETURN(std::unique_ptr<TableFileWriter> w,
                          int8 ? TableFileWriter::CreateInt8(env, path, t.dim(), t.row_width())
                               : TableFileWriter::Create(env, path, t.dim(), t.row_width()));
  const size_t rows = t.stats().rows;
  auto it = t.NewIterator(kTableBlockRows);
  RowBatch b;
  uint64_t written = 0;
  for (;;) {
    EMBARK_ASSIGN_OR_RETURN(bool more, it->Next(&b));
    if (!more) break;
    EMBARK_RETURN_IF_ERROR(w->Add(b.keys.data(), b.size(), b.rows.data(), b.meta.data()));
    written += b.size();
  }
  if (written != rows)
    return Status::InvalidArgument(path + ": table '" + t.config().name + "' changed while being saved");
  EMBARK_RETURN_IF_ERROR(w->Finish());
  *bytes = w->bytes();
  *sum = w->checksum();
  return Status::OK();
}

// ---- writing -------------------------------------------------------------------


// Every file but the tables': config, data spec, dense state, trainer state.
Status WriteModelFiles(Env* env, const std::string& staging, const Model& model, const DenseOptState& opt,
                       const TrainerState& ts, nlohmann::json* entries) {
  nlohmann::json st = TrainerStateJson(ts);
  const std::pair<const char*, std::string> files[] = {{"config.toml", ConfigToToml(model.config())},
                                                       {"data_spec.json", model.spec().ToJson()},
                                                       {"dense.bin", EncodeDense(model, opt)},
                                                       {"trainer.json", st.dump(2)}};
  for (const auto& [name, data] : files) {
    EMBARK_RETURN_IF_ERROR(fs::WriteFileAtomic(staging + "/" + name, data, env));
    (*entries)[name] = ManifestEntry(data.size(), Checksum(data.data(), data.size()));
  }
  if (model.calibration().fitted()) {
    // Doubles as JSON numbers print with 17 significant digits: read back exactly.
    const PlattScaling& c = model.calibration();
    const std::string data =
        nlohmann::json{{"method", "platt"}, {"a", c.a}, {"b", c.b}, {"samples", c.samples}}.dump(2);
    EMBARK_RETURN_IF_ERROR(fs::WriteFileAtomic(staging + "/calibration.json", data, env));
    (*entries)["calibration.json"] = ManifestEntry(data.size(), Checksum(data.data(), data.size()));
  }
  if (!ts.history.empty() || !ts.reliability.empty()) {
    const std::string data = HistoryJson(ts, model.config().model);
    EMBARK_RETURN_IF_ERROR(fs::WriteFileAtomic(staging + "/history.json", data, env));
    (*entries)["history.json"] = ManifestEntry(data.size(), Checksum(data.data(), data.size()));
  }
  if (!ts.objective_state.empty()) {
    const std::string& data = ts.objective_state;
    EMBARK_RETURN_IF_ERROR(fs::WriteFileAtomic(staging + "/objective.bin", data, env));
    (*entries)["objective.bin"] = ManifestEntry(data.size(), Checksum(data.data(), data.size()));
  }
  return Status::OK();
}

// The tables' files, named by `suffix` (".bin", or "-R-of-N.bin").
Status WriteTables(Env* env, const std::string& staging, const Model& model, const std::string& suffix,
                   nlohmann::json* entries) {
  for (int i = 0; i < model.num_tables(); ++i) {
    const RowStore& t = *model.table(i);
    const std::string name = t.config().name + suffix;
    uint64_t bytes = 0, sum = 0;
    EMBARK_RETURN_IF_ERROR(WriteTable(env, staging + "/" + name, t, &bytes, &sum));
    (*entries)[name] = ManifestEntry(bytes, sum);
  }
  return Status::OK();
}

// Version 2, or 3 when a table is saved as int8 (a serving copy), so that
// builds that do not know int8 table files refuse it by its version.
nlohmann::json NewManifest(const Model& model) {
  nlohmann::json manifest;
  manifest["format"] = "embark-checkpoint";
  int version = kCheckpointVersion;
  for (int i = 0; i < model.num_tables(); ++i)
    if (model.table(i)->config().precision == RowPrecision::kInt8) version = kCheckpointVersionInt8;
  manifest["version"] = version;
  return manifest;
}

// The manifest goes last (its AtomicFile fsyncs the staging directory): the
// checkpoint is complete only once it is durable. Then the directory is
// swapped into place.
Status Publish(Env* env, const std::string& staging, const std::string& dir, const nlohmann::json& manifest) {
  EMBARK_RETURN_IF_ERROR(fs::WriteFileAtomic(staging + "/MANIFEST.json", manifest.dump(2), env));
  return fs::ReplaceDirAtomic(staging, dir, env);
}

// Makes an empty staging directory.
Status MakeStaging(Env* env, const std::string& staging) {
  EMBARK_RETURN_IF_ERROR(env->RemoveAll(staging));
  return env->CreateDirs(staging);
}

// Sharded checkpoints: what rank 0 tells everyone, and what everyone tells
// rank 0, as JSON text over the communicator.
Status FromRoot(Communicator* comm, const Status& at_root) {
  std::vector<Bytes> send(comm->size()), recv;
  if (comm->rank() == 0) {
    const std::string m = at_root.ok() ? "" : "E" + at_root.message();
    for (auto& b : send) b.assign(m.begin(), m.end());
  }
  EMBARK_RETURN_IF_ERROR(comm->Exchange(send, &recv));
  if (recv[0].empty()) return Status::OK();
  return Status::IOError(std::string(recv[0].begin() + 1, recv[0].end()));
}

Result<std::vector<std::string>> ToRoot(Communicator* comm, const std::string& mine) {
  std::vector<Bytes> send(comm->size()), recv;
  send[0].assign(mine.begin(), mine.end());
  EMBARK_RETURN_IF_ERROR(comm->Exchange(send, &recv));
  std::vector<std::string> out;
  for (const auto& b : recv) out.emplace_back(b.begin(), b.end());
  return out;
}

Status SaveSharded(const std::string& clean, const Model& model, const DenseOptState& opt, const TrainerState& ts,
                   Communicator* comm, Env* env) {
  const int N = comm->size(), me = comm->rank();
  // One staging name for every rank (a pid would differ between them).
  const std::string staging = clean + ".tmp-sharded";
  Status made;
  if (me == 0) {
    (void)fs::RemoveStaleStaging(clean, env);
    made = MakeStaging(env, staging);
  }
  EMBARK_RETURN_IF_ERROR(FromRoot(comm, made));
  // Every rank: its shard of each table, durable, and the manifest entries.
  const std::string suffix = "-" + std::to_string(me) + "-of-" + std::to_string(N) + ".bin";
  nlohmann::json entries = nlohmann::json::object();
  const Status wrote = WriteTables(env, staging, model, suffix, &entries);
  EMBARK_ASSIGN_OR_RETURN(
      auto reports, ToRoot(comm, wrote.ok() ? entries.dump() : "Erank " + std::to_string(me) + ": " + wrote.message()));
  Status done;
  if (me == 0) {
    nlohmann::json manifest = NewManifest(model);
    manifest["shards"] = N;
    for (const auto& r : reports) {
      if (!r.empty() && r[0] == 'E') {
        done = Status::IOError(r.substr(1));
        break;
      }
      const nlohmann::json files = nlohmann::json::parse(r);
      for (auto& [name, meta] : files.items()) manifest["files"][name] = meta;
    }
    if (done.ok()) done = WriteModelFiles(env, staging, model, opt, ts, &manifest["files"]);
    if (done.ok()) done = Publish(env, staging, clean, manifest);
    if (!done.ok()) (void)env->RemoveAll(staging);
  }
  return FromRoot(comm, done);
}

// ---- reading -------------------------------------------------------------------

}  // namespace

nlohmann::json ManifestEntry(uint64_t bytes, uint64_t sum) { return {{"bytes", bytes}, {"xxh64", Hex(sum)}}; }

Status CheckListedFiles(Env* env, const std::string& dir, const std::map<std::string, FileEntry>& files,
                        const char* what) {
  for (const auto& [name, e] : files) {
    if (name.find('/') != std::string::npos || name.find("..") != std::string::npos)
      return Status::Corruption(dir + "/MANIFEST.json: bad file name '" + name + "'");
    auto size = env->GetFileSize(dir + "/" + name);
    if (!size.ok())
      return Status::Corruption(dir + ": " + what + " lacks " + name + ", which its MANIFEST.json lists (" +
                                size.status().message() + ")");
    if (size.value() != e.bytes) return SizeMismatch(dir + "/" + name, size.value(), e.bytes);
  }
  return Status::OK();
}

// A file whose size is not its manifest entry's.
Status SizeMismatch(const std::string& path, uint64_t size, uint64_t listed) {
  return Status::Corruption(path + ": size " + std::to_string(size) + " bytes, manifest says " +
                            std::to_string(listed) + (size < listed ? " (truncated?)" : " (appended to?)"));
}

// Reads a small file whole and checks it against its manifest entry; the
// caller parses exactly these bytes.
Result<std::string> ReadVerified(Env* env, const std::string& path, const FileEntry& e) {
  EMBARK_ASSIGN_OR_RETURN(std::string bytes, env->ReadFileToString(path));
  if (bytes.size() != e.bytes) return SizeMismatch(path, bytes.size(), e.bytes);
  if (Hex(Checksum(bytes.data(), bytes.size())) != e.xxh64)
    return Status::Corruption(path + ": checksum mismatch (file is corrupted)");
  return bytes;
}

namespace {

// Rows of one table file into t (only those this rank owns when shard_count > 1).
Status LoadTableFile(Env* env, const std::string& path, const FileEntry& e, int version, RowStore* t,
                     int shard_index, int shard_count) {
  const size_t width = static_cast<size_t>(t->row_width());
  auto keep = [&](uint64_t key) { return shard_count <= 1 || OwnerOf(key, shard_count) == shard_index; };
  RowBatch kept;
  // Puts the rows of `b` this rank keeps, as one batch.
  auto put = [&](const RowBatch& b, bool with_meta) -> Status {
    if (shard_count <= 1) return t->Put(b.keys.data(), b.size(), b.rows.data(), with_meta ? b.meta.data() : nullptr);
    kept.clear();
    for (size_t i = 0; i < b.size(); ++i) {
      if (!keep(b.keys[i])) continue;
      kept.keys.push_back(b.keys[i]);
      kept.rows.insert(kept.rows.end(), b.rows.begin() + i * width, b.rows.begin() + (i + 1) * width);
      if (with_meta) kept.meta.push_back(b.meta[i]);
    }
    return t->Put(kept.keys.data(), kept.size(), kept.rows.data(), with_meta ? kept.meta.data() : nullptr);
  };
  RowBatch block;
  if (version == 1) {
    // Version 1 has one checksum for the whole file and no row metadata:
    // the file is read and verified whole, then put in blocks.
    EMBARK_ASSIGN_OR_RETURN(std::string bytes, ReadVerified(env, path, e));
    Status st;
    EMBARK_RETURN_IF_ERROR(ReadTableFileV1(bytes, path, t->dim(), t->row_width(), [&](uint64_t key, const float* row) {
      if (!st.ok()) return;
      block.keys.push_back(key);
      block.rows.insert(block.rows.end(), row, row + width);
      if (block.size() == kTableBlockRows) {
        st = put(block, false);
        block.clear();
      }
    }));
    EMBARK_RETURN_IF_ERROR(st);
    return put(block, false);
  }
  EMBARK_ASSIGN_OR_RETURN(std::unique_ptr<TableFileReader> r, TableFileReader::Open(env, path, t->dim(), t->row_width()));
  for (;;) {
    EMBARK_ASSIGN_OR_RETURN(bool more, r->Next(&block));
    if (!more) break;
    EMBARK_RETURN_IF_ERROR(put(block, true));
  }
  if (r->bytes() != e.bytes || Hex(r->checksum()) != e.xxh64)
    return Status::Corruption(path + ": checksum mismatch (file is corrupted)");
  return Status::OK();
}

// Tables renamed since checkpoints were first written: a checkpoint without
// a file of a table's name holds its rows under the former name (format
// versions 1 and 2 before the rename; docs/checkpoint.md).
constexpr std::pair<const char*, const char*> kFormerTableNames[] = {{"first_order", "wide"}};

// The files of table `base` in a manifest: NAME.bin, or NAME-R-of-N.bin.
template <typename Files>
std::vector<std::string> TableFileNames(const Files& files, const std::string& base) {
  std::vector<std::string> names;
  for (const auto& [name, e] : files)
    if (name == base + ".bin" || name.rfind(base + "-", 0) == 0) names.push_back(name);
  return names;
}

}  // namespace

nlohmann::json TrainerStateJson(const TrainerState& ts) {
  nlohmann::json st = {{"epochs_done", ts.epochs_done}, {"step", ts.step}, {"samples", ts.samples}, {"best_auc", ts.best_auc}};
  // Written only when set, so batch checkpoints read by older builds stay as they were.
  if (ts.epoch_samples > 0) st["epoch_samples"] = ts.epoch_samples;
  if (!ts.stream_position.empty()) st["stream_position"] = nlohmann::json::parse(ts.stream_position);
  if (ts.delta_seq > 0) st["delta_seq"] = ts.delta_seq;
  if (!ts.snapshot_id.empty()) st["snapshot_id"] = ts.snapshot_id;
  return st;
}

TrainerState TrainerStateFromJson(const nlohmann::json& st) {
  TrainerState ts;
  ts.epochs_done = IntAt<int>(st, "epochs_done", 0);
  ts.step = IntAt<int64_t>(st, "step", 0);
  ts.samples = IntAt<uint64_t>(st, "samples");
  ts.best_auc = st.at("best_auc").get<double>();
  if (st.contains("epoch_samples")) ts.epoch_samples = IntAt<uint64_t>(st, "epoch_samples");
  if (st.contains("stream_position")) {
    if (!st["stream_position"].is_object()) throw std::runtime_error("stream_position is not an object");
    ts.stream_position = st["stream_position"].dump();
  }
  if (st.contains("delta_seq")) ts.delta_seq = IntAt<uint64_t>(st, "delta_seq");
  if (st.contains("snapshot_id")) ts.snapshot_id = st.at("snapshot_id").get<std::string>();
  return ts;
}

std::string HistoryJson(const TrainerState& ts, const std::string& model) {
  // Records are written one per line, so the file stays readable.
  std::string out = "{\"version\": 1, \"model\": " + nlohmann::json(model).dump() + ",\n\"records\": [";
  for (size_t i = 0; i < ts.history.size(); ++i) out += (i ? ",\n  " : "\n  ") + ts.history[i];
  out += "]";
  if (!ts.reliability.empty()) out += ",\n\"reliability\": " + ts.reliability;
  return out + "}\n";
}

void HistoryFromJson(const std::string& text, TrainerState* ts) {
  auto h = nlohmann::json::parse(text);
  if (IntAt<int>(h, "version") != 1) throw std::runtime_error("version " + h.at("version").dump() + " is not 1");
  if (!h.at("records").is_array()) throw std::runtime_error("records is not an array");
  ts->history.clear();
  for (const auto& r : h.at("records")) {
    if (!r.is_object()) throw std::runtime_error("a record is not an object");
    ts->history.push_back(r.dump());
  }
  ts->reliability = h.contains("reliability") ? h["reliability"].dump() : std::string();
}

Status SaveCheckpoint(const std::string& dir, const Model& model, const DenseOptState& opt, const TrainerState& ts,
                      Communicator* comm, Env* env) {
  std::string clean = dir;
  while (clean.size() > 1 && clean.back() == '/') clean.pop_back();
  // The swap below deletes what was at `dir`: only ever a checkpoint.
  EMBARK_RETURN_IF_ERROR(fs::CheckReplaceable(clean, env));
  // Nor is a model that is not finite ever written (rows: TableFileWriter).
  const float* P = model.params().data();
  for (size_t i = 0; i < model.params().size(); ++i)
    if (!std::isfinite(P[i]))
      return Status::InvalidArgument("refusing to save to '" + clean + "': dense parameter " + std::to_string(i) +
                                     " is not finite (the model diverged)");
  if (comm != nullptr && comm->size() > 1) return SaveSharded(clean, model, opt, ts, comm, env);
  // A save killed midway left DIR.tmp-<pid>; remove those of dead processes.
  (void)fs::RemoveStaleStaging(clean, env);
  const std::string staging = fs::StagingDir(clean);
  EMBARK_RETURN_IF_ERROR(MakeStaging(env, staging));
  nlohmann::json manifest = NewManifest(model);
  Status s = WriteModelFiles(env, staging, model, opt, ts, &manifest["files"]);
  if (s.ok()) s = WriteTables(env, staging, model, ".bin", &manifest["files"]);
  if (s.ok()) s = Publish(env, staging, clean, manifest);
  if (!s.ok()) (void)env->RemoveAll(staging);
  return s;
}

Result<LoadedCheckpoint> LoadCheckpoint(const std::string& dir, int shard_index, int shard_count, Env* env,
                                        const StorageOptions* storage) {
  auto mtext = env->ReadFileToString(dir + "/MANIFEST.json");
  if (!mtext.ok()) return Status::NotFound("'" + dir + "' is not a checkpoint (no MANIFEST.json): " + mtext.status().message());
  int version = 0, shards = 1;
  std::map<std::string, FileEntry> files;
  const std::string mpath = dir + "/MANIFEST.json";
  try {
    nlohmann::json manifest = nlohmann::json::parse(mtext.value());
    if (manifest.at("format").get<std::string>() != "embark-checkpoint")
      return Status::Corruption(mpath + ": not an embark checkpoint");
    version = IntAt<int>(manifest, "version");
    if (version < 1 || version > kCheckpointVersionInt8)
      return Status::Corruption(dir + ": checkpoint format version " + std::to_string(version) +
                                " is not supported (this build reads versions 1 to " +
                                std::to_string(kCheckpointVersionInt8) + ")");
    if (manifest.contains("shards")) shards = IntAt<int>(manifest, "shards", 1, 1 << 20);
    for (auto& [name, meta] : manifest.at("files").items())
      files[name] = {IntAt<uint64_t>(meta, "bytes"), meta.at("xxh64").get<std::string>()};
  } catch (const std::exception& e) {
    return Status::Corruption(mpath + ": unreadable (" + e.what() + ")");
  }
  EMBARK_RETURN_IF_ERROR(CheckListedFiles(env, dir, files, "checkpoint"));
  std::map<std::string, std::string> small;
  for (const char* required : {"config.toml", "data_spec.json", "dense.bin", "trainer.json"}) {
    auto it = files.find(required);
    if (it == files.end()) return Status::Corruption(dir + ": checkpoint lacks " + required);
    EMBARK_ASSIGN_OR_RETURN(small[required], ReadVerified(env, dir + "/" + required, it->second));
  }
  // Everything below is parsed from the verified bytes, never read again.
  TrainConfig cfg;
  EMBARK_RETURN_IF_ERROR(ParseConfigToml(small["config.toml"], dir + "/config.toml", &cfg));
  auto parsed_spec = DataSpec::FromJson(small["data_spec.json"]);
  if (!parsed_spec.ok())
    return Status::Corruption(dir + "/data_spec.json: " + parsed_spec.status().message());
  DataSpec spec = std::move(parsed_spec).value();
  LoadedCheckpoint out;
  // The rows keep the precision they were saved in (an int8 serving copy
  // stays int8); where they live is the caller's choice.
  StorageOptions where = storage ? *storage : StorageOptions{};
  if (!storage || PrecisionOf(cfg) == RowPrecision::kInt8) where.precision = PrecisionOf(cfg);
  EMBARK_ASSIGN_OR_RETURN(out.model, Model::Create(cfg, spec, &where));
  EMBARK_RETURN_IF_ERROR(DecodeDense(small["dense.bin"], dir + "/dense.bin", out.model->params().size(),
                                     out.model->params().data(), &out.opt));
  try {
    auto st = nlohmann::json::parse(small["trainer.json"]);
    out.state = TrainerStateFromJson(st);
  } catch (const std::exception& e) {
    return Status::Corruption(dir + "/trainer.json: unreadable (" + e.what() + ")");
  }
  if (auto it = files.find("history.json"); it != files.end()) {
    // Optional: written by builds that keep a history, once there is one.
    const std::string path = dir + "/history.json";
    EMBARK_ASSIGN_OR_RETURN(std::string text, ReadVerified(env, path, it->second));
    try {
      HistoryFromJson(text, &out.state);
    } catch (const std::exception& e) {
      return Status::Corruption(path + ": unreadable (" + e.what() + ")");
    }
  }
  if (auto it = files.find("objective.bin"); it != files.end()) {
    // Optional: the objective's state (the softmax's item frequencies).
    EMBARK_ASSIGN_OR_RETURN(out.state.objective_state, ReadVerified(env, dir + "/objective.bin", it->second));
  }
  if (auto it = files.find("calibration.json"); it != files.end()) {
    // Optional: a model trained with validation data carries its Platt scaling.
    const std::string path = dir + "/calibration.json";
    EMBARK_ASSIGN_OR_RETURN(std::string text, ReadVerified(env, path, it->second));
    try {
      auto c = nlohmann::json::parse(text);
      PlattScaling p;
      if (c.at("method").get<std::string>() != "platt") return Status::Corruption(path + ": unknown method");
      p.a = c.at("a").get<double>();
      p.b = c.at("b").get<double>();
      p.samples = IntAt<uint64_t>(c, "samples", 1);
      if (!std::isfinite(p.a) || !(p.a > 0) || !std::isfinite(p.b))
        return Status::Corruption(path + ": the scale must be positive and both values finite");
      out.model->set_calibration(p);
    } catch (const std::exception& e) {
      return Status::Corruption(path + ": unreadable (" + e.what() + ")");
    }
  }
  small.clear();

  // Table rows: NAME.bin, or NAME-R-of-N.bin from each rank of a sharded
  // save. A rank of as many ranks as wrote the checkpoint reads its own
  // shard only; otherwise every shard is read and the rank's keys kept.
  for (int i = 0; i < out.model->num_tables(); ++i) {
    RowStore* table = out.model->table(i);
    std::string base = table->config().name;
    std::vector<std::string> names = TableFileNames(files, base);
    for (const auto& [now, former] : kFormerTableNames)
      if (names.empty() && base == now && !TableFileNames(files, former).empty()) {
        base = former;
        names = TableFileNames(files, base);
      }
    if (names.empty() || static_cast<int>(names.size()) != shards)
      return Status::Corruption(dir + ": checkpoint has " + std::to_string(names.size()) + " " + base +
                                " file(s), expected " + std::to_string(shards));
    if (shards > 1 && shards == shard_count) {
      const std::string own = base + "-" + std::to_string(shard_index) + "-of-" + std::to_string(shards) + ".bin";
      if (!files.count(own)) return Status::Corruption(dir + ": checkpoint lacks " + own);
      names = {own};
    }
    for (const std::string& name : names)
      EMBARK_RETURN_IF_ERROR(
          LoadTableFile(env, dir + "/" + name, files[name], version, table, shard_index, shard_count));
  }
  // An online training directory: the deltas written since this snapshot.
  if (shard_count <= 1) EMBARK_RETURN_IF_ERROR(ApplyDeltas(dir, &out, env));
  return out;
}

}  // namespace embark

namespace embark {

Status ExportCheckpoint(const std::string& src, const std::string& out, RowPrecision precision, Env* env) {
  if (precision != RowPrecision::kInt8)
    return Status::InvalidArgument("export: only int8 serving copies are written (--row-precision int8)");
  std::string clean = out;
  while (clean.size() > 1 && clean.back() == '/') clean.pop_back();
  if (env->FileExists(clean)) {
    auto names = env->ListDir(clean);
    if (!names.ok() || !names->empty())
      return Status::InvalidArgument("export: '" + clean + "' exists and " +
                                     (names.ok() ? "is not empty" : "is not a directory") +
                                     "; export writes only into a new or empty directory");
  }
  EMBARK_ASSIGN_OR_RETURN(LoadedCheckpoint ck, LoadCheckpoint(src, 0, 1, env));
  if (ck.model->config().row_precision == "int8")
    return Status::InvalidArgument("export: '" + src + "' is already an int8 serving copy");
  TrainConfig cfg = ck.model->config();
  cfg.row_precision = "int8";
  EMBARK_ASSIGN_OR_RETURN(std::unique_ptr<Model> m, Model::Create(cfg, ck.model->spec()));
  if (m->params().size() != ck.model->params().size() || m->num_tables() != ck.model->num_tables())
    return Status::InvalidArgument("export: the int8 model's shape differs from the checkpoint's");
  std::copy(ck.model->params().data(), ck.model->params().data() + ck.model->params().size(), m->params().data());
  m->set_calibration(ck.model->calibration());
  for (int i = 0; i < m->num_tables(); ++i) {
    auto it = ck.model->table(i)->NewIterator(kTableBlockRows);
    RowBatch b;
    for (;;) {
      EMBARK_ASSIGN_OR_RETURN(bool more, it->Next(&b));
      if (!more) break;
      EMBARK_RETURN_IF_ERROR(m->table(i)->Put(b.keys.data(), b.size(), b.rows.data(), b.meta.data()));
    }
  }
  // No optimizer state: the copy serves, it does not train.
  return SaveCheckpoint(clean, *m, DenseOptState{}, ck.state, nullptr, env);
}

}  // namespace embark
