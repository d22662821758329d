// A row store larger than its RAM: a cache of hot rows in RAM over a disk
// tier (RocksDB) holding the rest. It implements RowStore, so the model,
// the trainer, checkpoints and the distributed session use it unchanged.
//
// - Rows are read, created and updated only in the RAM cache. A row that
//   is not there is brought in first (a miss), from the disk tier or, for
//   an id never seen, created.
// - The cache evicts with CLOCK (a reference bit per row: one second chance,
//   LRU's behaviour at a byte of state). A clean row leaves at once; a dirty
//   one is written back first, in batches, by a background cleaner that
//   keeps rows ahead of the clock hand clean, so a step rarely writes.
// - Prefetch(keys) brings the rows of batches still to come in on a
//   background thread while the current batch trains; rows being brought in
//   are pinned, and a step that needs one waits for it (counted as stall).
// - The disk tier is scratch: the checkpoint is the durable copy. A store
//   starts its directory empty, and NewIterator first writes every dirty row
//   back, then walks a snapshot of the disk tier.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "embedding/row_store.h"
#include "util/status.h"

namespace embark {

struct TierOptions {
  // RAM for the table: cache rows with their metadata and index, and the
  // disk tier's buffers and block cache.
  uint64_t memory_budget = 64 << 20;
  // The table's directory: created; must be absent, empty, or one embark
  // made before (then emptied).
  std::string dir;
  // Rows the cache holds, instead of what memory_budget allows (tests use
  // tiny caches so that eviction happens all the time).
  size_t cache_rows = 0;
  // The cleaner and prefetch threads; without them dirty rows are written
  // back by whoever needs their slot, and Prefetch does nothing.
  bool background = true;
};

// Bytes of RAM a cached row costs beyond its row_width floats: key and
// RowMeta (16), flags (1), index (10).
constexpr size_t kTierBytesPerCachedRow = 27;

Result<std::unique_ptr<RowStore>> NewTieredStore(const TableConfig& cfg, const TierOptions& opt);

}  // namespace embark
