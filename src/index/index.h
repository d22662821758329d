// Vector indexes for retrieval, the first stage of a recommender: the top K
// items by inner product with a user embedding. Two kinds behind one
// interface: an exact index (the reference, GEMM over every item) and an
// HNSW graph (hnswlib), both saved as a checksummed index directory
// (docs/index.md).
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <map>
#include <memory>
#include <string>

#include "util/status.h"

namespace embark {

// The id of an empty result slot (fewer than k items); never a valid item id.
inline constexpr uint64_t kNoItem = std::numeric_limits<uint64_t>::max();

// Items: uint64 id -> float[dim]; score = inner product; higher is better.
// Search may run from many threads at once; Add and Save wait for running
// searches and exclude new ones.
class VectorIndex {
 public:
  virtual ~VectorIndex() = default;
  virtual int dim() const = 0;
  virtual size_t size() const = 0;
  // Inserts items, or replaces the vector of an id already present (a
  // growing or changing catalogue). Within one call the last vector of an id
  // wins. Refuses kNoItem as an id and non-finite values, adding nothing.
  virtual Status Add(const uint64_t* ids, const float* vectors, size_t n) = 0;
  // For each of nq queries: the k best items, best first (ties: smaller id
  // first), into ids[q*k..] and scores[q*k..]; fewer than k items: the rest
  // are kNoItem / -inf.
  virtual Status Search(const float* queries, size_t nq, int k, uint64_t* ids, float* scores) const = 0;
  // An index directory (docs/index.md), written atomically: staged beside
  // `dir`, fsynced and swapped in. `dir` must be absent, empty or an index.
  // `extra`: more files of the directory, name -> bytes, listed and
  // checksummed like the index's own (ReadIndexFile reads one back); names
  // of letters, digits, '_', '-' and '.', not the kind's own files.
  virtual Status Save(const std::string& dir, const std::map<std::string, std::string>& extra = {}) const = 0;
  // Bytes the index holds in memory (its own estimate).
  virtual size_t memory_bytes() const = 0;
  virtual std::string kind() const = 0;  // "exact", "hnsw"
};

// The largest dimension an index accepts.
inline constexpr int kMaxIndexDim = 1 << 16;

// Every item scored: batched sgemm of queries against blocks of items, a
// bounded top k per query. Exact and deterministic. The sgemm runs on the
// caller's thread when OpenBLAS is held to one (InitBlas(), as embark's
// binaries and Predictor do): concurrent callers are the parallelism.
Result<std::unique_ptr<VectorIndex>> NewExactIndex(int dim);

struct HnswOptions {
  int M = 16;                  // graph degree (2M links per item at level 0)
  int ef_construction = 200;   // candidate list while inserting
  int ef_search = 100;         // candidate list while searching (at least k)
  size_t initial_capacity = 1024;  // items before the first resize (Add grows it)
  int add_threads = 1;         // threads inserting the new items of one Add (updates run on one)
};

// Approximate: a hierarchical navigable small-world graph (hnswlib 0.6.2).
// Scores of the results are exact inner products; which items are found
// depends on ef_search.
class HnswIndex : public VectorIndex {
 public:
  virtual int ef_search() const = 0;
  // Waits for running searches (hnswlib's ef is one setting for all).
  virtual Status set_ef_search(int ef) = 0;
};

Result<std::unique_ptr<HnswIndex>> NewHnswIndex(int dim, const HnswOptions& options = {});

// Reads an index directory written by Save. Every file's size and XXH64 are
// checked against MANIFEST.json before any byte is parsed; a missing,
// truncated or corrupted file, an unknown version or (with expected_dim > 0)
// another dimension is refused with the file and the reason.
Result<std::unique_ptr<VectorIndex>> LoadIndex(const std::string& dir, int expected_dim = 0);

// One of Save's extra files of the index directory `dir`, its size and
// XXH64 checked against the manifest; NotFound when it does not list it.
Result<std::string> ReadIndexFile(const std::string& dir, const std::string& name);

}  // namespace embark
