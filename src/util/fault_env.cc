#include "util/fault_env.h"

#include <cerrno>
#include <cstring>

namespace embark {
namespace {

class FaultWritableFile : public WritableFile {
 public:
  FaultWritableFile(FaultEnv* env, std::unique_ptr<WritableFile> base) : env_(env), base_(std::move(base)) {}
  Status Append(std::string_view data) override {
    Fault f = env_->Record(FaultEnv::OpKind::kAppend, path());
    if (f == Fault::kShortWrite) {
      // Part of the bytes reach the file, then the device is full.
      EMBARK_RETURN_IF_ERROR(base_->Append(data.substr(0, data.size() / 2)));
      return Status::IOError("cannot write '" + path() + "': short write, " + std::to_string(data.size() / 2) +
                             " of " + std::to_string(data.size()) + " bytes: " + std::strerror(ENOSPC) +
                             " (injected)");
    }
    if (f != Fault::kNone) return InjectedError(f, "write", path());
    return base_->Append(data);
  }
  Status Sync() override {
    Fault f = env_->Record(FaultEnv::OpKind::kSync, path());
    if (f != Fault::kNone) return InjectedError(f, "fsync", path());
    return base_->Sync();
  }
  Status Close() override {
    if (closed_) return Status::OK();
    closed_ = true;
    Fault f = env_->Record(FaultEnv::OpKind::kClose, path());
    Status s = base_->Close();  // the descriptor is released whatever happens
    if (f != Fault::kNone) return InjectedError(f, "close", path());
    return s;
  }
  const std::string& path() const override { return base_->path(); }

 private:
  FaultEnv* env_;
  std::unique_ptr<WritableFile> base_;
  bool closed_ = false;
};

class FaultSequentialFile : public SequentialFile {
 public:
  FaultSequentialFile(FaultEnv* env, std::unique_ptr<SequentialFile> base) : env_(env), base_(std::move(base)) {}
  Result<size_t> Read(size_t n, char* buf) override {
    if (env_->RecordRead()) return InjectedError(Fault::kIOError, "read", path());
    return base_->Read(n, buf);
  }
  const std::string& path() const override { return base_->path(); }

