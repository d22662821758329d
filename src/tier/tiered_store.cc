// The tiered row store: a sharded CLOCK cache of rows in RAM over a disk tier.
//
// Consistency. Every key's row is in exactly one of three states: in the
// cache (possibly dirty: newer than the disk's copy), on disk only, or
// nowhere. The invariant that keeps it so: the disk copy of a key is only
// read while the key holds a slot in the cache (a "loading" placeholder, put
// there under the shard's lock), and a dirty row leaves the cache only after
// its write-back has landed (rows being written are pinned). So no thread
// can read a stale disk copy while a newer row is in flight, and two threads
// never bring the same row in twice. A thread that needs a row another one
// is bringing in waits on the shard's condition variable (stall time).
//
// Eviction. CLOCK over each shard's slots: a used row gets its reference bit
// set; the hand clears set bits and evicts the first clean row whose bit is
// clear. Dirty cold rows are left for the background cleaner, which writes
// the rows just ahead of the hand back in batches and marks them clean; only
// when a whole sweep finds nothing clean does a caller write back itself,
// a batch at once, under the shard's lock.
#include "tier/tiered_store.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <thread>
#include <vector>

#include "embedding/admission.h"
#include "embedding/eviction.h"
#include "tier/disk_tier.h"
#include "util/hash.h"

namespace embark {
namespace {

constexpr int kShardBits = 6;
constexpr int kShards = 1 << kShardBits;
// Rows a cleaner pass or a caller's own write-back sends at once.
constexpr size_t kWriteBatch = 256;
// Rows a caller reads from disk at once (its buffers hold this many).
constexpr size_t kLoadBatch = 2048;

enum : uint8_t {
  kLive = 1,      // the slot holds a key
  kRef = 2,       // used since the hand last passed
  kDirty = 4,     // newer than the disk's copy (or not on disk)
  kLoading = 8,   // its row is being read from disk: pinned, not readable yet
  kWriting = 16,  // its row is being written back: pinned
};

using Clock = std::chrono::steady_clock;

struct KeyMeta {
  uint64_t key;
  RowMeta meta;
};

// One shard of the cache: `cap` slots of rows with their keys, metadata and
// flags, and an open-addressing index (linear probing, backward-shift
// deletion) of 8-byte entries: 32 bits of the key's hash and slot + 1.
class Shard {
 public:
  Shard(size_t cap, int width) : cap_(cap), width_(width) {
    rows_.resize(cap * static_cast<size_t>(width));
    km_.resize(cap);
    flags_.assign(cap, 0);
    n_index_ = cap + cap / 4 + 1;
    index_.assign(n_index_, Entry{0, 0});
  }

  std::mutex mu;
  std::condition_variable cv;
  bool wants_clean = false;  // a sweep met dirty cold rows

  size_t cap() const { return cap_; }
  float* Row(size_t e) { return rows_.data() + e * static_cast<size_t>(width_); }
  KeyMeta& At(size_t e) { return km_[e]; }
  uint8_t& Flags(size_t e) { return flags_[e]; }
  size_t loading = 0, writing = 0;

  size_t bytes() const {
    return rows_.capacity() * sizeof(float) + km_.capacity() * sizeof(KeyMeta) + flags_.capacity() +
           index_.capacity() * sizeof(Entry) + free_.capacity() * sizeof(uint32_t);
  }

  // The slot of `key`, or -1.
  int64_t Find(uint64_t key, uint64_t h) const {
    const uint32_t tag = Tag(h);
    for (size_t i = Home(h);; i = Next(i)) {
      const Entry s = index_[i];
      if (s.slot1 == 0) return -1;
      if (s.tag == tag && km_[s.slot1 - 1].key == key) return static_cast<int64_t>(s.slot1) - 1;
    }
  }

  // Makes slot e hold `key` (absent) with `flags`.
  void Insert(uint64_t key, uint64_t h, size_t e, uint8_t flags) {
    size_t i = Home(h);
    while (index_[i].slot1 != 0) i = Next(i);
    index_[i] = Entry{Tag(h), static_cast<uint32_t>(e + 1)};
    km_[e] = KeyMeta{key, RowMeta{}};
    flags_[e] = flags;
    ++live_;
  }

  // Frees slot e (its key leaves the index).
  void Remove(size_t e) {
    const uint64_t h = Mix64(km_[e].key);
    size_t i = Home(h);
    while (index_[i].slot1 != e + 1) i = Next(i);
    for (size_t j = Next(i); index_[j].slot1 != 0; j = Next(j)) {
      const size_t home = Home(Mix64(km_[index_[j].slot1 - 1].key));
      const bool stays = i <= j ? (i < home && home <= j) : (i < home || home <= j);
      if (!stays) {
        index_[i] = index_[j];
        i = j;
      }
    }
    index_[i] = Entry{0, 0};
    flags_[e] = 0;
    free_.push_back(static_cast<uint32_t>(e));
    --live_;
  }

