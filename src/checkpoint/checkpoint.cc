#include "checkpoint/checkpoint.h"

#include <unistd.h>

#include <cinttypes>
#include <cstring>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "util/fs.h"
#include "util/hash.h"

namespace embark {
namespace {

constexpr char kDenseMagic[8] = {'E', 'M', 'B', 'D', 'E', 'N', 'S', '1'};
constexpr char kTableMagic[8] = {'E', 'M', 'B', 'T', 'A', 'B', 'L', '1'};

template <typename T>
void Put(std::string* s, const T& v) {
  s->append(reinterpret_cast<const char*>(&v), sizeof(T));
}
void PutFloats(std::string* s, const float* p, size_t n) { s->append(reinterpret_cast<const char*>(p), n * sizeof(float)); }

// Bounds-checked reader over a loaded file.
class Reader {
 public:
  Reader(const std::string& data, std::string name) : d_(data), name_(std::move(name)) {}
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
  size_t remaining() const { return d_.size() - pos_; }
  Status Truncated() const { return Status::Corruption(name_ + ": truncated"); }

 private:
  const std::string& d_;
  std::string name_;
  size_t pos_ = 0;
};

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

Result<std::string> EncodeTable(const RowStore& t) {
  std::string s(kTableMagic, 8);
  const size_t w = t.row_width();
  const size_t rows = t.stats().rows;
  Put<uint32_t>(&s, static_cast<uint32_t>(t.dim()));
  Put<uint32_t>(&s, static_cast<uint32_t>(w));
  Put<uint64_t>(&s, rows);
  s.reserve(s.size() + rows * (8 + 4 * w));
  auto it = t.NewIterator();
  RowBatch b;
  uint64_t written = 0;
  for (;;) {
    EMBARK_ASSIGN_OR_RETURN(bool more, it->Next(&b));
    if (!more) break;
    for (size_t i = 0; i < b.size(); ++i) {
      Put<uint64_t>(&s, b.keys[i]);
      PutFloats(&s, b.rows.data() + i * w, w);
    }
    written += b.size();
  }
  if (written != rows) return Status::InvalidArgument("table '" + t.config().name + "' changed while being saved");
  return s;
}

// Reads the rows of a table file into t; with shard_count > 1, only the
// rows owned by shard_index.
Status DecodeTable(const std::string& data, const std::string& name, RowStore* t, int shard_index, int shard_count) {
  Reader r(data, name);
  char magic[8];
  for (char& c : magic) EMBARK_RETURN_IF_ERROR(r.Get(&c));
  if (std::memcmp(magic, kTableMagic, 8) != 0) return Status::Corruption(name + ": not an embark table file");
  uint32_t dim = 0, width = 0;
  uint64_t rows = 0;
  EMBARK_RETURN_IF_ERROR(r.Get(&dim));
  EMBARK_RETURN_IF_ERROR(r.Get(&width));
  EMBARK_RETURN_IF_ERROR(r.Get(&rows));
  if (static_cast<int>(dim) != t->dim() || static_cast<int>(width) != t->row_width())
    return Status::Corruption(name + ": row shape " + std::to_string(dim) + "/" + std::to_string(width) +
                              " does not match the model's " + std::to_string(t->dim()) + "/" +
                              std::to_string(t->row_width()));
  const size_t rec = 8 + 4 * static_cast<size_t>(width);
  if (rows != r.remaining() / rec || r.remaining() % rec != 0)
    return Status::Corruption(name + ": row count does not match the file size");
  std::vector<float> row(width);
  for (uint64_t i = 0; i < rows; ++i) {
    uint64_t key = 0;
    EMBARK_RETURN_IF_ERROR(r.Get(&key));
    EMBARK_RETURN_IF_ERROR(r.GetFloats(row.data(), width));
    if (shard_count <= 1 || OwnerOf(key, shard_count) == shard_index)
      EMBARK_RETURN_IF_ERROR(t->Put(&key, 1, row.data(), nullptr));
  }
  return Status::OK();
}

std::string Hex(uint64_t v) {
  char buf[20];
  std::snprintf(buf, sizeof(buf), "%016" PRIx64, v);
  return buf;
}

using NamedFiles = std::vector<std::pair<std::string, std::string>>;

// Every file but the tables': config, data spec, dense state, trainer state.
NamedFiles ModelFiles(const Model& model, const DenseOptState& opt, const TrainerState& ts) {
  NamedFiles files;
  files.emplace_back("config.toml", ConfigToToml(model.config()));
  files.emplace_back("data_spec.json", model.spec().ToJson());
  files.emplace_back("dense.bin", EncodeDense(model, opt));
  nlohmann::json st = {{"epochs_done", ts.epochs_done}, {"step", ts.step}, {"samples", ts.samples}, {"best_auc", ts.best_auc}};
  files.emplace_back("trainer.json", st.dump(2));
  return files;
}

nlohmann::json NewManifest() {
  nlohmann::json manifest;
  manifest["format"] = "embark-checkpoint";
  manifest["version"] = kCheckpointVersion;
  return manifest;
}

// Writes each file durably into staging and records its size and checksum
// in *entries (the manifest's "files").
Status WriteFiles(const std::string& staging, const NamedFiles& files, nlohmann::json* entries) {
  for (const auto& [name, data] : files) {
    EMBARK_RETURN_IF_ERROR(fs::WriteFileDurable(staging + "/" + name, data));
    (*entries)[name] = {{"bytes", data.size()}, {"xxh64", Hex(Checksum(data.data(), data.size()))}};
  }
  return Status::OK();
}

// The manifest goes last: the checkpoint is complete only once it is
// durable. Then the directory is swapped into place.
Status Publish(const std::string& staging, const std::string& dir, const nlohmann::json& manifest) {
  EMBARK_RETURN_IF_ERROR(fs::WriteFileDurable(staging + "/MANIFEST.json", manifest.dump(2)));
  EMBARK_RETURN_IF_ERROR(fs::FsyncDir(staging));
  return fs::ReplaceDirAtomic(staging, dir);
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
                   Communicator* comm) {
  namespace sfs = std::filesystem;
  const int N = comm->size(), me = comm->rank();
  // One staging name for every rank (a pid would differ between them).
  const std::string staging = clean + ".tmp-sharded";
  std::error_code ec;
  Status made;
  if (me == 0) {
    sfs::remove_all(staging, ec);
    if (!sfs::create_directories(staging, ec) || ec)
      made = Status::IOError("cannot create checkpoint directory '" + staging + "': " + ec.message());
  }
  EMBARK_RETURN_IF_ERROR(FromRoot(comm, made));
  // Every rank: its shard of each table, durable, and the manifest entries.
  const std::string suffix = "-" + std::to_string(me) + "-of-" + std::to_string(N) + ".bin";
  NamedFiles shards;
  Status wrote;
  for (int t = 0; t < model.num_tables() && wrote.ok(); ++t) {
    auto enc = EncodeTable(*model.table(t));
    if (enc.ok()) {
      shards.emplace_back(model.table(t)->config().name + suffix, std::move(enc).value());
    } else {
      wrote = enc.status();
    }
  }
  nlohmann::json entries = nlohmann::json::object();
  if (wrote.ok()) wrote = WriteFiles(staging, shards, &entries);
  EMBARK_ASSIGN_OR_RETURN(
      auto reports, ToRoot(comm, wrote.ok() ? entries.dump() : "Erank " + std::to_string(me) + ": " + wrote.message()));
  Status done;
  if (me == 0) {
    nlohmann::json manifest = NewManifest();
    manifest["shards"] = N;
    for (const auto& r : reports) {
      if (!r.empty() && r[0] == 'E') {
        done = Status::IOError(r.substr(1));
        break;
      }
      const nlohmann::json files = nlohmann::json::parse(r);
      for (auto& [name, meta] : files.items()) manifest["files"][name] = meta;
    }
    if (done.ok()) done = WriteFiles(staging, ModelFiles(model, opt, ts), &manifest["files"]);
    if (done.ok()) done = Publish(staging, clean, manifest);
    if (!done.ok()) sfs::remove_all(staging, ec);
  }
  return FromRoot(comm, done);
}

}  // namespace

Status SaveCheckpoint(const std::string& dir, const Model& model, const DenseOptState& opt, const TrainerState& ts,
                      Communicator* comm) {
  namespace sfs = std::filesystem;
  std::string clean = dir;
  while (clean.size() > 1 && clean.back() == '/') clean.pop_back();
  if (comm != nullptr && comm->size() > 1) return SaveSharded(clean, model, opt, ts, comm);
  std::string staging = clean + ".tmp-" + std::to_string(::getpid());
  std::error_code ec;
  sfs::remove_all(staging, ec);
  if (!sfs::create_directories(staging, ec) || ec)
    return Status::IOError("cannot create checkpoint directory '" + staging + "': " + ec.message());

  NamedFiles files = ModelFiles(model, opt, ts);
  Status s;
  for (int t = 0; t < model.num_tables() && s.ok(); ++t) {
    auto enc = EncodeTable(*model.table(t));
    if (enc.ok()) {
      files.emplace_back(model.table(t)->config().name + ".bin", std::move(enc).value());
    } else {
      s = enc.status();
    }
  }
  nlohmann::json manifest = NewManifest();
  if (s.ok()) s = WriteFiles(staging, files, &manifest["files"]);
  if (s.ok()) s = Publish(staging, clean, manifest);
  if (!s.ok()) sfs::remove_all(staging, ec);
  return s;
}

Result<LoadedCheckpoint> LoadCheckpoint(const std::string& dir, int shard_index, int shard_count) {
  auto mtext = fs::ReadFile(dir + "/MANIFEST.json");
  if (!mtext.ok()) return Status::NotFound("'" + dir + "' is not a checkpoint (no MANIFEST.json): " + mtext.status().message());
  nlohmann::json manifest;
  try {
    manifest = nlohmann::json::parse(mtext.value());
    if (manifest.at("format").get<std::string>() != "embark-checkpoint")
      return Status::Corruption(dir + "/MANIFEST.json: not an embark checkpoint");
    int version = manifest.at("version").get<int>();
    if (version != kCheckpointVersion)
      return Status::Corruption(dir + ": checkpoint format version " + std::to_string(version) +
                                " is not supported (this build reads version " + std::to_string(kCheckpointVersion) + ")");
    manifest.at("files").at("config.toml");
  } catch (const std::exception& e) {
    return Status::Corruption(dir + "/MANIFEST.json: unreadable (" + e.what() + ")");
  }
  std::map<std::string, std::string> data;
  for (auto& [name, meta] : manifest.at("files").items()) {
    if (name.find('/') != std::string::npos || name.find("..") != std::string::npos)
      return Status::Corruption(dir + "/MANIFEST.json: bad file name '" + name + "'");
    EMBARK_ASSIGN_OR_RETURN(std::string bytes, fs::ReadFile(dir + "/" + name));
    uint64_t want = 0;
    std::string sum;
    try {
      want = meta.at("bytes").get<uint64_t>();
      sum = meta.at("xxh64").get<std::string>();
    } catch (const std::exception& e) {
      return Status::Corruption(dir + "/MANIFEST.json: entry '" + name + "' unreadable");
    }
    if (bytes.size() != want)
      return Status::Corruption(dir + "/" + name + ": size " + std::to_string(bytes.size()) + " bytes, manifest says " +
                                std::to_string(want) + " (truncated?)");
    if (Hex(Checksum(bytes.data(), bytes.size())) != sum)
      return Status::Corruption(dir + "/" + name + ": checksum mismatch (file is corrupted)");
    data[name] = std::move(bytes);
  }
  for (const char* required : {"config.toml", "data_spec.json", "dense.bin", "trainer.json"})
    if (!data.count(required)) return Status::Corruption(dir + ": checkpoint lacks " + required);

  TrainConfig cfg;
  {
    // The config is TOML; parse it through the same reader as --config.
    std::string tmp = dir + "/config.toml";
    EMBARK_RETURN_IF_ERROR(LoadConfigToml(tmp, &cfg));
  }
  EMBARK_ASSIGN_OR_RETURN(DataSpec spec, DataSpec::FromJson(data["data_spec.json"]));
  LoadedCheckpoint out;
  EMBARK_ASSIGN_OR_RETURN(out.model, Model::Create(cfg, spec));
  Model& m = *out.model;

  Reader r(data["dense.bin"], dir + "/dense.bin");
  char magic[8];
  for (char& c : magic) EMBARK_RETURN_IF_ERROR(r.Get(&c));
  if (std::memcmp(magic, kDenseMagic, 8) != 0) return Status::Corruption(dir + "/dense.bin: not an embark dense file");
  uint64_t n = 0;
  EMBARK_RETURN_IF_ERROR(r.Get(&n));
  if (n != m.params().size())
    return Status::Corruption(dir + "/dense.bin: " + std::to_string(n) + " parameters, the model has " +
                              std::to_string(m.params().size()));
  EMBARK_RETURN_IF_ERROR(r.GetFloats(m.params().data(), n));
  EMBARK_RETURN_IF_ERROR(r.Get(&out.opt.step));
  uint32_t slots = 0;
  EMBARK_RETURN_IF_ERROR(r.Get(&slots));
  if (slots > 4) return Status::Corruption(dir + "/dense.bin: bad optimizer slot count");
  for (uint32_t i = 0; i < slots; ++i) {
    uint64_t len = 0;
    EMBARK_RETURN_IF_ERROR(r.Get(&len));
    if (len != n) return Status::Corruption(dir + "/dense.bin: optimizer slot size mismatch");
    out.opt.slots.emplace_back(len);
    EMBARK_RETURN_IF_ERROR(r.GetFloats(out.opt.slots.back().data(), len));
  }
  // Table rows: NAME.bin, or NAME-R-of-N.bin from each rank of a sharded save.
  for (int t = 0; t < m.num_tables(); ++t) {
    RowStore* table = m.table(t);
    const std::string& base = table->config().name;
    int found = 0;
    for (const auto& [name, bytes] : data) {
      if (name != base + ".bin" && name.rfind(base + "-", 0) != 0) continue;
      EMBARK_RETURN_IF_ERROR(DecodeTable(bytes, dir + "/" + name, table, shard_index, shard_count));
      ++found;
    }
    int shards = 1;
    if (manifest.contains("shards")) shards = manifest["shards"].is_number_integer() ? manifest["shards"].get<int>() : -1;
    if (found == 0 || found != shards)
      return Status::Corruption(dir + ": checkpoint has " + std::to_string(found) + " " + base + " file(s), expected " +
                                std::to_string(shards));
  }
  try {
    auto st = nlohmann::json::parse(data["trainer.json"]);
    out.state.epochs_done = st.at("epochs_done").get<int>();
    out.state.step = st.at("step").get<int64_t>();
    out.state.samples = st.at("samples").get<uint64_t>();
    out.state.best_auc = st.at("best_auc").get<double>();
  } catch (const std::exception& e) {
    return Status::Corruption(dir + "/trainer.json: unreadable (" + e.what() + ")");
  }
  return out;
}

}  // namespace embark
