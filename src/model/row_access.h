// How a step's forward and backward passes reach embedding rows. The model
// never talks to storage itself: it gathers the rows of a sub-batch's unique
// keys through a RowAccess and scatters their gradients back through it.
// Single-process training and inference use the model's own stores
// (StoreAccess); a distributed step uses the rows fetched from their owner
// ranks for that step (src/dist/staged_rows.h).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "embedding/row_store.h"
#include "util/status.h"

namespace embark {

class RowAccess {
 public:
  virtual ~RowAccess() = default;
  // Weights (the table's dim floats each) of keys[0..n) of table `table`
  // into out. With `train`, absent rows are created; otherwise they read as
  // zeros and nothing changes.
  virtual Status Gather(int table, const uint64_t* keys, size_t n, float* out, bool train) = 0;
  // Gradients grads[n * dim] of keys[0..n) (unique, gathered in this step)
  // of table `table`.
  virtual Status Scatter(int table, const uint64_t* keys, size_t n, const float* grads) = 0;
};

// The stores themselves: Gather reads (creating rows in training), Scatter
// applies each table's optimizer.
class StoreAccess : public RowAccess {
 public:
  explicit StoreAccess(std::vector<RowStore*> stores) : stores_(std::move(stores)) {}
  Status Gather(int table, const uint64_t* keys, size_t n, float* out, bool train) override {
    return stores_[table]->Get(keys, n, out, train ? Access::kTrain : Access::kRead);
  }
  Status Scatter(int table, const uint64_t* keys, size_t n, const float* grads) override {
    return stores_[table]->Update(keys, n, grads);
  }

 private:
  std::vector<RowStore*> stores_;
};

}  // namespace embark