  // A free slot: never used, freed, or a clean cold row evicted by the
  // CLOCK hand; else -1, with up to `max` dirty cold rows in *dirty (the
  // caller writes them back and evicts one).
  int64_t Alloc(std::vector<uint32_t>* dirty, size_t max) {
    if (!free_.empty()) {
      const uint32_t e = free_.back();
      free_.pop_back();
      return e;
    }
    if (used_ < cap_) return static_cast<int64_t>(used_++);
    dirty->clear();
    // One revolution clears every reference bit it passes, so two end with
    // a clean cold row, `max` dirty cold rows, or nothing but pinned rows.
    for (size_t k = 0; k <= 2 * cap_ && (max == 0 || dirty->size() < max); ++k) {
      const size_t e = hand_;
      hand_ = hand_ + 1 == cap_ ? 0 : hand_ + 1;
      const uint8_t f = flags_[e];
      if (!(f & kLive) || (f & (kLoading | kWriting))) continue;
      if (f & kRef) {
        flags_[e] = f & ~kRef;
        continue;
      }
      if (f & kDirty) {
        wants_clean = true;
        if (dirty->size() < max) dirty->push_back(static_cast<uint32_t>(e));
        continue;
      }
      return Take(e);
    }
    return -1;
  }

  // Evicts row e (clean, not pinned) and hands its slot out.
  int64_t Take(size_t e) {
    Remove(e);
    free_.pop_back();
    return static_cast<int64_t>(e);
  }

  void SetHand(size_t e) { hand_ = e % cap_; }
  bool full() const { return used_ == cap_ && free_.empty(); }

  // Up to `max` dirty rows not in use from the `window` slots ahead of the
  // hand (all slots when window >= cap).
  void DirtyAhead(size_t window, size_t max, std::vector<uint32_t>* out) const {
    out->clear();
    const size_t n = std::min(window, cap_);
    for (size_t k = 0, e = hand_; k < n && out->size() < max; ++k, e = e + 1 == cap_ ? 0 : e + 1) {
      const uint8_t f = flags_[e];
      if ((f & (kLive | kDirty)) == (kLive | kDirty) && !(f & (kRef | kLoading | kWriting)))
        out->push_back(static_cast<uint32_t>(e));
    }
  }
  void AllDirty(std::vector<uint32_t>* out) const {
    out->clear();
    for (size_t e = 0; e < used_; ++e) {
      const uint8_t f = flags_[e];
      if ((f & (kLive | kDirty)) == (kLive | kDirty) && !(f & (kLoading | kWriting))) out->push_back(static_cast<uint32_t>(e));
    }
  }

 private:
  struct Entry {
    uint32_t tag;
    uint32_t slot1;  // 0: empty
  };
  static uint32_t Tag(uint64_t h) { return static_cast<uint32_t>(h >> kShardBits); }
  size_t Home(uint64_t h) const { return static_cast<size_t>((static_cast<unsigned __int128>(h) * n_index_) >> 64); }
  size_t Next(size_t i) const { return i + 1 == n_index_ ? 0 : i + 1; }

  size_t cap_;
  int width_;
  std::vector<float> rows_;
  std::vector<KeyMeta> km_;
  std::vector<uint8_t> flags_;
  std::vector<Entry> index_;
  size_t n_index_;
  std::vector<uint32_t> free_;
  size_t used_ = 0, live_ = 0, hand_ = 0;
};

enum class Mode { kGetTrain, kGetRead, kUpdate, kPut };

// A batch of keys grouped by shard: keys[order[j]] for j in [start[s],
// start[s + 1]) are shard s's, in their batch order; hashes[i] is Mix64 of
// keys[i].
struct Grouping {
  std::vector<uint64_t> hashes;
  std::vector<uint32_t> order;
  size_t start[kShards + 1];

  void Group(const uint64_t* keys, size_t n) {
    hashes.resize(n);
    order.resize(n);
    std::fill(start, start + kShards + 1, 0);
    for (size_t i = 0; i < n; ++i) {
      hashes[i] = Mix64(keys[i]);
      ++start[(hashes[i] & (kShards - 1)) + 1];
    }
    for (int s = 0; s < kShards; ++s) start[s + 1] += start[s];
    size_t fill[kShards];
    std::copy(start, start + kShards, fill);
    for (size_t i = 0; i < n; ++i) order[fill[hashes[i] & (kShards - 1)]++] = static_cast<uint32_t>(i);
  }
};

class TieredStore : public RowStore {
 public:
  TieredStore(const TableConfig& cfg, const TierOptions& opt, std::unique_ptr<DiskTier> disk, size_t shard_cap,
              size_t disk_mem)
      : cfg_(cfg), opt_(cfg.opt, cfg.dim), topt_(opt), disk_(std::move(disk)), disk_mem_(disk_mem) {
    width_ = cfg.row_width();
    value_bytes_ = sizeof(RowMeta) + sizeof(float) * static_cast<size_t>(width_);
    for (int i = 0; i < kShards; ++i) shards_.push_back(std::make_unique<Shard>(shard_cap, width_));
    if (!cfg.policy.admits_all()) admission_ = std::make_unique<Admission>(cfg.policy, cfg.seed);
    if (opt.background) {
      cleaner_ = std::thread([this] { CleanerLoop(); });
      loader_ = std::thread([this] { LoaderLoop(); });
    }
  }

