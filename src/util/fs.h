// Durable file helpers over an Env: a file is written to a temporary name,
// fsynced and renamed, so a crash never leaves a half-written file behind;
// a directory is staged beside its target and swapped in.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "util/env.h"
#include "util/status.h"

namespace embark::fs {

// The one way embark writes a file atomically, streaming:
//
//   EMBARK_ASSIGN_OR_RETURN(auto f, AtomicFile::Create(path, env));
//   EMBARK_RETURN_IF_ERROR(f->Append(block));   // as often as needed
//   EMBARK_RETURN_IF_ERROR(f->Commit());
//
// Bytes go to `path.tmp.<pid>`; Commit() fsyncs and closes it, renames it to
// `path` and fsyncs the parent directory. Until then `path` keeps its old
// content (or stays absent). A file destroyed or Abort()ed before a
// successful Commit() removes its temporary; so does a failed Commit().
class AtomicFile {
 public:
  static Result<std::unique_ptr<AtomicFile>> Create(const std::string& path, Env* env = Env::Posix());
  // The same with the temporary a dot-file beside `path` (`.NAME.tmp.<pid>`):
  // for a directory that a reader watches and that skips dot-files, so the
  // reader sees the file whole or not at all.
  static Result<std::unique_ptr<AtomicFile>> CreateHidden(const std::string& path, Env* env = Env::Posix());
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  Status Append(std::string_view data);
  Status Commit();
  void Abort();

  const std::string& path() const { return path_; }
  const std::string& temp_path() const { return tmp_; }
  uint64_t size() const { return size_; }

 private:
  AtomicFile(Env* env, std::string path, std::string tmp, std::unique_ptr<WritableFile> file);
  Env* env_;
  std::string path_, tmp_;
  std::unique_ptr<WritableFile> file_;
  uint64_t size_ = 0;
  bool done_ = false;
};

// `data` to `path` through an AtomicFile.
Status WriteFileAtomic(const std::string& path, std::string_view data, Env* env = Env::Posix());

Result<std::string> ReadFile(const std::string& path, Env* env = Env::Posix());

Status FsyncDir(const std::string& dir, Env* env = Env::Posix());

// Atomically makes `staged` (a fully written, fsynced directory) appear at `dest`.
// When `dest` exists it is swapped out in one step (Env::RenameExchange) and
// then removed, so readers see either the old or the new directory, never neither.
// On error `dest` is left as it was (a failed sync of the parent undoes the
// swap) and `staged` is the caller's to remove. Failing to remove the
// previous directory after a durable swap is not an error: it stays at
// `staged` until the next save into `dest` from this process, or from a
// later one once this one has exited (RemoveStaleStaging).
Status ReplaceDirAtomic(const std::string& staged, const std::string& dest, Env* env = Env::Posix());

// OK when a checkpoint may be written to `dest`: nothing is there, an empty
// directory, or an embark checkpoint (a MANIFEST.json and nothing but the
// files a save writes). Anything else (a file, a directory of someone's
// files, a checkpoint someone added files to) is refused with the reason:
// replacing it would delete it.
Status CheckReplaceable(const std::string& dest, Env* env = Env::Posix());

// The staging directory of a save into `dest` by this process: `dest.tmp-<pid>`.
std::string StagingDir(const std::string& dest);

// Removes the staging directories `dest.tmp-<pid>` that a killed save into
// `dest` left behind: those whose pid is not a live process (this process's
// own, and those of live processes, are kept) and that hold nothing but the
// files a save writes (a directory with anything else in it is not embark's
// and is kept). Sets *removed to their paths.
Status RemoveStaleStaging(const std::string& dest, Env* env, std::vector<std::string>* removed = nullptr);

std::string ParentDir(const std::string& path);

// For a command's output file `out` (the `--out` flag): refuses a
// directory, a path inside any of `dirs` (a checkpoint or index being read,
// named by its flag in `dir_flags`), and one of `inputs` (--data), each
// with the reason; writing there would destroy what is read.
Status CheckOutputFile(const std::string& out, const std::vector<std::string>& inputs,
                       const std::vector<std::pair<std::string, std::string>>& dirs);

}  // namespace embark::fs
