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

std::string EncodeTable(const EmbeddingTable& t) {
  std::string s(kTableMagic, 8);
  Put<uint32_t>(&s, static_cast<uint32_t>(t.dim()));
  Put<uint32_t>(&s, static_cast<uint32_t>(t.row_width()));
  Put<uint64_t>(&s, t.size());
  s.reserve(s.size() + t.size() * (8 + 4 * t.row_width()));
  t.ForEachRow([&](uint64_t key, const float* row) {
    Put<uint64_t>(&s, key);
    PutFloats(&s, row, t.row_width());
  });
  return s;
}

Status DecodeTable(const std::string& data, const std::string& name, EmbeddingTable* t) {
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
    t->InsertRow(key, row.data());
  }
  return Status::OK();
}

std::string Hex(uint64_t v) {
  char buf[20];
  std::snprintf(buf, sizeof(buf), "%016" PRIx64, v);
  return buf;
}

}  // namespace

Status SaveCheckpoint(const std::string& dir, const Model& model, const DenseOptState& opt, const TrainerState& ts) {
  namespace sfs = std::filesystem;
  std::string clean = dir;
  while (clean.size() > 1 && clean.back() == '/') clean.pop_back();
  std::string staging = clean + ".tmp-" + std::to_string(::getpid());
  std::error_code ec;
  sfs::remove_all(staging, ec);
  if (!sfs::create_directories(staging, ec) || ec)
    return Status::IOError("cannot create checkpoint directory '" + staging + "': " + ec.message());

  std::vector<std::pair<std::string, std::string>> files;
  files.emplace_back("config.toml", ConfigToToml(model.config()));
  files.emplace_back("data_spec.json", model.spec().ToJson());
  files.emplace_back("dense.bin", EncodeDense(model, opt));
  if (model.embeddings()) files.emplace_back("embeddings.bin", EncodeTable(*model.embeddings()));
  if (model.wide()) files.emplace_back("wide.bin", EncodeTable(*model.wide()));
  nlohmann::json st = {{"epochs_done", ts.epochs_done}, {"step", ts.step}, {"samples", ts.samples}, {"best_auc", ts.best_auc}};
  files.emplace_back("trainer.json", st.dump(2));

  nlohmann::json manifest;
  manifest["format"] = "embark-checkpoint";
  manifest["version"] = kCheckpointVersion;
  for (const auto& [name, data] : files) {
    Status s = fs::WriteFileDurable(staging + "/" + name, data);
    if (!s.ok()) {
      sfs::remove_all(staging, ec);
      return s;
    }
    manifest["files"][name] = {{"bytes", data.size()}, {"xxh64", Hex(Checksum(data.data(), data.size()))}};
  }
  Status s = fs::WriteFileDurable(staging + "/MANIFEST.json", manifest.dump(2));
  if (s.ok()) s = fs::FsyncDir(staging);
  if (s.ok()) s = fs::ReplaceDirAtomic(staging, clean);
  if (!s.ok()) sfs::remove_all(staging, ec);
  return s;
}

Result<LoadedCheckpoint> LoadCheckpoint(const std::string& dir) {
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
  if (m.embeddings()) {
    if (!data.count("embeddings.bin")) return Status::Corruption(dir + ": checkpoint lacks embeddings.bin");
    EMBARK_RETURN_IF_ERROR(DecodeTable(data["embeddings.bin"], dir + "/embeddings.bin", m.embeddings()));
  }
  if (m.wide()) {
    if (!data.count("wide.bin")) return Status::Corruption(dir + ": checkpoint lacks wide.bin");
    EMBARK_RETURN_IF_ERROR(DecodeTable(data["wide.bin"], dir + "/wide.bin", m.wide()));
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