  ~TieredStore() override {
    {
      std::lock_guard<std::mutex> lk(bg_mu_);
      stop_ = true;
    }
    bg_cv_.notify_all();
    if (cleaner_.joinable()) cleaner_.join();
    if (loader_.joinable()) loader_.join();
  }

  const TableConfig& config() const override { return cfg_; }

  Status Get(const uint64_t* keys, size_t n, float* out, Access access) override {
    const int d = cfg_.dim;
    const uint32_t step = step_.load(std::memory_order_relaxed);
    if (access == Access::kRead) {
      return Visit(keys, n, Mode::kGetRead, [&](size_t i, float* row, RowMeta*, uint8_t*) {
        if (row) std::memcpy(out + i * d, row, sizeof(float) * d);
        else std::memset(out + i * d, 0, sizeof(float) * d);
      });
    }
    return Visit(keys, n, Mode::kGetTrain, [&](size_t i, float* row, RowMeta* meta, uint8_t* flags) {
      if (!row) {
        std::memset(out + i * d, 0, sizeof(float) * d);
        return;
      }
      std::memcpy(out + i * d, row, sizeof(float) * d);
      Touch(meta, step, false);
      *flags |= kDirty;
    });
  }

  Status Update(const uint64_t* keys, size_t n, const float* grads) override {
    const int d = cfg_.dim;
    const uint32_t step = step_.load(std::memory_order_relaxed);
    return Visit(keys, n, Mode::kUpdate, [&](size_t i, float* row, RowMeta* meta, uint8_t* flags) {
      if (!row) return;
      opt_.Apply(row, grads + i * d);
      Touch(meta, step, true);
      *flags |= kDirty;
    });
  }

  Status Put(const uint64_t* keys, size_t n, const float* rows, const RowMeta* meta) override {
    const uint32_t step = step_.load(std::memory_order_relaxed);
    return Visit(keys, n, Mode::kPut, [&](size_t i, float* row, RowMeta* m, uint8_t* flags) {
      std::memcpy(row, rows + i * width_, sizeof(float) * width_);
      *m = meta ? meta[i] : RowMeta{step, 0};
      if (m->count == UINT32_MAX) m->count = UINT32_MAX - 1;
      *flags |= kDirty;
    });
  }

  Status Read(const uint64_t* keys, size_t n, float* rows, RowMeta* meta, bool* found) override {
    std::vector<uint32_t> miss;
    thread_local Grouping g;
    g.Group(keys, n);
    for (int s = 0; s < kShards; ++s) {
      if (g.start[s] == g.start[s + 1]) continue;
      Shard& sh = *shards_[s];
      std::unique_lock<std::mutex> lk(sh.mu);
      for (size_t j = g.start[s]; j < g.start[s + 1]; ++j) {
        const size_t i = g.order[j];
        const int64_t e = sh.Find(keys[i], g.hashes[i]);
        // A row being loaded is on disk, unchanged, until the load lands.
        if (e < 0 || (sh.Flags(e) & kLoading)) {
          miss.push_back(static_cast<uint32_t>(i));
          continue;
        }
        found[i] = true;
        std::memcpy(rows + i * width_, sh.Row(e), sizeof(float) * width_);
        if (meta) meta[i] = sh.At(e).meta;
      }
    }
    if (miss.empty()) return Status::OK();
    std::vector<uint64_t> mk(miss.size());
    for (size_t j = 0; j < miss.size(); ++j) mk[j] = keys[miss[j]];
    std::vector<char> vals(miss.size() * value_bytes_);
    std::unique_ptr<bool[]> fnd(new bool[miss.size()]);
    EMBARK_RETURN_IF_ERROR(disk_->MultiGet(mk.data(), mk.size(), vals.data(), fnd.get()));
    for (size_t j = 0; j < miss.size(); ++j) {
      const size_t i = miss[j];
      found[i] = fnd[j];
      if (!fnd[j]) {
        std::memset(rows + i * width_, 0, sizeof(float) * width_);
        if (meta) meta[i] = RowMeta{};
        continue;
      }
      const char* v = vals.data() + j * value_bytes_;
      if (meta) std::memcpy(&meta[i], v, sizeof(RowMeta));
      std::memcpy(rows + i * width_, v + sizeof(RowMeta), sizeof(float) * width_);
    }
    return Status::OK();
  }

  Status Erase(const uint64_t* keys, size_t n) override {
    return DropIf(keys, n, [](const RowMeta&) { return true; }, nullptr);
  }

