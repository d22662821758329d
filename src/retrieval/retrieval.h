// Retrieval with a two-tower model (docs/retrieval.md): the item catalogue
// (every item's vector from the item tower, by the key of its item_id
// feature, with the item_id text as its name), the user vectors of rows to
// retrieve for, and recall@K / NDCG@K of a vector index against held-out
// interactions. `embark index`, `embark eval` and `embark serve` stand on it.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "index/index.h"
#include "model/model.h"
#include "util/status.h"
#include "util/thread_pool.h"

namespace embark {

struct ItemCatalogue {
  int dim = 0;
  std::vector<uint64_t> keys;      // the key of each item's item_id feature (its id in an index)
  std::vector<std::string> names;  // the item_id text
  std::vector<float> vectors;      // [size(), dim]: the item tower's output
  // Each item's row as read (the first row of it; a ranker reads its item
  // columns), and the files' header line ("" when the schema names the
  // columns).
  std::vector<std::string> rows;
  std::string header;
  size_t size() const { return keys.size(); }
};

// Every distinct item of `files` (rows in the model's data format, whose
// user columns may be empty), with the features of its first row. Rows
// without an item_id are an error naming the file and line.
Result<ItemCatalogue> EmbedItems(const Model& model, const std::vector<std::string>& files, ThreadPool* pool,
                                 int64_t max_bad_lines = 0);

// The rows to retrieve for: each labelled-positive row's user vector and
// its item's key (the item to find).
struct Queries {
  int dim = 0;
  std::vector<float> users;    // [size(), dim]
  std::vector<uint64_t> items;
  size_t size() const { return items.size(); }
};
Result<Queries> EmbedQueries(const Model& model, const std::vector<std::string>& files, ThreadPool* pool,
                             int64_t max_bad_lines = 0);

// The user vector of every row of `files` ([rows, dim], in input order; a
// row's item columns may be empty): the queries of embark retrieve.
Result<std::vector<float>> EmbedUsers(const Model& model, const std::vector<std::string>& files, ThreadPool* pool,
                                      int64_t max_bad_lines = 0);

// The user and item vectors ([n, dim] each; either may be null) and item
// keys (may be null) of every sample of `batch`, with `ws` (one per thread
// of `pool`).
Status EmbedBatch(const Model& model, const Batch& batch, ThreadPool* pool,
                  const std::vector<std::unique_ptr<Workspace>>& ws, float* users, float* items, uint64_t* keys);

// recall@K: the share of queries whose item is among the top K retrieved;
// NDCG@K: 1 / log2(1 + rank) when it is (rank from 1), else 0; both means
// over the queries. Items the user saw in training are not left out (the
// definition of TensorFlow Recommenders' FactorizedTopK).
struct RetrievalMetrics {
  std::vector<int> ks;
  std::vector<double> recall, ndcg;
  uint64_t queries = 0;
  uint64_t unknown = 0;  // queries whose item the catalogue lacks (misses; set by the caller that has it)
  double seconds = 0;    // of the searches
};
Result<RetrievalMetrics> EvaluateRetrieval(const VectorIndex& index, const Queries& q, const std::vector<int>& ks,
                                           ThreadPool* pool);

// An index of a catalogue: `kind` "exact" or "hnsw" (with `hnsw` options).
Result<std::unique_ptr<VectorIndex>> BuildIndex(const ItemCatalogue& items, const std::string& kind,
                                                const HnswOptions& hnsw = {});

// The extra files `embark index` keeps in an index directory beside the
// index: items.tsv (key in 16 hex digits, tab, name; one line per item),
// items.csv (the header, then each item's row, in the order of items.tsv)
// and source.json (the model it was built from).
std::map<std::string, std::string> IndexExtras(const ItemCatalogue& items, const std::string& source_json);
// The catalogue of an index directory written with IndexExtras (without
// vectors: the index holds them): keys, names, rows and header, each
// checked against the index's manifest.
Result<ItemCatalogue> ReadIndexItems(const std::string& dir);

}  // namespace embark
