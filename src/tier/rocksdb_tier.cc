// The disk tier on RocksDB (Debian's librocksdb-dev).
//
// Tuning, for a cache's spill traffic (point reads of rows that left RAM,
// batched writes of rows evicted dirty, one full scan per checkpoint):
// - no WAL: the checkpoint is the durable copy, and a run starts the tier
//   empty, so nothing would ever replay a log;
// - no compression: rows of floats barely compress, and decompression
//   would sit on every miss's path;
// - 10-bit bloom filters (about 1% false positives) on files and write
//   buffers: ids never seen before miss RAM and end at a filter instead of
//   a data block or a skip-list walk;
// - 4 KiB blocks (a point read fetches one block, not 16), index and filter
//   blocks charged to a bounded block cache, so the tier's RAM has a bound;
// - write buffers of up to 64 MiB, so evictions batch into large flushes;
// - universal compaction (less write amplification than leveled, for
//   more space);
// - direct I/O for flushes and compactions where the file system allows
//   it, so written rows do not fill the page cache; reads are buffered
//   (measured: direct reads cost every miss a device round trip).
#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <filesystem>
#include <fstream>

#include <rocksdb/cache.h>
#include <rocksdb/db.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/iostats_context.h>
#include <rocksdb/options.h>
#include <rocksdb/perf_context.h>
#include <rocksdb/perf_level.h>
#include <rocksdb/statistics.h>
#include <rocksdb/table.h>
#include <rocksdb/write_batch.h>

#include "tier/disk_tier.h"

namespace embark {
namespace {

namespace fs = std::filesystem;

// Keys big-endian, so the database's order is the keys' numeric order.
void EncodeKey(uint64_t k, char* out) {
  for (int i = 7; i >= 0; --i) {
    out[i] = static_cast<char>(k & 0xFF);
    k >>= 8;
  }
}
uint64_t DecodeKey(const char* p) {
  uint64_t k = 0;
  for (int i = 0; i < 8; ++i) k = (k << 8) | static_cast<unsigned char>(p[i]);
  return k;
}

// A file in every table directory embark made: its presence is what allows
// a later run to empty the directory.
constexpr const char* kMarker = "EMBARK_TABLE";

Status ToStatus(const rocksdb::Status& s, const std::string& dir, const char* what) {
  if (s.ok()) return Status::OK();
  const std::string msg = std::string("table directory ") + dir + ": " + what + ": " + s.ToString();
  if (s.IsCorruption())
    return Status::Corruption(msg + " (the disk tier is scratch: the checkpoint is the durable copy; resume from it)");
  return Status::IOError(msg);
}

// Prepares `dir`: created if absent; emptied if it holds an earlier run's
// table (the marker says so); refused if it holds anything else.
Status PrepareDir(const std::string& dir) {
  std::error_code ec;
  if (fs::exists(dir, ec)) {
    if (!fs::is_directory(dir, ec)) return Status::InvalidArgument("table directory " + dir + " is not a directory");
    bool empty = fs::is_empty(dir, ec);
    if (ec) return Status::IOError("table directory " + dir + ": " + ec.message());
    if (!empty) {
      if (!fs::exists(fs::path(dir) / kMarker, ec))
        return Status::InvalidArgument("table directory " + dir +
                                       " is not empty and was not made by embark; give an empty or new directory");
      rocksdb::Options o;
      rocksdb::Status s = rocksdb::DestroyDB(dir, o);
      if (!s.ok()) return ToStatus(s, dir, "clearing the previous run's rows (is another run using it?)");
      for (const auto& e : fs::directory_iterator(dir, ec)) fs::remove_all(e.path(), ec);
      if (ec) return Status::IOError("table directory " + dir + ": " + ec.message());
    }
  } else {
    fs::create_directories(dir, ec);
    if (ec) return Status::IOError("cannot create table directory " + dir + ": " + ec.message());
  }
  std::ofstream(fs::path(dir) / kMarker) << "rows of an embark table beyond its memory budget; scratch, safe to delete\n";
  return Status::OK();
}

class RocksDbIterator : public DiskIterator {
 public:
  RocksDbIterator(rocksdb::DB* db, size_t value_bytes, std::string dir)
      : db_(db), value_bytes_(value_bytes), dir_(std::move(dir)) {
    snap_ = db_->GetSnapshot();
    rocksdb::ReadOptions ro;
    ro.snapshot = snap_;
    ro.fill_cache = false;
    ro.readahead_size = 256 << 10;  // per file open in the walk: bounded, as the RAM is
    it_.reset(db_->NewIterator(ro));
    it_->SeekToFirst();
  }
  ~RocksDbIterator() override {
    it_.reset();
    db_->ReleaseSnapshot(snap_);
  }
  Result<size_t> Next(size_t max, uint64_t* keys, char* values) override {
    size_t n = 0;
    for (; n < max && it_->Valid(); it_->Next()) {
      const rocksdb::Slice k = it_->key(), v = it_->value();
      if (k.size() != 8 || v.size() != value_bytes_)
        return Status::Corruption("table directory " + dir_ + ": an entry of " + std::to_string(v.size()) +
                                  " bytes, expected " + std::to_string(value_bytes_));
      keys[n] = DecodeKey(k.data());
      std::memcpy(values + n * value_bytes_, v.data(), value_bytes_);
      ++n;
    }
    EMBARK_RETURN_IF_ERROR(ToStatus(it_->status(), dir_, "reading rows for a checkpoint"));
    return n;
  }