  // Forgets those of keys[0..n) whose metadata, read under the shard's lock
  // (from RAM or disk), satisfies `drop`; counts them in *dropped.
  template <typename Pred>
  Status DropIf(const uint64_t* keys, size_t n, Pred drop, uint64_t* dropped) {
    std::vector<uint64_t> ks;
    std::vector<char> vals;
    Grouping g;
    g.Group(keys, n);
    const size_t* start = g.start;
    const std::vector<uint32_t>& order = g.order;
    for (int s = 0; s < kShards; ++s) {
      if (start[s] == start[s + 1]) continue;
      Shard& sh = *shards_[s];
      std::unique_lock<std::mutex> lk(sh.mu);
      // No load or write-back of these keys may be in flight: wait them out.
      sh.cv.wait(lk, [&] {
        for (size_t j = start[s]; j < start[s + 1]; ++j) {
          const int64_t e = sh.Find(keys[order[j]], g.hashes[order[j]]);
          if (e >= 0 && (sh.Flags(e) & (kLoading | kWriting))) return false;
        }
        return true;
      });
      // Each key's metadata: from RAM, else from disk (under the lock, so
      // no thread brings the key in meanwhile).
      std::vector<uint64_t> probe;
      for (size_t j = start[s]; j < start[s + 1]; ++j)
        if (sh.Find(keys[order[j]], g.hashes[order[j]]) < 0) probe.push_back(keys[order[j]]);
      vals.resize(probe.size() * value_bytes_);
      std::unique_ptr<bool[]> on_disk(new bool[probe.size() + 1]);
      EMBARK_RETURN_IF_ERROR(disk_->MultiGet(probe.data(), probe.size(), vals.data(), on_disk.get()));
      ks.clear();
      for (size_t j = start[s]; j < start[s + 1]; ++j) {
        const uint64_t k = keys[order[j]];
        const int64_t e = sh.Find(k, g.hashes[order[j]]);
        if (e < 0 || !drop(sh.At(e).meta)) continue;
        sh.Remove(e);
        ks.push_back(k);
      }
      for (size_t j = 0; j < probe.size(); ++j) {
        if (!on_disk[j]) continue;
        RowMeta m;
        std::memcpy(&m, vals.data() + j * value_bytes_, sizeof(RowMeta));
        if (drop(m)) ks.push_back(probe[j]);
      }
      // Cached rows may have a disk copy too: delete every dropped key there.
      EMBARK_RETURN_IF_ERROR(disk_->Write(nullptr, 0, nullptr, ks.data(), ks.size()));
      rows_ -= static_cast<int64_t>(ks.size());
      if (dropped) *dropped += ks.size();
      sh.cv.notify_all();
    }
    return Status::OK();
  }

  void Prefetch(const uint64_t* keys, size_t n) override {
    if (!topt_.background || n == 0) return;
    {
      std::lock_guard<std::mutex> lk(bg_mu_);
      // A hint: when loads fall behind, the oldest hints are dropped.
      while (prefetch_q_.size() >= 4) prefetch_q_.pop_front();
      prefetch_q_.emplace_back(keys, keys + n);
    }
    bg_cv_.notify_all();
  }

  void SetStep(uint32_t step) override { step_.store(step, std::memory_order_relaxed); }

  Status SetOptimizer(const SparseOptimizerConfig& o) override { return ReplaceOptimizer(o, &cfg_, &opt_); }

  std::unique_ptr<RowIterator> NewIterator(size_t block_rows) const override;

  Status Evict(uint32_t now) override;

  StoreStats stats() const override {
    StoreStats st;
    st.rows = static_cast<size_t>(std::max<int64_t>(0, rows_.load()));
    for (const auto& s : shards_) {
      std::lock_guard<std::mutex> lk(s->mu);
      st.memory_bytes += s->bytes();
    }
    // The disk tier's share of the budget, reserved whether or not its
    // buffers have filled yet.
    st.memory_bytes += disk_mem_;
    st.disk_bytes = disk_->disk_bytes();
    st.admitted = admitted_.load();
    st.rejected = rejected_.load();
    st.evicted = evicted_.load();
    st.expired = expired_.load();
    if (admission_) st.memory_bytes += admission_->memory_bytes();
    st.hits = hits_.load();
    st.misses = misses_.load();
    st.disk_read_bytes = disk_->bytes_read();
    st.disk_write_bytes = disk_->bytes_written();
    st.stall_seconds = static_cast<double>(stall_ns_.load()) * 1e-9;
    return st;
  }

  // Writes every dirty row back (a checkpoint walks the disk tier).
  Status FlushAll() {
    std::vector<uint32_t> dirty;
    for (auto& sp : shards_) {
      Shard& sh = *sp;
      std::unique_lock<std::mutex> lk(sh.mu);
      sh.cv.wait(lk, [&] { return sh.writing == 0; });
      sh.AllDirty(&dirty);
      for (size_t b = 0; b < dirty.size(); b += 4096)
        EMBARK_RETURN_IF_ERROR(WriteBack(sh, dirty.data() + b, std::min<size_t>(4096, dirty.size() - b)));
    }
    return Status::OK();
  }

 private:
  // Writes rows `slots` of sh back (sh.mu held) and marks them clean.
  Status WriteBack(Shard& sh, const uint32_t* slots, size_t n) {
    if (n == 0) return Status::OK();
    std::vector<uint64_t> ks(n);
    std::vector<char> vals(n * value_bytes_);
    for (size_t j = 0; j < n; ++j) Encode(sh, slots[j], &ks[j], vals.data() + j * value_bytes_);
    EMBARK_RETURN_IF_ERROR(disk_->Write(ks.data(), n, vals.data(), nullptr, 0));
    for (size_t j = 0; j < n; ++j) sh.Flags(slots[j]) &= static_cast<uint8_t>(~kDirty);
    return Status::OK();
  }

