// Embedding rows spread over ranks by key hash (Persia's sparse side).
//
// Every rank owns the rows whose key hashes to it, in a local table. Per
// step, a rank sends the unique keys of its batch to their owners, which
// look them up (creating rows in training) and send the rows back; the
// model's threads then read and write a StagedTable holding just those rows;
// afterwards the accumulated row gradients go back to the owners, which sum
// what every rank sent for a key and apply their optimizer once.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <vector>

#include "dist/comm.h"
#include "embedding/table.h"

namespace embark {

// The rows of one step: unique keys, their embedding rows (dim floats each)
// and first-order weights (1 float each, for models with a wide part), and
// the gradients the step accumulates for them.
struct StepRows {
  std::vector<uint64_t> keys;
  std::vector<float> emb, wide, emb_grad, wide_grad;
  bool any = false;  // some rank had samples this step

  // key -> position in keys, built by Index(); open addressing.
  std::vector<uint32_t> slots;
  void Index();
  // Position of key, or -1.
  int64_t Find(uint64_t key) const;
};

// What the model's threads see during a distributed step: the staged rows of
// the current StepRows. Lookup copies them (zeros for a key not staged);
// Update adds into the step's gradient buffers (many threads at once).
// Checkpoint access (ForEachRow, InsertRow, size) goes to the local shard.
class StagedTable : public EmbeddingTable {
 public:
  StagedTable(std::unique_ptr<EmbeddingTable> local, bool wide);
  const TableConfig& config() const override { return local_->config(); }
  void Lookup(const uint64_t* keys, size_t n, float* out, bool create_missing) override;
  void Update(const uint64_t* keys, size_t n, const float* grads) override;
  size_t size() const override { return local_->size(); }
  size_t memory_bytes() const override { return local_->memory_bytes(); }
  void ForEachRow(const std::function<void(uint64_t, const float*)>& fn) const override { local_->ForEachRow(fn); }
  void InsertRow(uint64_t key, const float* row) override { local_->InsertRow(key, row); }

  void set_step(StepRows* step) { step_ = step; }
  EmbeddingTable* local() { return local_.get(); }
  std::unique_ptr<EmbeddingTable> release() { return std::move(local_); }

 private:
  std::unique_ptr<EmbeddingTable> local_;
  bool wide_;
  StepRows* step_ = nullptr;
  std::mutex mu_[64];
};

// The two collective operations of the sparse side. emb or wide may be null
// (a model without embeddings or without a first-order part).
class SparseExchange {
 public:
  SparseExchange(Communicator* comm, EmbeddingTable* emb, EmbeddingTable* wide) : comm_(comm), emb_(emb), wide_(wide) {}

  // Collective. `keys` (unique) are this rank's keys for a step, `has_batch`
  // whether it has samples; fills step (rows from their owners, zeroed
  // gradients) and step->any. Owners create missing rows when `create`.
  Status Fetch(std::vector<uint64_t> keys, bool has_batch, bool create, StepRows* step);
  // Collective. Sends the step's gradients to the owners, which apply them.
  Status Push(const StepRows& step);

  uint64_t bytes_sent() const { return bytes_.load(); }

 private:
  Communicator* comm_;
  EmbeddingTable* emb_;
  EmbeddingTable* wide_;
  std::atomic<uint64_t> bytes_{0};
  std::vector<Bytes> send_, recv_;
};

}  // namespace embark
