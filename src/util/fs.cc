#include "util/fs.h"

#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <regex>

namespace embark::fs {

std::string ParentDir(const std::string& path) {
  auto p = std::filesystem::path(path).parent_path().string();
  return p.empty() ? "." : p;
}

AtomicFile::AtomicFile(Env* env, std::string path, std::string tmp, std::unique_ptr<WritableFile> file)
    : env_(env), path_(std::move(path)), tmp_(std::move(tmp)), file_(std::move(file)) {}

namespace {

Result<std::unique_ptr<WritableFile>> OpenTemp(const std::string& tmp, Env* env) {
  auto file = env->NewWritableFile(tmp);
  if (!file.ok()) (void)env->RemoveFile(tmp);  // open(O_CREAT) may have made it before failing
  return file;
}

}  // namespace

Result<std::unique_ptr<AtomicFile>> AtomicFile::CreateHidden(const std::string& path, Env* env) {
  const size_t slash = path.rfind('/');
  const size_t name = slash == std::string::npos ? 0 : slash + 1;
  std::string tmp = path.substr(0, name) + "." + path.substr(name) + ".tmp." + std::to_string(::getpid());
  EMBARK_ASSIGN_OR_RETURN(auto file, OpenTemp(tmp, env));
  return std::unique_ptr<AtomicFile>(new AtomicFile(env, path, std::move(tmp), std::move(file)));
}

Result<std::unique_ptr<AtomicFile>> AtomicFile::Create(const std::string& path, Env* env) {
  std::string tmp = path + ".tmp." + std::to_string(::getpid());
  EMBARK_ASSIGN_OR_RETURN(auto file, OpenTemp(tmp, env));
  return std::unique_ptr<AtomicFile>(new AtomicFile(env, path, std::move(tmp), std::move(file)));
}

AtomicFile::~AtomicFile() { Abort(); }

Status AtomicFile::Append(std::string_view data) {
  if (done_) return Status::IOError("cannot write '" + path_ + "': already committed or aborted");
  Status s = file_->Append(data);
  if (s.ok()) size_ += data.size();
  return s;
}

Status AtomicFile::Commit() {
  if (done_) return Status::IOError("cannot commit '" + path_ + "': already committed or aborted");
  Status s = file_->Sync();
  Status c = file_->Close();
  if (s.ok()) s = c;
  if (s.ok()) s = env_->RenameFile(tmp_, path_);
  if (!s.ok()) {
    Abort();
    return s;
  }
  done_ = true;
  return env_->SyncDir(ParentDir(path_));
}

void AtomicFile::Abort() {
  if (done_) return;
  done_ = true;
  (void)file_->Close();
  (void)env_->RemoveFile(tmp_);
}

Status WriteFileAtomic(const std::string& path, std::string_view data, Env* env) {
  EMBARK_ASSIGN_OR_RETURN(std::unique_ptr<AtomicFile> f, AtomicFile::Create(path, env));
  EMBARK_RETURN_IF_ERROR(f->Append(data));
  return f->Commit();
}

Result<std::string> ReadFile(const std::string& path, Env* env) { return env->ReadFileToString(path); }

Status FsyncDir(const std::string& dir, Env* env) { return env->SyncDir(dir); }

Status ReplaceDirAtomic(const std::string& staged, const std::string& dest, Env* env) {
  const bool existed = env->FileExists(dest);
  EMBARK_RETURN_IF_ERROR(env->RenameExchange(staged, dest));
  Status synced = env->SyncDir(ParentDir(dest));
  if (!synced.ok()) {
    // Undo, so that an error means `dest` is what it was; `staged` then
    // holds the new directory again, for the caller to remove.
    (void)(existed ? env->RenameExchange(staged, dest) : env->RenameFile(dest, staged));
    return synced;
  }
  // `staged` now holds the previous checkpoint; the new one is in place and
  // durable, so failing to remove the old one is not an error of the save.
  if (existed) (void)env->RemoveAll(staged);
  return Status::OK();
}

std::string StagingDir(const std::string& dest) { return dest + ".tmp-" + std::to_string(::getpid()); }

namespace {

// Whether `name` is one a checkpoint or index save writes (their files,
// `.tmp.<pid>` temporaries, table files and shards; an index's item names
// and source).
bool IsCheckpointFileName(const std::string& name) {
  static const std::regex kName(
      R"(^(MANIFEST\.json|config\.toml|data_spec\.json|trainer\.json|calibration\.json|history\.json|items\.tsv|items\.csv|source\.json|[A-Za-z0-9_]+(-[0-9]+-of-[0-9]+)?\.bin)(\.tmp\.[0-9]+)?$)");
  return std::regex_match(name, kName);
}

// Whether `deltas` (an online model's delta folder, checkpoint/delta.h)
// holds nothing but delta folders and their staging folders, each holding
// only a delta's files.
bool HoldsOnlyDeltas(const std::string& deltas, Env* env) {
  static const std::regex kDelta(R"(^(\.tmp-)?[0-9]{12}(-[0-9]+)?$)");
  auto names = env->ListDir(deltas);
  if (!names.ok()) return false;
  for (const std::string& name : names.value()) {
    if (!std::regex_match(name, kDelta)) return false;
    auto files = env->ListDir(deltas + "/" + name);
    if (!files.ok()) return false;
    for (const std::string& f : files.value())
      if (!IsCheckpointFileName(f)) return false;
  }
  return true;
}

// Whether `name` in checkpoint folder `dir` is embark's: a checkpoint file,
// or the folder of an online model's deltas.
bool IsCheckpointEntry(const std::string& dir, const std::string& name, Env* env) {
  return IsCheckpointFileName(name) || (name == "deltas" && HoldsOnlyDeltas(dir + "/" + name, env));
}

// Whether every entry of `dir` is such a name: only such a directory is
// embark's to remove, whatever its name says. Not a directory, or
// unreadable: not ours.
bool HoldsOnlyCheckpointFiles(const std::string& dir, Env* env) {
  auto names = env->ListDir(dir);
  if (!names.ok()) return false;
  for (const std::string& name : names.value())
    if (!IsCheckpointEntry(dir, name, env)) return false;
  return true;
}

}  // namespace

Status CheckReplaceable(const std::string& dest, Env* env) {
  if (!env->FileExists(dest)) return Status::OK();
  auto names = env->ListDir(dest);
  if (!names.ok())
    return Status::InvalidArgument("'" + dest + "' exists and is not a directory; embark writes a checkpoint only "
                                   "where nothing is or an embark checkpoint was: choose another path");
  if (names->empty()) return Status::OK();
  std::string foreign;
  bool manifest = false;
  for (const std::string& n : *names) {
    manifest = manifest || n == "MANIFEST.json";
    if (!IsCheckpointEntry(dest, n, env) && (foreign.empty() || n < foreign)) foreign = n;
  }
  if (!foreign.empty() || !manifest)
    return Status::InvalidArgument(
        "'" + dest + "' exists and is not an embark checkpoint (" +
        (foreign.empty() ? std::string("it has no MANIFEST.json") : "it holds '" + foreign + "'") +
        "); embark replaces only its own checkpoints: choose another path, or remove it yourself");
  return Status::OK();
}

Status RemoveStaleStaging(const std::string& dest, Env* env, std::vector<std::string>* removed) {
  const std::string parent = ParentDir(dest);
  const std::string prefix = std::filesystem::path(dest).filename().string() + ".tmp-";
  if (!env->FileExists(parent)) return Status::OK();
  EMBARK_ASSIGN_OR_RETURN(std::vector<std::string> names, env->ListDir(parent));
  for (const std::string& name : names) {
    if (name.size() <= prefix.size() || name.compare(0, prefix.size(), prefix) != 0) continue;
    const std::string tail = name.substr(prefix.size());
    if (tail.find_first_not_of("0123456789") != std::string::npos || tail.size() > 9) continue;
    const long pid = std::stol(tail);
    if (pid <= 0 || pid == ::getpid()) continue;
    if (::kill(static_cast<pid_t>(pid), 0) == 0 || errno == EPERM) continue;  // alive
    const std::string path = parent + "/" + name;
    if (!HoldsOnlyCheckpointFiles(path, env)) continue;  // someone else's, under a name like ours: left alone
    EMBARK_RETURN_IF_ERROR(env->RemoveAll(path));
    if (removed != nullptr) removed->push_back(path);
  }
  return Status::OK();
}

Status CheckOutputFile(const std::string& out, const std::vector<std::string>& inputs,
                       const std::vector<std::pair<std::string, std::string>>& dirs) {
  std::error_code ec;
  if (std::filesystem::is_directory(out, ec))
    return Status::InvalidArgument("--out: '" + out + "' is a directory; the output goes to a file");
  for (const auto& [flag, dir] : dirs)
    if (std::filesystem::equivalent(ParentDir(out), dir, ec))
      return Status::InvalidArgument("--out: '" + out + "' is inside " + flag + " '" + dir +
                                     "'; writing there would damage it: choose a path outside it");
  for (const std::string& f : inputs)
    if (std::filesystem::equivalent(f, out, ec))
      return Status::InvalidArgument("--out: '" + out + "' is also an input (--data '" + f +
                                     "'); writing it would destroy the data");
  return Status::OK();
}

}  // namespace embark::fs
