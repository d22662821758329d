// The disk tier under a tiered row store: fixed-size values by 64-bit key,
// read and written in batches. It is scratch space, not a durable copy: the
// checkpoint is the durability point, so the tier runs without a write-ahead
// log, and a run starts it empty.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "util/status.h"

namespace embark {

struct DiskTierOptions {
  std::string dir;          // created; must be absent, empty, or a table directory embark made before
  size_t value_bytes = 0;   // every value has this size
  size_t memory_bytes = 0;  // RAM the tier may use (write buffers, block cache with index and filters)
};

// Values of keys in key order, a block at a time, from a snapshot.
class DiskIterator {
 public:
  virtual ~DiskIterator() = default;
  // Up to `max` entries into keys[] and values[] (value_bytes each); the
  // number written, 0 at the end.
  virtual Result<size_t> Next(size_t max, uint64_t* keys, char* values) = 0;
};

class DiskTier {
 public:
  virtual ~DiskTier() = default;
  // values[i * value_bytes ..] for keys[0..n); found[i] false for a key not
  // held (its value bytes are left as they were).
  virtual Status MultiGet(const uint64_t* keys, size_t n, char* values, bool* found) = 0;
  // Writes keys[0..n) with values (value_bytes each) and deletes erase[0..m),
  // as one batch.
  virtual Status Write(const uint64_t* keys, size_t n, const char* values, const uint64_t* erase, size_t m) = 0;
  // A snapshot of every value written so far.
  virtual std::unique_ptr<DiskIterator> NewIterator() = 0;
  virtual uint64_t disk_bytes() const = 0;    // live files on disk
  virtual uint64_t memory_bytes() const = 0;  // RAM in use: write buffers, cached blocks, table readers
  // Bytes read from and written to the disk files (not counting the write
  // buffers' RAM), since the tier was opened.
  virtual uint64_t bytes_read() const = 0;
  virtual uint64_t bytes_written() const = 0;
};

// RocksDB, tuned for a cache's spill traffic: no WAL, no compression, 10-bit
// bloom filters (most misses of new ids end there), index and filter blocks
// charged to a bounded block cache, direct I/O where the file system allows.
Result<std::unique_ptr<DiskTier>> OpenRocksDbTier(const DiskTierOptions& opt);

}  // namespace embark
