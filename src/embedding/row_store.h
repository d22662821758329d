// Row storage for embedding tables: the one interface every store implements
// (today's in-memory hash store; a RAM cache over SSD next), and the sparse
// optimizer every store applies through, so that a second store is a
// drop-in and the optimizer's arithmetic lives in one place.
//
// Every call is batched (arrays of keys, never one key per virtual call) and
// returns a Status, so a store backed by a disk can report an I/O error.
// Rows are `[dim weights | optimizer state]`; a store keeps 8 bytes of
// metadata beside each row (RowMeta) for eviction, TTL and delta checkpoints.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "embedding/sparse_optimizer.h"
#include "util/status.h"

namespace embark {

// Which ids get a row, and when rows are dropped (forgotten, not spilled):
// the same rules in every store.
struct RowPolicy {
  // A row is created for an id once training has seen it this many times
  // (counted in a sketch of bounded memory); 0 or 1: at once.
  uint32_t admit_min_count = 0;
  // Each time training sees an id without a row, it gets one with this
  // probability (deterministic in the id and the step).
  float admit_probability = 1.0f;
  // Rows over this many are dropped, least recently used first; 0: no cap.
  uint64_t max_rows = 0;
  // Rows not read for training or updated for this many steps are dropped;
  // 0: never.
  uint32_t ttl_steps = 0;
  bool admits_all() const { return admit_min_count <= 1 && admit_probability >= 1.0f; }
  bool drops() const { return max_rows > 0 || ttl_steps > 0; }
};

// How a store keeps rows in memory. The interface always speaks fp32; fp16
// rows are rounded stochastically (deterministically in key and step) when
// written. int8 rows (serving copies made by `embark export`) keep no
// optimizer state and refuse Update: they are for inference only.
enum class RowPrecision { kFp32, kFp16, kInt8 };

struct TableConfig {
  std::string name = "embeddings";
  int dim = 16;
  float init_scale = 0.01f;  // rows start uniform in [-init_scale, init_scale], derived from the key
  uint64_t seed = 1;
  SparseOptimizerConfig opt;
  RowPolicy policy;
  RowPrecision precision = RowPrecision::kFp32;

  // Floats stored per row: weights then optimizer state.
  int row_width() const { return dim + SparseStateSize(opt.kind, dim); }
};

// The optimizer of one table's rows. No virtual call per row: every store
// calls Apply on each row it updates, under whatever lock keeps that row
// whole; Apply is ApplySparseUpdate through a SparseUpdater made once.
class SparseOptimizer {
 public:
  SparseOptimizer(const SparseOptimizerConfig& cfg, int dim) : cfg_(cfg), dim_(dim), updater_(cfg, dim) {}
  const SparseOptimizerConfig& config() const { return cfg_; }
  int dim() const { return dim_; }
  int state_size() const { return SparseStateSize(cfg_.kind, dim_); }
  // A new row of `key`: weights from (key, seed), fresh optimizer state.
  void InitRow(uint64_t key, float init_scale, uint64_t seed, float* row) const;
  // One update of `row` (weights then state) with gradient grad[dim].
  void Apply(float* row, const float* grad) const { updater_.Apply(row, row + dim_, grad); }

 private:
  SparseOptimizerConfig cfg_;
  int dim_;
  SparseUpdater updater_;
};

// A store's SetOptimizer: new settings for cfg->opt and *opt, refused when
// they change the kind (and so the row layout).
inline Status ReplaceOptimizer(const SparseOptimizerConfig& next, TableConfig* cfg, SparseOptimizer* opt) {
  if (next.kind != cfg->opt.kind)
    return Status::InvalidArgument("table '" + cfg->name + "' holds " + SparseOptName(cfg->opt.kind) +
                                   " state; cannot switch to " + SparseOptName(next.kind));
  cfg->opt = next;
  *opt = SparseOptimizer(next, cfg->dim);
  return Status::OK();
}

// Bookkeeping kept beside each row: 8 bytes.
struct RowMeta {
  uint32_t last_step = 0;  // the store's step when the row was last read for training or updated
  uint32_t count = 0;      // updates applied to the row (saturates)
};

// What a training read (update false) or an update does to a row's
// metadata at `step`. The count saturates below UINT32_MAX, which a store
// may keep for itself.
inline void Touch(RowMeta* m, uint32_t step, bool update) {
  m->last_step = step;
  if (update && m->count < UINT32_MAX - 1) ++m->count;
}

// Rows read from a store in blocks: keys[i], rows[i * width .. + width), meta[i].
struct RowBatch {
  std::vector<uint64_t> keys;
  std::vector<float> rows;
  std::vector<RowMeta> meta;
  size_t size() const { return keys.size(); }
  void clear() {
    keys.clear();
    rows.clear();
    meta.clear();
  }
};

// Every row of a store, block by block, for checkpoints and deltas. The
// store's locks are held only while a block is copied out, never while the
// caller looks at it. Each row is read whole; the set of rows is a point-in-
// time snapshot when no writer runs meanwhile (the trainer saves between
// steps), and otherwise holds every row that existed throughout the walk.
class RowIterator {
 public:
  virtual ~RowIterator() = default;
  // Fills *out with the next rows (at most the block size given to
  // NewIterator); false when every row has been returned.
  virtual Result<bool> Next(RowBatch* out) = 0;
};

struct StoreStats {
  size_t rows = 0;
  size_t memory_bytes = 0;  // rows, keys, metadata and index held in RAM
  size_t disk_bytes = 0;    // bytes on disk (0 for the in-memory store)
  // Counters since the store was made.
  uint64_t admitted = 0;  // rows created by training reads and updates
  uint64_t rejected = 0;  // training reads of ids not (yet) admitted: they read zeros
  uint64_t evicted = 0;   // rows dropped over RowPolicy::max_rows
  uint64_t expired = 0;   // rows dropped by RowPolicy::ttl_steps
  // A store with a slower tier (0 for the in-memory store):
  uint64_t hits = 0, misses = 0;  // row lookups answered by RAM, and by the disk tier
  uint64_t disk_read_bytes = 0, disk_write_bytes = 0;
  double stall_seconds = 0;  // time callers of Get and Update waited on the disk tier

