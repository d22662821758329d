#include "index/index_dir.h"

#include <algorithm>
#include <cctype>
#include <vector>

#include "util/fs.h"
#include "util/hash.h"
#include "util/json.h"

namespace embark::index {
namespace {

constexpr size_t kChunk = 1 << 20;

// Streaming XXH64 of what passes through it.
class Hasher {
 public:
  Hasher() : st_(XXH64_createState()) { XXH64_reset(st_, 0); }
  ~Hasher() { XXH64_freeState(st_); }
  Hasher(const Hasher&) = delete;
  Hasher& operator=(const Hasher&) = delete;
  void Update(std::string_view d) { XXH64_update(st_, d.data(), d.size()); }
  uint64_t Digest() const { return XXH64_digest(st_); }

 private:
  XXH64_state_t* st_;
};

}  // namespace

Result<std::unique_ptr<IndexDirWriter>> IndexDirWriter::Begin(const std::string& dir_in, Env* env) {
  std::string dir = dir_in;
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  if (dir.empty()) return Status::InvalidArgument("index directory: empty path");
  // Only an index is replaced: not a checkpoint, nor anyone's files.
  EMBARK_RETURN_IF_ERROR(fs::CheckReplaceable(dir, env));
  if (env->FileExists(dir + "/MANIFEST.json")) {
    auto text = env->ReadFileToString(dir + "/MANIFEST.json");
    const nlohmann::json j = text.ok() ? nlohmann::json::parse(text.value(), nullptr, false) : nlohmann::json();
    const bool ours = j.is_object() && j.contains("format") && j["format"] == "embark-index";
    if (!ours)
      return Status::InvalidArgument("'" + dir + "' holds something other than an embark index (its MANIFEST.json "
                                     "is not an index's); choose another path, or remove it yourself");
  }
  (void)fs::RemoveStaleStaging(dir, env);
  const std::string staging = fs::StagingDir(dir);
  EMBARK_RETURN_IF_ERROR(env->RemoveAll(staging));
  EMBARK_RETURN_IF_ERROR(env->CreateDirs(staging));
  return std::unique_ptr<IndexDirWriter>(new IndexDirWriter(env, dir, staging));
}

IndexDirWriter::~IndexDirWriter() {
  if (!committed_) (void)env_->RemoveAll(staging_);
}

Status IndexDirWriter::WriteFile(const std::string& name, std::initializer_list<std::string_view> parts) {
  EMBARK_ASSIGN_OR_RETURN(auto f, fs::AtomicFile::Create(staging_ + "/" + name, env_));
  Hasher h;
  for (std::string_view p : parts) {
    EMBARK_RETURN_IF_ERROR(f->Append(p));
    h.Update(p);
  }
  const uint64_t bytes = f->size();
  EMBARK_RETURN_IF_ERROR(f->Commit());
  files_[name] = {bytes, Hex(h.Digest())};
  return Status::OK();
}

Status IndexDirWriter::WriteExtra(const std::map<std::string, std::string>& extra) {
  for (const auto& [name, data] : extra) {
    bool ok = !name.empty() && name != "MANIFEST.json" && name[0] != '.' && !files_.count(name);
    for (char c : name) ok = ok && (std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.');
    if (!ok) return Status::InvalidArgument("index file name '" + name + "' is not allowed or already used");
    EMBARK_RETURN_IF_ERROR(WriteFile(name, {data}));
  }
  return Status::OK();
}

Status IndexDirWriter::AdoptFile(const std::string& name, const std::string& src) {
  EMBARK_ASSIGN_OR_RETURN(auto in, env_->NewSequentialFile(src));
  EMBARK_ASSIGN_OR_RETURN(auto f, fs::AtomicFile::Create(staging_ + "/" + name, env_));
  Hasher h;
  std::vector<char> buf(kChunk);
  for (;;) {
    EMBARK_ASSIGN_OR_RETURN(size_t got, in->Read(buf.size(), buf.data()));
    if (got == 0) break;
    const std::string_view piece(buf.data(), got);
    EMBARK_RETURN_IF_ERROR(f->Append(piece));
    h.Update(piece);
  }
  const uint64_t bytes = f->size();
  EMBARK_RETURN_IF_ERROR(f->Commit());
  files_[name] = {bytes, Hex(h.Digest())};
  return env_->RemoveFile(src);
}

Status IndexDirWriter::Commit(const Manifest& m) {
  nlohmann::json j = {{"format", "embark-index"}, {"version", kIndexVersion}, {"kind", m.kind},
                      {"metric", "ip"},           {"dim", m.dim},              {"count", m.count}};
  if (!m.params.empty()) j[m.kind] = m.params;
  j["files"] = nlohmann::json::object();
  for (const auto& [name, e] : files_) j["files"][name] = {{"bytes", e.bytes}, {"xxh64", e.xxh64}};
  // The manifest last: the index is complete only once it is durable.
  EMBARK_RETURN_IF_ERROR(fs::WriteFileAtomic(staging_ + "/MANIFEST.json", j.dump(2), env_));
  EMBARK_RETURN_IF_ERROR(fs::ReplaceDirAtomic(staging_, dir_, env_));
  committed_ = true;
  return Status::OK();
}

Result<Manifest> ReadManifest(const std::string& dir, Env* env) {
  const std::string path = dir + "/MANIFEST.json";
  auto text = env->ReadFileToString(path);
  if (!text.ok()) return Status::NotFound("'" + dir + "' is not an index (no MANIFEST.json): " + text.status().message());
  Manifest m;
  try {
    const nlohmann::json j = nlohmann::json::parse(text.value());
    if (!j.is_object() || j.value("format", "") != "embark-index")
      return Status::Corruption(path + ": not an embark index (format is not \"embark-index\")");
    const int version = IntAt<int>(j, "version");
    if (version != kIndexVersion)
      return Status::Corruption(path + ": index format version " + std::to_string(version) +
                                " is not supported (this build reads version " + std::to_string(kIndexVersion) + ")");
    if (j.at("metric").get<std::string>() != "ip")
      return Status::Corruption(path + ": metric " + j.at("metric").dump() + " is not supported (only \"ip\")");
    m.kind = j.at("kind").get<std::string>();
    m.dim = IntAt<int>(j, "dim", 1, 1 << 16);
    m.count = IntAt<uint64_t>(j, "count", 0, uint64_t{1} << 40);
    if (j.contains(m.kind)) m.params = j.at(m.kind);
    for (const auto& [name, e] : j.at("files").items())
      m.files[name] = {IntAt<uint64_t>(e, "bytes"), e.at("xxh64").get<std::string>()};
  } catch (const std::exception& e) {
    return Status::Corruption(path + ": unreadable (" + e.what() + ")");
  }
  EMBARK_RETURN_IF_ERROR(CheckListedFiles(env, dir, m.files, "index"));
  return m;
}

Result<FileEntry> Listed(const Manifest& m, const std::string& dir, const std::string& name) {
  auto it = m.files.find(name);
  if (it == m.files.end())
    return Status::Corruption(dir + "/MANIFEST.json: does not list " + name + ", which the " + m.kind + " index needs");
  return it->second;
}

Status ReadChecked(const std::string& path, const FileEntry& e, char* dst, Env* env) {
  EMBARK_ASSIGN_OR_RETURN(auto in, env->NewSequentialFile(path));
  Hasher h;
  std::vector<char> buf(kChunk);
  uint64_t total = 0;
  for (;;) {
    // Into dst up to the listed size; anything past it into buf, and refused.
    const bool into_dst = dst != nullptr && total < e.bytes;
    char* p = into_dst ? dst + total : buf.data();
    const size_t want = into_dst ? static_cast<size_t>(std::min<uint64_t>(kChunk, e.bytes - total)) : kChunk;
    EMBARK_ASSIGN_OR_RETURN(size_t got, in->Read(want, p));
    if (got == 0) break;
    total += got;
    if (total > e.bytes) return SizeMismatch(path, total, e.bytes);
    h.Update(std::string_view(p, got));
  }
  if (total != e.bytes) return SizeMismatch(path, total, e.bytes);
  if (Hex(h.Digest()) != e.xxh64) return Status::Corruption(path + ": checksum mismatch (file is corrupted)");
  return Status::OK();
}

}  // namespace embark::index
