// Embedding tables keyed by 64-bit feature hashes. The interface is batched
// (arrays of keys, never one key per virtual call) so that a table sharded
// across processes or one whose cold rows live on SSD can implement it too.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>

#include "embedding/sparse_optimizer.h"

namespace embark {

struct TableConfig {
  int dim = 16;
  float init_scale = 0.01f;  // rows start uniform in [-init_scale, init_scale], derived from the key
  uint64_t seed = 1;
  SparseOptimizerConfig opt;
};

class EmbeddingTable {
 public:
  virtual ~EmbeddingTable() = default;
  virtual const TableConfig& config() const = 0;
  int dim() const { return config().dim; }
  // Floats stored per row: weights then optimizer state.
  int row_width() const { return dim() + SparseStateSize(config().opt.kind, dim()); }

  // Copies the weights of keys[0..n) into out[n * dim]. Training creates
  // missing rows (deterministically from the key); inference reads zeros for
  // keys the table has never seen and leaves the table unchanged.
  virtual void Lookup(const uint64_t* keys, size_t n, float* out, bool create_missing) = 0;

  // Applies the optimizer to the rows of keys[0..n) (unique within the call)
  // with gradients grads[n * dim].
  virtual void Update(const uint64_t* keys, size_t n, const float* grads) = 0;

  virtual size_t size() const = 0;
  // Bytes the table holds for rows, keys and index (rows counted by the
  // block, so a little more than the rows in use).
  virtual size_t memory_bytes() const = 0;

  // Checkpoint access: every row as (key, row_width floats), and restoring one.
  virtual void ForEachRow(const std::function<void(uint64_t, const float*)>& fn) const = 0;
  virtual void InsertRow(uint64_t key, const float* row) = 0;
};

// The rank that owns `key` when a table is spread over `ranks` processes
// (distributed training, sharded checkpoints); independent of the bits the
// in-memory table uses for its own shards and slots.
int OwnerOf(uint64_t key, int ranks);

// The in-memory table: lock-striped shards of open-addressing maps.
std::unique_ptr<EmbeddingTable> NewHashTable(const TableConfig& cfg);

}  // namespace embark