 private:
  rocksdb::DB* db_;
  const rocksdb::Snapshot* snap_;
  std::unique_ptr<rocksdb::Iterator> it_;
  size_t value_bytes_;
  std::string dir_;
};

class RocksDbTier : public DiskTier {
 public:
  static Result<std::unique_ptr<DiskTier>> Open(const DiskTierOptions& opt) {
    if (opt.value_bytes == 0) return Status::InvalidArgument("disk tier: value size 0");
    EMBARK_RETURN_IF_ERROR(PrepareDir(opt.dir));
    std::unique_ptr<RocksDbTier> t(new RocksDbTier(opt));
    // Direct I/O first; file systems without O_DIRECT (tmpfs) refuse it.
    rocksdb::Status s = t->OpenDb(true);
    if (!s.ok()) s = t->OpenDb(false);
    EMBARK_RETURN_IF_ERROR(ToStatus(s, opt.dir, "opening"));
    return std::unique_ptr<DiskTier>(std::move(t));
  }

  ~RocksDbTier() override {
    if (db_) {
      (void)db_->Close();
      db_.reset();
    }
  }

  Status MultiGet(const uint64_t* keys, size_t n, char* values, bool* found) override {
    if (n == 0) return Status::OK();
    thread_local std::vector<char> kbuf;
    thread_local std::vector<rocksdb::Slice> ks;
    thread_local std::vector<rocksdb::PinnableSlice> vs;
    thread_local std::vector<rocksdb::Status> st;
    kbuf.resize(n * 8);
    ks.resize(n);
    vs.resize(n);
    st.resize(n);
    for (size_t i = 0; i < n; ++i) {
      EncodeKey(keys[i], kbuf.data() + i * 8);
      ks[i] = rocksdb::Slice(kbuf.data() + i * 8, 8);
    }
    // MultiGet wants sorted keys for its batched lookups; sorting is ours.
    rocksdb::ReadOptions ro;
    // Data blocks are not kept: the rows read go into the row cache above,
    // and the block cache stays for index and filter blocks.
    ro.fill_cache = false;
    rocksdb::SetPerfLevel(rocksdb::PerfLevel::kEnableCount);
    const uint64_t before = rocksdb::get_perf_context()->block_read_byte;
    db_->MultiGet(ro, db_->DefaultColumnFamily(), n, ks.data(), vs.data(), st.data(), false);
    read_ += rocksdb::get_perf_context()->block_read_byte - before;
    for (size_t i = 0; i < n; ++i) {
      if (st[i].IsNotFound()) {
        found[i] = false;
      } else if (!st[i].ok()) {
        for (auto& v : vs) v.Reset();
        return ToStatus(st[i], opt_.dir, "reading rows");
      } else if (vs[i].size() != opt_.value_bytes) {
        for (auto& v : vs) v.Reset();
        return Status::Corruption("table directory " + opt_.dir + ": a row of " + std::to_string(vs[i].size()) +
                                  " bytes, expected " + std::to_string(opt_.value_bytes));
      } else {
        found[i] = true;
        std::memcpy(values + i * opt_.value_bytes, vs[i].data(), opt_.value_bytes);
      }
      vs[i].Reset();
    }
    return Status::OK();
  }