 private:
  FaultEnv* env_;
  std::unique_ptr<SequentialFile> base_;
};

}  // namespace

const char* FaultName(Fault f) {
  switch (f) {
    case Fault::kNone: return "none";
    case Fault::kIOError: return "EIO";
    case Fault::kNoSpace: return "ENOSPC";
    case Fault::kShortWrite: return "short write";
  }
  return "?";
}

const char* FaultEnv::OpName(OpKind k) {
  switch (k) {
    case OpKind::kCreate: return "create";
    case OpKind::kAppend: return "append";
    case OpKind::kSync: return "sync";
    case OpKind::kClose: return "close";
    case OpKind::kRename: return "rename";
    case OpKind::kRenameExchange: return "rename-exchange";
    case OpKind::kRemove: return "remove";
    case OpKind::kRemoveAll: return "remove-all";
    case OpKind::kMkdir: return "mkdir";
    case OpKind::kSyncDir: return "sync-dir";
  }
  return "?";
}

Status InjectedError(Fault f, const std::string& what, const std::string& path) {
  const int err = f == Fault::kIOError ? EIO : ENOSPC;
  return Status::IOError("cannot " + what + " '" + path + "': " + std::strerror(err) + " (injected)");
}

void FaultEnv::FailOp(uint64_t op, Fault fault) {
  std::lock_guard<std::mutex> l(mu_);
  ops_.clear();
  reads_.clear();
  fail_at_ = op;
  fault_ = op == 0 ? Fault::kNone : fault;
  injected_ = false;
}

std::vector<FaultEnv::Op> FaultEnv::ops() const {
  std::lock_guard<std::mutex> l(mu_);
  return ops_;
}

std::vector<std::string> FaultEnv::reads() const {
  std::lock_guard<std::mutex> l(mu_);
  return reads_;
}

void FaultEnv::FailRead(uint64_t n) {
  std::lock_guard<std::mutex> l(mu_);
  read_ops_ = 0;
  fail_read_at_ = n;
}

uint64_t FaultEnv::read_ops() const {
  std::lock_guard<std::mutex> l(mu_);
  return read_ops_;
}

bool FaultEnv::RecordRead() {
  std::lock_guard<std::mutex> l(mu_);
  ++read_ops_;
  if (fail_read_at_ == 0 || read_ops_ != fail_read_at_) return false;
  injected_ = true;
  return true;
}

Result<std::unique_ptr<SequentialFile>> FaultEnv::NewSequentialFile(const std::string& path) {
  {
    std::lock_guard<std::mutex> l(mu_);
    reads_.push_back(path);
  }
  if (RecordRead()) return InjectedError(Fault::kIOError, "open", path);
  EMBARK_ASSIGN_OR_RETURN(std::unique_ptr<SequentialFile> base, target()->NewSequentialFile(path));
  return std::unique_ptr<SequentialFile>(new FaultSequentialFile(this, std::move(base)));
}

Result<std::string> FaultEnv::ReadFileToString(const std::string& path) {
  {
    std::lock_guard<std::mutex> l(mu_);
    reads_.push_back(path);
  }
  if (RecordRead()) return InjectedError(Fault::kIOError, "read", path);
  return target()->ReadFileToString(path);
}

bool FaultEnv::injected() const {
  std::lock_guard<std::mutex> l(mu_);
  return injected_;
}

Fault FaultEnv::Record(OpKind kind, const std::string& path) {
  std::lock_guard<std::mutex> l(mu_);
  ops_.push_back({kind, path});
  if (fault_ == Fault::kNone || ops_.size() != fail_at_) return Fault::kNone;
  injected_ = true;
  if (fault_ == Fault::kShortWrite && kind != OpKind::kAppend) return Fault::kNoSpace;
  return fault_;
}

Result<std::unique_ptr<WritableFile>> FaultEnv::NewWritableFile(const std::string& path) {
  Fault f = Record(OpKind::kCreate, path);
  if (f != Fault::kNone) return InjectedError(f, "create", path);
  EMBARK_ASSIGN_OR_RETURN(std::unique_ptr<WritableFile> base, target()->NewWritableFile(path));
  return std::unique_ptr<WritableFile>(new FaultWritableFile(this, std::move(base)));
}

Status FaultEnv::CreateDirs(const std::string& dir) {
  Fault f = Record(OpKind::kMkdir, dir);
  if (f != Fault::kNone) return InjectedError(f, "create directory", dir);
  return target()->CreateDirs(dir);
}

Status FaultEnv::RemoveFile(const std::string& path) {
  Fault f = Record(OpKind::kRemove, path);
  if (f != Fault::kNone) return InjectedError(f, "remove", path);
  return target()->RemoveFile(path);
}

Status FaultEnv::RemoveAll(const std::string& path) {
  Fault f = Record(OpKind::kRemoveAll, path);
  if (f != Fault::kNone) return InjectedError(f, "remove", path);
  return target()->RemoveAll(path);
}

Status FaultEnv::RenameFile(const std::string& from, const std::string& to) {
  Fault f = Record(OpKind::kRename, to);
  if (f != Fault::kNone) return InjectedError(f, "rename '" + from + "' to", to);
  return target()->RenameFile(from, to);
}

Status FaultEnv::RenameExchange(const std::string& a, const std::string& b) {
  Fault f = Record(OpKind::kRenameExchange, b);
  if (f != Fault::kNone) return InjectedError(f, "swap '" + a + "' with", b);
  return target()->RenameExchange(a, b);
}

Status FaultEnv::SyncDir(const std::string& dir) {
  Fault f = Record(OpKind::kSyncDir, dir);
  if (f != Fault::kNone) return InjectedError(f, "fsync directory", dir);
  return target()->SyncDir(dir);
}

}  // namespace embark