  void Encode(Shard& sh, size_t e, uint64_t* key, char* v) {
    *key = sh.At(e).key;
    std::memcpy(v, &sh.At(e).meta, sizeof(RowMeta));
    std::memcpy(v + sizeof(RowMeta), sh.Row(e), sizeof(float) * width_);
  }

  // A slot in sh (sh.mu held), writing dirty cold rows back itself when
  // nothing clean is left; -1 when every row is pinned.
  Result<int64_t> AllocOrWrite(Shard& sh) {
    thread_local std::vector<uint32_t> dirty;
    int64_t e = sh.Alloc(&dirty, kWriteBatch);
    if (e >= 0) return e;
    if (dirty.empty()) return int64_t{-1};
    const auto t0 = Clock::now();
    EMBARK_RETURN_IF_ERROR(WriteBack(sh, dirty.data(), dirty.size()));
    stall_ns_ += std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - t0).count();
    const uint32_t v = dirty[0];
    // The rows just written are clean and cold: the next allocations take
    // them, from the first on.
    sh.SetHand(v + 1);
    return sh.Take(v);
  }

  struct Load {
    uint32_t i;  // index into the caller's keys
    uint32_t e;  // slot holding the placeholder
    uint16_t shard;
  };

  // Brings the rows of `loads` (placeholders, in shard order) in from disk
  // and hands each to fn; creates absent rows when `create`.
  // `mode` kPut creates rows only to overwrite them (not counted as
  // admitted); the prefetcher passes kGetRead and foreground false (its
  // waits on the disk are not a step's).
  template <typename Fn>
  Status FinishLoads(const uint64_t* keys, std::vector<Load>& loads, Mode mode, Fn& fn, bool foreground = true) {
    const bool create = mode != Mode::kGetRead;
    thread_local std::vector<uint64_t> lk_keys;
    thread_local std::vector<char> vals;
    thread_local std::vector<uint8_t> found;
    const size_t m = loads.size();
    lk_keys.resize(m);
    vals.resize(m * value_bytes_);
    found.resize(m);
    for (size_t j = 0; j < m; ++j) lk_keys[j] = keys[loads[j].i];
    const auto t0 = Clock::now();
    Status st = disk_->MultiGet(lk_keys.data(), m, vals.data(), reinterpret_cast<bool*>(found.data()));
    if (foreground) stall_ns_ += std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - t0).count();
    const uint32_t step = step_.load(std::memory_order_relaxed);
    for (size_t b = 0; b < m;) {
      size_t e = b;
      while (e < m && loads[e].shard == loads[b].shard) ++e;
      Shard& sh = *shards_[loads[b].shard];
      {
        std::lock_guard<std::mutex> lk(sh.mu);
        for (size_t j = b; j < e; ++j) {
          const Load& l = loads[j];
          --sh.loading;
          if (!st.ok()) {
            sh.Remove(l.e);
            continue;
          }
          uint8_t& f = sh.Flags(l.e);
          if (found[j]) {
            const char* v = vals.data() + j * value_bytes_;
            std::memcpy(&sh.At(l.e).meta, v, sizeof(RowMeta));
            std::memcpy(sh.Row(l.e), v + sizeof(RowMeta), sizeof(float) * width_);
            f = kLive | kRef;
            fn(l.i, sh.Row(l.e), &sh.At(l.e).meta, &f);
          } else if (create && Admits(keys[l.i], mode, step)) {
            opt_.InitRow(keys[l.i], cfg_.init_scale, cfg_.seed, sh.Row(l.e));
            sh.At(l.e).meta = RowMeta{step, 0};
            f = kLive | kRef | kDirty;
            ++rows_;
            if (mode != Mode::kPut) ++admitted_;
            fn(l.i, sh.Row(l.e), &sh.At(l.e).meta, &f);
          } else {
            sh.Remove(l.e);
            fn(l.i, nullptr, nullptr, nullptr);
          }
        }
      }
      sh.cv.notify_all();
      b = e;
    }
    loads.clear();
    return st;
  }

  // Whether a key with no row gets one: always for a Put; for training, as
  // the policy's Admission says (a read counts a sighting, an update asks
  // what the read of its step was told).
  bool Admits(uint64_t key, Mode mode, uint32_t step) {
    if (mode == Mode::kPut || !admission_) return true;
    if (mode == Mode::kUpdate) return admission_->Admitted(key, step);
    if (admission_->Admit(key, step)) return true;
    ++rejected_;
    return false;
  }

