// Top-K serving of a two-tower model (docs/serving.md, "Retrieval"): the
// index served with its catalogue, the ranker that re-orders what it
// retrieves, and one request's retrieval, ranker rows and answer. Kept free
// of HTTP like request.h.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "data/batch.h"
#include "data/parse.h"
#include "index/index.h"
#include "serve/batcher.h"
#include "serve/request.h"
#include "util/status.h"

namespace embark::serve {

// The largest K a request may ask for.
inline constexpr int kMaxTopK = 10000;

// A ranking checkpoint behind a two-tower model (--ranker): each of its
// inputs is filled from the request when it is a user column of the two-tower
// model, else from the catalogue's column of that name.
struct Ranker {
  std::shared_ptr<const ServedModel> model;  // scored through the batcher
  std::vector<std::string> inputs;           // its encoder's input names
};

// A ranking checkpoint, frozen for inference; a two-tower one is refused.
Result<std::unique_ptr<Ranker>> LoadRanker(const std::string& dir);

// An index directory (embark index) loaded for serving: the index, each
// item's name by its key, and the catalogue's values of the ranker's inputs.
struct ServedIndex {
  std::unique_ptr<VectorIndex> index;
  std::vector<std::string> names;              // by position in the catalogue
  std::unordered_map<uint64_t, uint32_t> at;   // item key -> position
  std::vector<std::string> columns;            // the catalogue's header, split
  // Per item, per ranker input (Ranker::inputs): the catalogue's value
  // (item-major); has_column[j]: whether the catalogue has input j at all.
  std::vector<std::string> ranker_values;
  std::vector<bool> has_column;
  std::string version_str;  // "1" for the first load, +1 per reload
  std::string dir_signature;  // of the directory when it was read (the server's reload check)
  int dim() const { return index->dim(); }
};

// Reads the index directory `dir` whole (every file checked against its
// manifest), splitting the catalogue's rows with `spec` (the two-tower
// model's) for `ranker` (may be null).
Result<std::shared_ptr<ServedIndex>> LoadServedIndex(const std::string& dir, const DataSpec& spec,
                                                     const Ranker* ranker, int64_t version);

// Whether the two-tower model `tt` can serve from `idx` (and feed `ranker`,
// may be null): the same dimension, and every ranker input a user column of
// the model or a column of the catalogue. The error names what differs.
Status CheckServable(const Model& tt, const ServedIndex& idx, const Ranker* ranker);

// The request shape of a two-tower model: its user columns in, and the
// outputs item_ids, scores (and retrieval_scores with a ranker).
RequestShape TopKShape(const RowEncoder& enc, const DataSpec& spec, bool ranker);
// Metadata outputs of that shape, K wide.
std::string TopKOutputsJson(int k, bool ranker);

// The top k items of each of the `batch`'s n rows: the user vectors (the
// model's forward on this thread), searched in the index. items[n*k]:
// positions in the catalogue; scores[n*k]: the model's logits u.v / t.
Status RetrieveTopK(const Model& model, const ServedIndex& idx, const Batch& batch, int k,
                    std::vector<uint32_t>* items, std::vector<float>* scores);

// The ranker's rows, k per request row: the request's values of the user
// columns (req.values, kept for the two-tower encoder `enc`) with each
// candidate's catalogue values. Returns an error naming the row, or "".
std::string RankerRows(const Ranker& ranker, const RowEncoder& enc, const DataSpec& spec, const InferRequest& req,
                       const ServedIndex& idx, const std::vector<uint32_t>& items, int k, Batch* out);

// Re-orders each of the n rows' k candidates by ranker probability, best
// first (ties keep the retrieval order): items, probs and the retrieval
// scores alike.
void OrderByRanker(size_t n, int k, std::vector<uint32_t>* items, std::vector<float>* probs,
                   std::vector<float>* retrieval_scores);

// The answer: outputs item_ids and scores ([n, k], row-major), and
// retrieval_scores when given (non-null).
std::string TopKResponseJson(const std::string& model, const std::string& version, const std::string& id,
                             const ServedIndex& idx, const uint32_t* items, const float* scores,
                             const float* retrieval_scores, size_t n, int k);

}  // namespace embark::serve
