// Embedding rows spread over ranks by key hash (Persia's sparse side).
//
// Every rank owns the rows whose key hashes to it, in a local table. Per
// step, a rank sends the unique keys of its batch to their owners, which
// look them up (creating rows in training) and send the rows back; the
// model's threads then read and write those rows through a StagedRows;
// afterwards the accumulated row gradients go back to the owners, which sum
// what every rank sent for a key and apply their optimizer once.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <vector>

#include "dist/comm.h"
#include "embedding/row_store.h"
#include "model/row_access.h"

namespace embark {

// The rows of one step: unique keys, for each table of the model their rows
// (the table's dim floats each) and the gradients the step accumulates for
// them.
struct StepRows {
  std::vector<uint64_t> keys;
  std::vector<std::vector<float>> rows, grads;  // per table
  bool any = false;  // some rank had samples this step

  // key -> position in keys, built by Index(); open addressing.
  std::vector<uint32_t> slots;
  void Index();
  // Position of key, or -1.
  int64_t Find(uint64_t key) const;
};

// What the model's threads reach during a distributed step: the rows staged
// in one StepRows. Gather copies them; Scatter adds into the step's gradient
// buffers (many threads at once; the owners apply the optimizer after the
// step). A key that was not staged is an error, not a silent zero or drop:
// every key of the step's batch was fetched.
class StagedRows : public RowAccess {
 public:
  explicit StagedRows(std::vector<int> dims) : dims_(std::move(dims)) {}
  void set_step(StepRows* step) { step_ = step; }
  Status Gather(int table, const uint64_t* keys, size_t n, float* out, bool train) override;
  Status Scatter(int table, const uint64_t* keys, size_t n, const float* grads) override;

 private:
  std::vector<int> dims_;
  StepRows* step_ = nullptr;
  std::mutex mu_[64];
};

// The two collective operations of the sparse side, over every table of a
// model (this rank's shards of them).
class SparseExchange {
 public:
  SparseExchange(Communicator* comm, std::vector<RowStore*> tables) : comm_(comm), tables_(std::move(tables)) {}

  // Collective. `keys` (unique) are this rank's keys for a step, `has_batch`
  // whether it has samples; fills step (rows from their owners, zeroed
  // gradients) and step->any. Owners create missing rows when `create`.
  Status Fetch(std::vector<uint64_t> keys, bool has_batch, bool create, StepRows* step);
  // Collective. Sends the step's gradients to the owners, which apply them.
  Status Push(const StepRows& step);

  uint64_t bytes_sent() const { return bytes_.load(); }

 private:
  // Floats per key over every table.
  int Width() const;
  Communicator* comm_;
  std::vector<RowStore*> tables_;
  std::atomic<uint64_t> bytes_{0};
  std::vector<Bytes> send_, recv_;
};

}  // namespace embark