  // Runs fn(i, row, meta, flags) for every keys[i] under its shard's lock,
  // bringing rows in from disk as needed; row is null for a key absent
  // everywhere when the mode creates nothing.
  template <typename Fn>
  Status Visit(const uint64_t* keys, size_t n, Mode mode, Fn&& fn) {
    thread_local std::vector<Load> loads;
    thread_local std::vector<uint32_t> later;
    thread_local Grouping g;
    loads.clear();
    later.clear();
    g.Group(keys, n);
    const size_t* start = g.start;
    const std::vector<uint32_t>& order = g.order;
    const std::vector<uint64_t>& hashes = g.hashes;
    uint64_t hits = 0, misses = 0;
    for (int s = 0; s < kShards; ++s) {
      if (start[s] == start[s + 1]) continue;
      Shard& sh = *shards_[s];
      std::unique_lock<std::mutex> lk(sh.mu);
      for (size_t j = start[s]; j < start[s + 1]; ++j) {
        const uint32_t i = order[j];
        const int64_t e = sh.Find(keys[i], hashes[i]);
        if (e >= 0) {
          uint8_t& f = sh.Flags(e);
          if (f & kLoading) {
            later.push_back(i);
            continue;
          }
          f |= kRef;
          ++hits;
          fn(i, sh.Row(e), &sh.At(e).meta, &f);
          continue;
        }
        ++misses;
        Result<int64_t> slot = AllocOrWrite(sh);
        if (!slot.ok()) {
          lk.unlock();
          Status st = slot.status();
          (void)FinishLoads(keys, loads, mode, fn);
          return st;
        }
        if (*slot < 0 && !loads.empty()) {
          // Our own placeholders fill the shard: land them, then go on.
          lk.unlock();
          EMBARK_RETURN_IF_ERROR(FinishLoads(keys, loads, mode, fn));
          lk.lock();
          --misses;
          --j;
          continue;
        }
        if (*slot < 0) {
          later.push_back(i);
          continue;
        }
        sh.Insert(keys[i], hashes[i], static_cast<size_t>(*slot), kLive | kLoading);
        ++sh.loading;
        loads.push_back(Load{i, static_cast<uint32_t>(*slot), static_cast<uint16_t>(s)});
        if (loads.size() >= kLoadBatch) {
          // Bounded buffers: land this many before placing more.
          lk.unlock();
          EMBARK_RETURN_IF_ERROR(FinishLoads(keys, loads, mode, fn));
          lk.lock();
        }
      }
    }
    hits_ += hits;
    misses_ += misses;
    if (!loads.empty()) EMBARK_RETURN_IF_ERROR(FinishLoads(keys, loads, mode, fn));
    // Keys another thread is bringing in, or with no free slot: one at a
    // time, holding no placeholder of our own while waiting.
    for (uint32_t i : later) EMBARK_RETURN_IF_ERROR(VisitOne(keys, i, mode, fn));
    return Status::OK();
  }

