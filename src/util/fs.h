// Durable file helpers: every model file is written to a temporary name,
// fsynced and renamed, so a crash never leaves a half-written file behind.
#pragma once

#include <string>
#include <string_view>

#include "util/status.h"

namespace embark::fs {

// Writes `data` to `path` through `path.tmp.<pid>`: write, fsync, rename, fsync dir.
Status WriteFileAtomic(const std::string& path, std::string_view data);

// Writes `data` to `path` (no rename) and fsyncs it; for files inside a staging dir.
Status WriteFileDurable(const std::string& path, std::string_view data);

Result<std::string> ReadFile(const std::string& path);

Status FsyncDir(const std::string& dir);

// Atomically makes `staged` (a fully written, fsynced directory) appear at `dest`.
// When `dest` exists it is swapped out in one step (renameat2 RENAME_EXCHANGE) and
// then removed, so readers see either the old or the new directory, never neither.
Status ReplaceDirAtomic(const std::string& staged, const std::string& dest);

std::string ParentDir(const std::string& path);

}  // namespace embark::fs