  Status Write(const uint64_t* keys, size_t n, const char* values, const uint64_t* erase, size_t m) override {
    if (n + m == 0) return Status::OK();
    rocksdb::WriteBatch b;
    char k[8];
    for (size_t i = 0; i < n; ++i) {
      EncodeKey(keys[i], k);
      b.Put(rocksdb::Slice(k, 8), rocksdb::Slice(values + i * opt_.value_bytes, opt_.value_bytes));
    }
    for (size_t i = 0; i < m; ++i) {
      EncodeKey(erase[i], k);
      b.Delete(rocksdb::Slice(k, 8));
    }
    rocksdb::WriteOptions wo;
    wo.disableWAL = true;
    return ToStatus(db_->Write(wo, &b), opt_.dir, "writing rows");
  }

  std::unique_ptr<DiskIterator> NewIterator() override {
    return std::make_unique<RocksDbIterator>(db_.get(), opt_.value_bytes, opt_.dir);
  }

  uint64_t disk_bytes() const override { return Prop("rocksdb.live-sst-files-size"); }
  uint64_t memory_bytes() const override {
    return Prop("rocksdb.cur-size-all-mem-tables") + Prop("rocksdb.estimate-table-readers-mem") +
           (cache_ ? cache_->GetUsage() : 0);
  }
  uint64_t bytes_read() const override {
    return read_.load() + stats_->getTickerCount(rocksdb::COMPACT_READ_BYTES);
  }
  uint64_t bytes_written() const override {
    return stats_->getTickerCount(rocksdb::FLUSH_WRITE_BYTES) + stats_->getTickerCount(rocksdb::COMPACT_WRITE_BYTES);
  }

 private:
  explicit RocksDbTier(const DiskTierOptions& opt) : opt_(opt) {}

  uint64_t Prop(const char* name) const {
    uint64_t v = 0;
    return db_ && db_->GetIntProperty(name, &v) ? v : 0;
  }

  rocksdb::Status OpenDb(bool direct) {
    // RAM: two write buffers of a quarter each (at most 64 MiB), the rest a
    // block cache for index and filter blocks. Table readers' own memory
    // is charged to that cache too.
    const size_t mem = std::max<size_t>(opt_.memory_bytes, 1 << 20);
    const size_t wb = std::clamp<size_t>(mem / 4, 256 << 10, 64 << 20);
    const size_t cache = mem - 2 * wb;
    cache_ = rocksdb::NewLRUCache(cache);
    stats_ = rocksdb::CreateDBStatistics();
    stats_->set_stats_level(rocksdb::StatsLevel::kExceptTimers);
    rocksdb::BlockBasedTableOptions tb;
    tb.block_cache = cache_;
    tb.block_size = 4096;
    tb.cache_index_and_filter_blocks = true;
    tb.cache_index_and_filter_blocks_with_high_priority = true;
    tb.pin_l0_filter_and_index_blocks_in_cache = true;
    tb.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
    rocksdb::Options o;
    o.create_if_missing = true;
    o.error_if_exists = false;
    o.compression = rocksdb::kNoCompression;
    o.bottommost_compression = rocksdb::kNoCompression;
    o.write_buffer_size = wb;
    // A bloom filter over each write buffer too: most lookups of new ids
    // would otherwise walk the buffer's skip list to miss.
    o.memtable_whole_key_filtering = true;
    o.memtable_prefix_bloom_size_ratio = 0.02;
    o.max_write_buffer_number = 2;
    // Universal compaction: measured against leveled on the training
    // workload (bench/tiered_bench.sh), it read and wrote 40% fewer bytes
    // and trained up to 20% faster, for a space amplification of up to 2.
    o.compaction_style = rocksdb::kCompactionStyleUniversal;
    o.max_background_jobs = 2;
    o.max_open_files = -1;
    o.statistics = stats_;
    // Reads go through the page cache: on the machine measured, direct
    // reads trained 2.5 times slower (every miss a device round trip).
    o.use_direct_reads = false;
    o.use_direct_io_for_flush_and_compaction = direct;
    o.table_factory.reset(rocksdb::NewBlockBasedTableFactory(tb));
    o.info_log_level = rocksdb::InfoLogLevel::WARN_LEVEL;
    o.keep_log_file_num = 1;
    rocksdb::DB* db = nullptr;
    rocksdb::Status s = rocksdb::DB::Open(o, opt_.dir, &db);
    if (s.ok()) db_.reset(db);
    return s;
  }

  DiskTierOptions opt_;
  std::shared_ptr<rocksdb::Cache> cache_;
  std::shared_ptr<rocksdb::Statistics> stats_;
  std::unique_ptr<rocksdb::DB> db_;
  std::atomic<uint64_t> read_{0};
};

}  // namespace

Result<std::unique_ptr<DiskTier>> OpenRocksDbTier(const DiskTierOptions& opt) { return RocksDbTier::Open(opt); }

}  // namespace embark
