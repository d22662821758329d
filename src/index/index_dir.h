// The index directory (docs/index.md) shared by every kind of index: writing
// it through a staging directory, and reading its manifest and files with
// their sizes and checksums verified before anything is parsed.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "checkpoint/files.h"
#include "util/env.h"
#include "util/status.h"

namespace embark::index {

inline constexpr int kIndexVersion = 1;

// What MANIFEST.json says.
struct Manifest {
  std::string kind;
  int dim = 0;
  uint64_t count = 0;
  nlohmann::json params = nlohmann::json::object();  // the kind's own ("hnsw": M, ef_construction, ef_search)
  std::map<std::string, FileEntry> files;
};

// Writes one index directory: files go to a staging directory beside `dir`;
// Commit writes MANIFEST.json last and swaps the staging directory into
// place. Destroyed uncommitted, it removes the staging directory.
class IndexDirWriter {
 public:
  // Refuses a `dir` that holds anything but an embark index.
  static Result<std::unique_ptr<IndexDirWriter>> Begin(const std::string& dir, Env* env = Env::Posix());
  ~IndexDirWriter();

  const std::string& staging() const { return staging_; }
  // A file of the index from `parts` (concatenated), durable, with its manifest entry.
  Status WriteFile(const std::string& name, std::initializer_list<std::string_view> parts);
  // Moves the file at `src` (written by a library into the staging
  // directory) into the index as `name`: copied through a durable file with
  // its checksum, then removed.
  Status AdoptFile(const std::string& name, const std::string& src);
  // VectorIndex::Save's extra files: refuses a bad name or one already written.
  Status WriteExtra(const std::map<std::string, std::string>& extra);
  Status Commit(const Manifest& m);

 private:
  IndexDirWriter(Env* env, std::string dir, std::string staging) : env_(env), dir_(std::move(dir)), staging_(std::move(staging)) {}
  Env* env_;
  std::string dir_, staging_;
  std::map<std::string, FileEntry> files_;
  bool committed_ = false;
};

// Reads and checks MANIFEST.json: format, version, metric, kind, dim, count,
// and that every listed file is present with its listed size.
Result<Manifest> ReadManifest(const std::string& dir, Env* env = Env::Posix());

// The entry of `name`, or Corruption when the manifest does not list it.
Result<FileEntry> Listed(const Manifest& m, const std::string& dir, const std::string& name);

// Streams the file at `path` and checks its size and XXH64 against `e`;
// with `dst`, its bytes land there (e.bytes of room).
Status ReadChecked(const std::string& path, const FileEntry& e, char* dst, Env* env = Env::Posix());

}  // namespace embark::index

namespace embark {
class VectorIndex;
namespace index {
// Each kind's reader, given its checked manifest (LoadIndex dispatches).
Result<std::unique_ptr<VectorIndex>> LoadExact(const std::string& dir, const Manifest& m);
Result<std::unique_ptr<VectorIndex>> LoadHnsw(const std::string& dir, const Manifest& m);
// Argument checks shared by the kinds: non-null pointers for n > 0, ids
// other than kNoItem, finite values.
Status CheckAdd(int dim, const uint64_t* ids, const float* vectors, size_t n);
Status CheckSearch(int dim, const float* queries, size_t nq, int k, const uint64_t* ids, const float* scores);
}  // namespace index
}  // namespace embark