  template <typename Fn>
  Status VisitOne(const uint64_t* keys, uint32_t i, Mode mode, Fn& fn) {
    const uint64_t h = Mix64(keys[i]);
    const int s = static_cast<int>(h & (kShards - 1));
    Shard& sh = *shards_[s];
    std::vector<Load> loads;
    {
      std::unique_lock<std::mutex> lk(sh.mu);
      const auto t0 = Clock::now();
      for (;;) {
        const int64_t e = sh.Find(keys[i], h);
        if (e >= 0 && (sh.Flags(e) & kLoading)) {
          sh.cv.wait(lk);
          continue;
        }
        if (e >= 0) {
          uint8_t& f = sh.Flags(e);
          f |= kRef;
          ++hits_;
          fn(i, sh.Row(e), &sh.At(e).meta, &f);
          stall_ns_ += std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - t0).count();
          return Status::OK();
        }
        EMBARK_ASSIGN_OR_RETURN(int64_t slot, AllocOrWrite(sh));
        if (slot < 0) {
          // Every row of the shard is pinned by other threads' loads.
          sh.cv.wait_for(lk, std::chrono::milliseconds(1));
          continue;
        }
        sh.Insert(keys[i], h, static_cast<size_t>(slot), kLive | kLoading);
        ++sh.loading;
        ++misses_;
        loads.push_back(Load{i, static_cast<uint32_t>(slot), static_cast<uint16_t>(s)});
        stall_ns_ += std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - t0).count();
        break;
      }
    }
    return FinishLoads(keys, loads, mode, fn);
  }

  // Background write-back: keeps the rows just ahead of each shard's hand
  // clean, a batch at a time, writing without holding the shard's lock (the
  // rows are pinned meanwhile).
  void CleanerLoop() {
    std::vector<uint32_t> slots;
    std::vector<uint64_t> ks;
    std::vector<char> vals;
    for (;;) {
      {
        std::unique_lock<std::mutex> lk(bg_mu_);
        bg_cv_.wait_for(lk, std::chrono::milliseconds(2), [&] { return stop_; });
        if (stop_) return;
      }
      for (auto& sp : shards_) {
        Shard& sh = *sp;
        {
          std::lock_guard<std::mutex> lk(sh.mu);
          // Only a full shard evicts; its hand met dirty rows, or will.
          if (!sh.wants_clean && !sh.full()) continue;
          sh.wants_clean = false;
          sh.DirtyAhead(std::max<size_t>(sh.cap() / 8, 64), kWriteBatch, &slots);
          ks.resize(slots.size());
          vals.resize(slots.size() * value_bytes_);
          for (size_t j = 0; j < slots.size(); ++j) {
            Encode(sh, slots[j], &ks[j], vals.data() + j * value_bytes_);
            sh.Flags(slots[j]) = static_cast<uint8_t>((sh.Flags(slots[j]) & ~kDirty) | kWriting);
          }
          sh.writing += slots.size();
        }
        if (slots.empty()) continue;
        Status st = disk_->Write(ks.data(), ks.size(), vals.data(), nullptr, 0);
        {
          std::lock_guard<std::mutex> lk(sh.mu);
          for (uint32_t e : slots) {
            uint8_t& f = sh.Flags(e);
            f = static_cast<uint8_t>(f & ~kWriting);
            if (!st.ok()) f |= kDirty;  // still only in RAM; a caller's own write-back reports the error
          }
          sh.writing -= slots.size();
        }
        sh.cv.notify_all();
      }
    }
  }

  // Background prefetch: brings rows of keys wanted soon in, pinned while
  // in flight; never creates a row, never writes back (a slot needing a
  // write-back is left to the steps).
  void LoaderLoop() {
    std::vector<uint64_t> keys;
    Grouping g;
    std::vector<Load> loads;
    std::vector<uint32_t> none;
    for (;;) {
      {
        std::unique_lock<std::mutex> lk(bg_mu_);
        bg_cv_.wait(lk, [&] { return stop_ || !prefetch_q_.empty(); });
        if (stop_) return;
        keys = std::move(prefetch_q_.front());
        prefetch_q_.pop_front();
      }
      // By shard, so placeholders of one shard are made under one lock (a
      // repeated key finds its own placeholder).
      g.Group(keys.data(), keys.size());
      loads.clear();
      for (int s = 0; s < kShards; ++s) {
        if (g.start[s] == g.start[s + 1]) continue;
        Shard& sh = *shards_[s];
        std::lock_guard<std::mutex> lk(sh.mu);
        for (size_t j = g.start[s]; j < g.start[s + 1]; ++j) {
          const uint32_t i = g.order[j];
          const int64_t at = sh.Find(keys[i], g.hashes[i]);
          if (at >= 0) {
            if (!(sh.Flags(at) & kLoading)) sh.Flags(at) |= kRef;
            continue;
          }
          // Pins at most a quarter of the shard.
          if (sh.loading * 4 >= sh.cap()) break;
          const int64_t slot = sh.Alloc(&none, 0);
          if (slot < 0) break;
          sh.Insert(keys[i], g.hashes[i], static_cast<size_t>(slot), kLive | kLoading);
          ++sh.loading;
          loads.push_back(Load{i, static_cast<uint32_t>(slot), static_cast<uint16_t>(s)});
        }
      }
      if (loads.empty()) continue;
      auto keep = [](size_t, float*, RowMeta*, uint8_t*) {};
      (void)FinishLoads(keys.data(), loads, Mode::kGetRead, keep, false);
    }
  }

  TableConfig cfg_;
  SparseOptimizer opt_;
  TierOptions topt_;
  std::unique_ptr<DiskTier> disk_;
  size_t disk_mem_;
  int width_ = 0;
  size_t value_bytes_ = 0;
  std::vector<std::unique_ptr<Shard>> shards_;
  std::atomic<uint32_t> step_{0};
  std::atomic<int64_t> rows_{0};
  std::unique_ptr<Admission> admission_;  // null when the policy admits every id
  uint32_t last_ttl_scan_ = 0;
  std::atomic<uint64_t> rejected_{0}, evicted_{0}, expired_{0};
  std::atomic<uint64_t> admitted_{0}, hits_{0}, misses_{0};
  std::atomic<int64_t> stall_ns_{0};

  std::mutex bg_mu_;
  std::condition_variable bg_cv_;
  bool stop_ = false;
  std::deque<std::vector<uint64_t>> prefetch_q_;
  std::thread cleaner_, loader_;
};