  // Adds another table's figures (rows and bytes add up too).
  StoreStats& operator+=(const StoreStats& o) {
    rows += o.rows;
    memory_bytes += o.memory_bytes;
    disk_bytes += o.disk_bytes;
    admitted += o.admitted;
    rejected += o.rejected;
    evicted += o.evicted;
    expired += o.expired;
    hits += o.hits;
    misses += o.misses;
    disk_read_bytes += o.disk_read_bytes;
    disk_write_bytes += o.disk_write_bytes;
    stall_seconds += o.stall_seconds;
    return *this;
  }
};

// What a Get does with keys the store does not hold.
enum class Access {
  kRead,   // inference: absent rows read as zeros; nothing changes, not even metadata
  kTrain,  // training: absent rows are created (deterministically from the key); metadata is touched
};

class RowStore {
 public:
  virtual ~RowStore() = default;
  virtual const TableConfig& config() const = 0;
  int dim() const { return config().dim; }
  int row_width() const { return config().row_width(); }

  // Copies the weights (dim floats) of keys[0..n) into out[n * dim].
  virtual Status Get(const uint64_t* keys, size_t n, float* out, Access access) = 0;

  // Applies the optimizer to the rows of keys[0..n) (unique within the call)
  // with gradients grads[n * dim]; absent rows are created first.
  virtual Status Update(const uint64_t* keys, size_t n, const float* grads) = 0;

  // Writes whole rows (row_width floats each: weights then state), replacing
  // any held; with meta, the rows' metadata too (else it starts fresh).
  virtual Status Put(const uint64_t* keys, size_t n, const float* rows, const RowMeta* meta) = 0;

  // Reads whole rows and their metadata; found[i] false (row and meta
  // zeroed) for a key not held. Nothing changes.
  virtual Status Read(const uint64_t* keys, size_t n, float* rows, RowMeta* meta, bool* found) = 0;

  // Forgets keys[0..n); keys not held are ignored.
  virtual Status Erase(const uint64_t* keys, size_t n) = 0;

  // A hint that keys[0..n) are needed a few steps from now; a store with a
  // slower tier starts bringing them in. Never required for correctness.
  virtual void Prefetch(const uint64_t* keys, size_t n) {}

  // The step recorded as RowMeta::last_step by later training reads and
  // updates (the trainer sets it before each step).
  virtual void SetStep(uint32_t step) = 0;

  // Changes the optimizer's settings (learning rate, l2, ...); the kind,
  // and so the row layout, must stay the same. Not concurrent with updates.
  virtual Status SetOptimizer(const SparseOptimizerConfig& opt) = 0;

  virtual std::unique_ptr<RowIterator> NewIterator(size_t block_rows = 4096) const = 0;

  // Drops the rows RowPolicy says to drop as of step `now`: rows idle for
  // ttl_steps, then the least recently used rows over max_rows. Safe to run
  // on a background thread while other threads train; never holds a lock
  // that a step needs for long. A no-op when the policy drops nothing.
  virtual Status Evict(uint32_t now) { return Status::OK(); }

  virtual StoreStats stats() const = 0;
};

// The rank that owns `key` when a table is spread over `ranks` processes
// (distributed training, sharded checkpoints); independent of the bits a
// store uses for its own shards and slots.
int OwnerOf(uint64_t key, int ranks);

// The in-memory store: lock-striped shards of open-addressing maps.
std::unique_ptr<RowStore> NewMemoryStore(const TableConfig& cfg);

}  // namespace embark
