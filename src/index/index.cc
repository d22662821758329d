#include "index/index.h"

#include <cmath>

#include "index/index_dir.h"

namespace embark {
namespace index {

namespace {
Status CheckFinite(const float* v, size_t n, int dim, const char* what) {
  for (size_t i = 0; i < n * static_cast<size_t>(dim); ++i)
    if (!std::isfinite(v[i]))
      return Status::InvalidArgument(std::string(what) + " " + std::to_string(i / dim) + " has a non-finite value at " +
                                     std::to_string(i % dim));
  return Status::OK();
}
}  // namespace

Status CheckAdd(int dim, const uint64_t* ids, const float* vectors, size_t n) {
  if (n == 0) return Status::OK();
  if (ids == nullptr || vectors == nullptr) return Status::InvalidArgument("index Add: null ids or vectors");
  for (size_t i = 0; i < n; ++i)
    if (ids[i] == kNoItem) return Status::InvalidArgument("index Add: item " + std::to_string(i) + " has the reserved id kNoItem");
  return CheckFinite(vectors, n, dim, "index Add: item");
}

Status CheckSearch(int dim, const float* queries, size_t nq, int k, const uint64_t* ids, const float* scores) {
  if (k <= 0) return Status::InvalidArgument("index Search: k must be positive, not " + std::to_string(k));
  if (nq == 0) return Status::OK();
  if (queries == nullptr || ids == nullptr || scores == nullptr)
    return Status::InvalidArgument("index Search: null queries, ids or scores");
  return CheckFinite(queries, nq, dim, "index Search: query");
}

}  // namespace index

Result<std::unique_ptr<VectorIndex>> LoadIndex(const std::string& dir, int expected_dim) {
  EMBARK_ASSIGN_OR_RETURN(index::Manifest m, index::ReadManifest(dir));
  if (expected_dim > 0 && m.dim != expected_dim)
    return Status::InvalidArgument(dir + ": the index has dim " + std::to_string(m.dim) + ", expected " +
                                   std::to_string(expected_dim));
  if (m.kind == "exact") return index::LoadExact(dir, m);
  if (m.kind == "hnsw") return index::LoadHnsw(dir, m);
  return Status::Corruption(dir + "/MANIFEST.json: unknown index kind '" + m.kind + "' (this build reads exact, hnsw)");
}

Result<std::string> ReadIndexFile(const std::string& dir, const std::string& name) {
  EMBARK_ASSIGN_OR_RETURN(index::Manifest m, index::ReadManifest(dir));
  auto it = m.files.find(name);
  if (it == m.files.end()) return Status::NotFound(dir + ": the index has no file '" + name + "'");
  std::string data(it->second.bytes, '\0');
  EMBARK_RETURN_IF_ERROR(index::ReadChecked(dir + "/" + name, it->second, data.data()));
  return data;
}

}  // namespace embark