// A walk of every row's metadata (dirty rows written back first), then
// the rows to drop, re-checked under their shard's lock (a row used since
// the walk stays). A walk reads the whole disk tier, so rounds are spaced:
// expiry walks at most every ttl/2 steps (a row lives at most 1.5 ttl
// idle), and a cap walks only when the table is over it, then drops to 95%
// of it so that the next round has room.
Status TieredStore::Evict(uint32_t now) {
  const RowPolicy& p = cfg_.policy;
  const bool ttl = p.ttl_steps > 0 && now >= last_ttl_scan_ + std::max<uint32_t>(1, p.ttl_steps / 2);
  const uint64_t rows = static_cast<uint64_t>(std::max<int64_t>(0, rows_.load()));
  const bool cap = p.max_rows > 0 && rows > p.max_rows;
  if (!ttl && !cap) return Status::OK();
  EMBARK_RETURN_IF_ERROR(FlushAll());
  std::vector<uint64_t> old, keys(4096);
  std::vector<char> vals(keys.size() * value_bytes_);
  LruCutoff lru;
  std::vector<std::pair<uint64_t, RowMeta>> metas;
  auto it = disk_->NewIterator();
  for (;;) {
    EMBARK_ASSIGN_OR_RETURN(size_t got, it->Next(keys.size(), keys.data(), vals.data()));
    if (got == 0) break;
    for (size_t i = 0; i < got; ++i) {
      RowMeta m;
      std::memcpy(&m, vals.data() + i * value_bytes_, sizeof(RowMeta));
      if (ttl && uint64_t{m.last_step} + p.ttl_steps < now) {
        old.push_back(keys[i]);
      } else if (cap) {
        lru.Add(m);
        metas.emplace_back(keys[i], m);
      }
    }
  }
  it.reset();
  if (ttl) {
    last_ttl_scan_ = now;
    uint64_t dropped = 0;
    const uint32_t ttl_steps = p.ttl_steps;
    EMBARK_RETURN_IF_ERROR(DropIf(old.data(), old.size(), [&](const RowMeta& m) {
      return uint64_t{m.last_step} + ttl_steps < now;
    }, &dropped));
    expired_ += dropped;
  }
  if (cap && metas.size() > p.max_rows) {
    const uint64_t drop = metas.size() - p.max_rows + p.max_rows / 20;
    const uint32_t partial = lru.PartialStep(drop);
    for (const auto& [k, m] : metas)
      if (m.last_step == partial) lru.AddAtStep(m);
    const Cutoff cut = lru.Find(std::min<uint64_t>(drop, metas.size()));
    uint64_t taken = 0;
    std::vector<uint64_t> victims;
    for (const auto& [k, m] : metas)
      if (Drops(cut, m, &taken)) victims.push_back(k);
    metas.clear();
    uint64_t dropped = 0;
    // Re-checked: a row used since the walk (a newer last_step) stays.
    const uint32_t last = cut.step;
    EMBARK_RETURN_IF_ERROR(DropIf(victims.data(), victims.size(), [&](const RowMeta& m) {
      return m.last_step <= last;
    }, &dropped));
    evicted_ += dropped;
  }
  return Status::OK();
}

class TieredIterator : public RowIterator {
 public:
  TieredIterator(std::unique_ptr<DiskIterator> it, size_t block, int width, size_t value_bytes)
      : it_(std::move(it)), block_(std::max<size_t>(1, block)), width_(width), value_bytes_(value_bytes) {}
  Result<bool> Next(RowBatch* out) override {
    out->clear();
    if (!error_.ok()) return error_;
    keys_.resize(block_);
    vals_.resize(block_ * value_bytes_);
    EMBARK_ASSIGN_OR_RETURN(size_t n, it_->Next(block_, keys_.data(), vals_.data()));
    out->keys.assign(keys_.begin(), keys_.begin() + n);
    out->meta.resize(n);
    out->rows.resize(n * width_);
    for (size_t i = 0; i < n; ++i) {
      const char* v = vals_.data() + i * value_bytes_;
      std::memcpy(&out->meta[i], v, sizeof(RowMeta));
      std::memcpy(out->rows.data() + i * width_, v + sizeof(RowMeta), sizeof(float) * width_);
    }
    return n > 0;
  }
  Status error_;

 private:
  std::unique_ptr<DiskIterator> it_;
  size_t block_;
  int width_;
  size_t value_bytes_;
  std::vector<uint64_t> keys_;
  std::vector<char> vals_;
};

std::unique_ptr<RowIterator> TieredStore::NewIterator(size_t block_rows) const {
  auto* self = const_cast<TieredStore*>(this);
  Status st = self->FlushAll();
  auto it = std::make_unique<TieredIterator>(disk_->NewIterator(), block_rows, width_, value_bytes_);
  it->error_ = st;
  return it;
}

}  // namespace

Result<std::unique_ptr<RowStore>> NewTieredStore(const TableConfig& cfg, const TierOptions& opt) {
  if (opt.dir.empty()) return Status::InvalidArgument("table '" + cfg.name + "': a tiered store needs a directory");
  const size_t width = static_cast<size_t>(cfg.row_width());
  const size_t row_bytes = width * sizeof(float) + kTierBytesPerCachedRow;
  // The disk tier's share: a quarter of the budget (measured better than an
  // eighth), between 1 and 256 MiB.
  const size_t disk_mem = std::clamp<size_t>(opt.memory_budget / 4, 1 << 20, 256 << 20);
  size_t rows = opt.cache_rows;
  if (rows == 0) {
    if (opt.memory_budget < disk_mem + kShards * 1024 + kShards * 4 * row_bytes)
      return Status::InvalidArgument("table '" + cfg.name + "': a memory budget of " +
                                     std::to_string(opt.memory_budget) + " bytes leaves no room for a cache");
    // Less a margin for the shards' fixed parts.
    rows = (opt.memory_budget - disk_mem - kShards * 1024) / row_bytes;
  }
  const size_t shard_cap = std::max<size_t>(1, rows / kShards);
  DiskTierOptions d;
  d.dir = opt.dir;
  d.value_bytes = sizeof(RowMeta) + width * sizeof(float);
  d.memory_bytes = disk_mem;
  EMBARK_ASSIGN_OR_RETURN(auto disk, OpenRocksDbTier(d));
  return std::unique_ptr<RowStore>(std::make_unique<TieredStore>(cfg, opt, std::move(disk), shard_cap, disk_mem));
}

}  // namespace embark
