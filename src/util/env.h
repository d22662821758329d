// The environment: every file-system call and the clock, behind one
// interface that is passed in (never reached for as a global), so tests can
// swap in a fault-injecting file system (util/fault_env.h) and check that a
// failed write at any point leaves the previous state intact.
//
// Every failure is a Status whose message names the path and the reason.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "util/status.h"

namespace embark {

// A file being written from its start. Appends are not buffered: callers
// hand over blocks. Close() is idempotent; destroying an unclosed file
// closes it and drops any error.
class WritableFile {
 public:
  virtual ~WritableFile() = default;
  virtual Status Append(std::string_view data) = 0;
  virtual Status Sync() = 0;  // fsync: data and size durable
  virtual Status Close() = 0;
  virtual const std::string& path() const = 0;
};

// A file read from its start to its end.
class SequentialFile {
 public:
  virtual ~SequentialFile() = default;
  // Reads up to n bytes into buf; returns how many, 0 only at the end.
  virtual Result<size_t> Read(size_t n, char* buf) = 0;
  virtual const std::string& path() const = 0;
};

class Env {
 public:
  virtual ~Env() = default;

  // The process's real file system and clock. Lives for the whole process.
  static Env* Posix();

  // Creates (or truncates) `path` for writing.
  virtual Result<std::unique_ptr<WritableFile>> NewWritableFile(const std::string& path) = 0;
  virtual Result<std::unique_ptr<SequentialFile>> NewSequentialFile(const std::string& path) = 0;
  // The whole file; for small files only.
  virtual Result<std::string> ReadFileToString(const std::string& path);

  virtual bool FileExists(const std::string& path) = 0;
  virtual Result<uint64_t> GetFileSize(const std::string& path) = 0;
  // Names in `dir` (not "." or ".."), in no particular order.
  virtual Result<std::vector<std::string>> ListDir(const std::string& dir) = 0;

  // mkdir -p; succeeds when the directory exists already.
  virtual Status CreateDirs(const std::string& dir) = 0;
  virtual Status RemoveFile(const std::string& path) = 0;
  // rm -rf; succeeds when `path` does not exist.
  virtual Status RemoveAll(const std::string& path) = 0;
  // rename(2): replaces `to` if it is a file or an empty directory.
  virtual Status RenameFile(const std::string& from, const std::string& to) = 0;
  // Swaps `a` and `b` in one step (renameat2 RENAME_EXCHANGE), so a reader
  // of `b` sees either the old or the new entry, never neither. When `b`
  // does not exist, `a` is renamed to `b` (and `a` is gone afterwards).
  virtual Status RenameExchange(const std::string& a, const std::string& b) = 0;
  // fsync of a directory: makes the creations, renames and removals in it durable.
  virtual Status SyncDir(const std::string& dir) = 0;

  // Microseconds on a monotonic clock.
  virtual uint64_t NowMicros() = 0;
};

// An Env that forwards every call to another; subclass it to change a few.
class EnvWrapper : public Env {
 public:
  explicit EnvWrapper(Env* target) : target_(target) {}
  Env* target() const { return target_; }

  Result<std::unique_ptr<WritableFile>> NewWritableFile(const std::string& path) override {
    return target_->NewWritableFile(path);
  }
  Result<std::unique_ptr<SequentialFile>> NewSequentialFile(const std::string& path) override {
    return target_->NewSequentialFile(path);
  }
  Result<std::string> ReadFileToString(const std::string& path) override { return target_->ReadFileToString(path); }
  bool FileExists(const std::string& path) override { return target_->FileExists(path); }
  Result<uint64_t> GetFileSize(const std::string& path) override { return target_->GetFileSize(path); }
  Result<std::vector<std::string>> ListDir(const std::string& dir) override { return target_->ListDir(dir); }
  Status CreateDirs(const std::string& dir) override { return target_->CreateDirs(dir); }
  Status RemoveFile(const std::string& path) override { return target_->RemoveFile(path); }
  Status RemoveAll(const std::string& path) override { return target_->RemoveAll(path); }
  Status RenameFile(const std::string& from, const std::string& to) override { return target_->RenameFile(from, to); }
  Status RenameExchange(const std::string& a, const std::string& b) override { return target_->RenameExchange(a, b); }
  Status SyncDir(const std::string& dir) override { return target_->SyncDir(dir); }
  uint64_t NowMicros() override { return target_->NowMicros(); }

 private:
  Env* target_;
};

}  // namespace embark
