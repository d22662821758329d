// A fault-injecting Env for tests: wraps another Env, records every
// mutating operation (create, append, sync, close, rename, rename-exchange,
// remove, mkdir, directory sync) with its path, and can fail the k-th one.
//
//   FaultEnv env(Env::Posix());
//   env.FailOp(7, Fault::kNoSpace);   // the 7th mutating operation fails
//   Status s = SaveCheckpoint(dir, model, opt, ts, nullptr, &env);
//   env.ops()                          // what was attempted, in order
//
// Reads are forwarded untouched; reads() lists the files opened for reading.
#pragma once

#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "util/env.h"

namespace embark {

enum class Fault {
  kNone,
  kIOError,     // EIO: the operation does nothing and fails
  kNoSpace,     // ENOSPC: likewise
  kShortWrite,  // an append writes the first half of its bytes, then fails (ENOSPC);
                // on an operation that is not an append, the same as kNoSpace
};

const char* FaultName(Fault f);

class FaultEnv : public EnvWrapper {
 public:
  enum class OpKind { kCreate, kAppend, kSync, kClose, kRename, kRenameExchange, kRemove, kRemoveAll, kMkdir, kSyncDir };
  struct Op {
    OpKind kind;
    std::string path;  // for renames, the destination
  };
  static const char* OpName(OpKind k);

  explicit FaultEnv(Env* target) : EnvWrapper(target) {}

  // Fails the op-th mutating operation counted from now (1-based) with
  // `fault`; 0 injects nothing. Clears the record of operations.
  void FailOp(uint64_t op, Fault fault);
  // Every mutating operation since the last FailOp, in order.
  std::vector<Op> ops() const;
  // Whether the requested fault has been injected.
  bool injected() const;
  // Paths opened for reading since the last FailOp, in order.
  std::vector<std::string> reads() const;
  // Fails the n-th read operation counted from now (1-based: opening a file
  // for reading, reading a whole file, or one Read of an open file) with
  // EIO; 0 injects nothing. read_ops() counts them since this call.
  void FailRead(uint64_t n);
  uint64_t read_ops() const;
  // For the files this Env hands out: counts a read; true if it must fail.
  bool RecordRead();

  Result<std::unique_ptr<WritableFile>> NewWritableFile(const std::string& path) override;
  Result<std::unique_ptr<SequentialFile>> NewSequentialFile(const std::string& path) override;
  Result<std::string> ReadFileToString(const std::string& path) override;
  Status CreateDirs(const std::string& dir) override;
  Status RemoveFile(const std::string& path) override;
  Status RemoveAll(const std::string& path) override;
  Status RenameFile(const std::string& from, const std::string& to) override;
  Status RenameExchange(const std::string& a, const std::string& b) override;
  Status SyncDir(const std::string& dir) override;

  // For the files this Env hands out: records the operation and says which
  // fault, if any, it must suffer.
  Fault Record(OpKind kind, const std::string& path);

 private:
  mutable std::mutex mu_;
  std::vector<Op> ops_;
  std::vector<std::string> reads_;
  uint64_t fail_at_ = 0;
  uint64_t read_ops_ = 0, fail_read_at_ = 0;
  Fault fault_ = Fault::kNone;
  bool injected_ = false;
};

// The Status an injected fault produces for `what` ("write", "rename", ...)
// on `path`: "cannot WHAT 'PATH': Input/output error (injected)".
Status InjectedError(Fault f, const std::string& what, const std::string& path);

}  // namespace embark
