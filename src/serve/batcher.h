// Dynamic micro-batching: concurrent requests are queued and coalesced, up
// to a maximum number of rows or a maximum queueing delay after the first
// one, then scored in one inference pass (Model::Forward, as predict runs
// it). Workers take turns collecting, so one collects while others score.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "data/batch.h"
#include "data/parse.h"
#include "model/model.h"
#include "serve/metrics.h"

namespace embark::serve {

struct RequestShape;

// A loaded checkpoint, shared by the requests scored on it: a reload swaps
// in a new one while requests in flight keep the old one alive. A delta
// applied in place swaps in a new one too, sharing the tables (Model::
// ShareTables), the encoder, the version and the metadata of the one before.
struct ServedModel {
  std::unique_ptr<Model> model;
  std::shared_ptr<const RowEncoder> encoder;
  std::string version_str;  // "1" for the first load, +1 per reload; deltas keep it
  std::string metadata_json;
  std::string snapshot_id;  // of the snapshot loaded (deltas name it as their base)
  uint64_t delta_seq = 0;   // the last delta in the model (0: none)
  std::shared_ptr<const RequestShape> shape;  // a two-tower model's requests (topk.h); null: ranking
};

struct BatcherOptions {
  size_t max_batch_rows = 256;
  std::chrono::microseconds max_delay{200};
  int workers = 1;
};

class Batcher {
 public:
  Batcher(const BatcherOptions& opt, ServerMetrics* metrics);
  ~Batcher();
  Batcher(const Batcher&) = delete;
  Batcher& operator=(const Batcher&) = delete;

  // Scores every sample of `batch` with `model`, batched with concurrent
  // calls on the same model; blocks until probs[0, batch.size()) are set,
  // or returns why they could not be (a store failing to read its rows).
  Status Score(const std::shared_ptr<const ServedModel>& model, const Batch& batch, float* probs);

  // Scores what is queued, then stops the workers.
  void Stop();

 private:
  struct Item;
  void Work();

  BatcherOptions opt_;
  ServerMetrics* metrics_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Item*> queue_;
  size_t queued_rows_ = 0;
  bool collecting_ = false;
  bool stop_ = false;
  std::vector<std::thread> workers_;
};

}  // namespace embark::serve
