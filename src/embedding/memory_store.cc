// The in-memory row store.
//
// Consistency: keys are spread over 64 shards by hash; each shard has its own
// mutex, open-addressing index and row arena. Get copies a row and Update
// applies the optimizer to it while holding the shard's lock, so each row is
// read and written atomically (never torn), while different threads' updates
// to the same row interleave in arrival order: asynchronous, Hogwild-style at
// row granularity. Row memory lives in fixed blocks that never move, so the
// index can grow without copying rows.
//
// Speed: a batch of keys is grouped by shard (keeping their order within a
// shard, so rows are created in the same order as one by one), each shard is
// locked once per batch, and the index slot, key and row of keys a few places
// ahead are prefetched, so the dependent loads of many keys overlap instead of
// each paying a full memory latency.
#include <sys/mman.h>

#include <algorithm>
#include <cstdlib>
#include <new>
#include <utility>
#include <cstring>
#include <atomic>
#include <mutex>
#include <vector>

#include "embedding/admission.h"
#include "embedding/eviction.h"
#include "embedding/row_codec.h"
#include "embedding/row_store.h"
#include "util/hash.h"

namespace embark {
namespace {

constexpr int kShardBits = 6;
constexpr int kShards = 1 << kShardBits;
// Rows live in blocks of kBlockRows (so a table holds at most kBlockRows - 1
// unused rows per shard), carved out of 2 MiB arenas: a shard's first arena
// uses ordinary pages (a small table stays small), later ones huge pages.
constexpr size_t kBlockRows = 1024;
constexpr size_t kHugePage = size_t{2} << 20;

// Arenas and large indexes: 2 MiB aligned (so a row block is 64-byte aligned:
// a row of 16 floats is one cache line, one of 32 floats two) and, when
// `huge`, advised for transparent huge pages, so random row accesses in a
// large table do not each miss the TLB.
struct FreeDeleter {
  void operator()(void* p) const { std::free(p); }
};
using Block = std::unique_ptr<void, FreeDeleter>;

Block AllocBlock(size_t bytes, bool huge) {
  const size_t align = bytes >= kHugePage ? kHugePage : 64;
  bytes = (bytes + align - 1) / align * align;
  void* p = std::aligned_alloc(align, bytes);
  if (p == nullptr) throw std::bad_alloc();
#ifdef MADV_HUGEPAGE
  if (huge && align == kHugePage) madvise(p, bytes, MADV_HUGEPAGE);
#endif
  return Block(p);
}

// A row's key and metadata, side by side: the key is read to confirm a probe,
// so the metadata written by a training access is in a line already loaded.
struct KeyMeta {
  uint64_t key;
  RowMeta meta;
};
// RowMeta::count of a row number on the free list (erased, not reused yet).
constexpr uint32_t kFreeRow = UINT32_MAX;

// One shard: an open-addressing index of 8-byte slots (32 bits of the key's
// hash as a tag, and the row number + 1), and rows with their keys and
// metadata in blocks that never move. A probe compares tags inside the index
// and touches a stored key only on a tag match, so a lookup costs one miss
// for the slot and one for the row, both prefetchable. Erased rows go on a
// free list and are reused by the next insertions; the index closes the gap
// by backward shifting (linear probing needs no tombstones).
class Shard {
 public:
  explicit Shard(size_t row_bytes) : row_bytes_(row_bytes) {}

  // The row number of `key` + 1, or 0 when absent (created when `create`).
  uint32_t Find(uint64_t key, uint64_t h, bool create, bool* created) {
    if (created) *created = false;
    if (slots_.empty()) {
      if (!create) return 0;
      Rehash(16);
    }
    const uint32_t tag = Tag(h);
    const size_t mask = slots_.size() - 1;
    for (size_t i = Home(h, mask);; i = (i + 1) & mask) {
      const Slot s = slots_[i];
      if (s.row1 == 0) {
        if (!create) return 0;
        if ((live_ + 1) * 4 > slots_.size() * 3) {  // keep load under 3/4
          Rehash(slots_.size() * 2);
          return Find(key, h, create, created);
        }
        const uint32_t row1 = NewRow();
        slots_[i] = Slot{tag, row1};
        At(row1 - 1) = KeyMeta{key, RowMeta{}};
        ++live_;
        if (created) *created = true;
        return row1;
      }
      if (s.tag == tag && At(s.row1 - 1).key == key) return s.row1;
    }
  }

  // Batched access in two passes over a group of keys whose index slots
  // were prefetched beforehand: Probe reads a key's slots (tags only) and
  // returns the candidate row + 1 (0 = absent), prefetching its key and row;
  // Resolve then confirms the key and finds or creates it the slow way when
  // the candidate was wrong or absent.
  void PrefetchSlot(uint64_t h) const {
    if (!slots_.empty()) __builtin_prefetch(&slots_[Home(h, slots_.size() - 1)]);
  }
  uint32_t Probe(uint64_t h) const {
    if (slots_.empty()) return 0;
    const size_t mask = slots_.size() - 1;
    const uint32_t tag = Tag(h);
    for (size_t i = Home(h, mask);; i = (i + 1) & mask) {
      const Slot s = slots_[i];
      if (s.row1 == 0) return 0;
      if (s.tag == tag) {
        __builtin_prefetch(&At(s.row1 - 1));
        // Every line the row touches: a row of 16 floats is one line, of
        // 32 two, of Adam's 49 four or five.
        const uintptr_t first = reinterpret_cast<uintptr_t>(Row(s.row1 - 1));
        const uintptr_t last = first + RowBytes() - 1;
        for (uintptr_t a = first & ~uintptr_t{63}; a <= last; a += 64) __builtin_prefetch(reinterpret_cast<const void*>(a));
        return s.row1;
      }
    }
  }
  uint32_t Resolve(uint64_t key, uint64_t h, uint32_t cand, bool create, bool* created) {
    if (cand != 0 && At(cand - 1).key == key) {
      *created = false;
      return cand;
    }
    return Find(key, h, create, created);
  }

  // Removes `key` if held; true when it was.
  bool Erase(uint64_t key, uint64_t h) {
    if (slots_.empty()) return false;
    const size_t mask = slots_.size() - 1;
    size_t i = Home(h, mask);
    for (;; i = (i + 1) & mask) {
      const Slot s = slots_[i];
      if (s.row1 == 0) return false;
      if (s.tag == Tag(h) && At(s.row1 - 1).key == key) break;
    }
    const uint32_t row = slots_[i].row1 - 1;
    // Backward shift: move later entries of the probe run into the hole
    // unless their home lies cyclically in (hole, entry].
    for (size_t j = (i + 1) & mask; slots_[j].row1 != 0; j = (j + 1) & mask) {
      const size_t home = Home(Mix64(At(slots_[j].row1 - 1).key), mask);
      const bool stays = i <= j ? (i < home && home <= j) : (i < home || home <= j);
      if (!stays) {
        slots_[i] = slots_[j];
        i = j;
      }
    }
    slots_[i] = Slot{0, 0};
    At(row).meta = RowMeta{0, kFreeRow};
    free_.push_back(row);
    --live_;
    return true;
  }

  float* Row(size_t r) { return const_cast<float*>(std::as_const(*this).Row(r)); }
  const float* Row(size_t r) const {
    return reinterpret_cast<const float*>(reinterpret_cast<const char*>(blocks_[r / kBlockRows]) +
                                          (r % kBlockRows) * row_bytes_);
  }
  KeyMeta& At(size_t r) const { return key_blocks_[r / kBlockRows][r % kBlockRows]; }
  bool Live(size_t r) const { return At(r).meta.count != kFreeRow; }
  size_t used() const { return used_; }  // row numbers handed out (live or free)
  size_t live() const { return live_; }
  // Bytes held: index, keys with metadata, and row blocks.
  size_t bytes() const {
    return slots_.size() * sizeof(Slot) + blocks_.size() * kBlockRows * (RowBytes() + sizeof(KeyMeta)) +
           free_.capacity() * sizeof(uint32_t);
  }
  mutable std::mutex mu;

 private:
  struct Slot {
    uint32_t tag;
    uint32_t row1;  // 0 = empty, else row + 1
  };
  static uint32_t Tag(uint64_t h) { return static_cast<uint32_t>(h >> 32); }
  static size_t Home(uint64_t h, size_t mask) { return (h >> kShardBits) & mask; }
  size_t RowBytes() const { return row_bytes_; }

  // A row number for a new key: a freed one, else the next (allocating a
  // block when a block boundary is reached).
  uint32_t NewRow() {
    if (!free_.empty()) {
      const uint32_t r = free_.back();
      free_.pop_back();
      return r + 1;
    }
    if (used_ % kBlockRows == 0) NewBlock();
    return static_cast<uint32_t>(++used_);
  }

  // Room for kBlockRows more rows: a row block from the current arena (a new
  // one when it is full) and a key block.
  void NewBlock() {
    const size_t bytes = kBlockRows * RowBytes();
    if (arenas_.empty() || arena_used_ + bytes > arena_size_) {
      arena_size_ = std::max(kHugePage, (bytes + kHugePage - 1) / kHugePage * kHugePage);
      arenas_.push_back(AllocBlock(arena_size_, !arenas_.empty()));
      arena_used_ = 0;
    }
    blocks_.push_back(reinterpret_cast<float*>(static_cast<char*>(arenas_.back().get()) + arena_used_));
    arena_used_ += bytes;
    key_blocks_.push_back(std::make_unique<KeyMeta[]>(kBlockRows));
  }

  // The index: a power-of-two array of slots, zeroed (empty) at creation.
  class SlotArray {
   public:
    SlotArray() = default;
    explicit SlotArray(size_t n) : mem_(AllocBlock(n * sizeof(Slot), true)), n_(n) {
      std::memset(mem_.get(), 0, n * sizeof(Slot));
    }
    bool empty() const { return n_ == 0; }
    size_t size() const { return n_; }
    Slot& operator[](size_t i) { return static_cast<Slot*>(mem_.get())[i]; }
    const Slot& operator[](size_t i) const { return static_cast<const Slot*>(mem_.get())[i]; }
    void swap(SlotArray& o) {
      std::swap(mem_, o.mem_);
      std::swap(n_, o.n_);
    }

   private:
    Block mem_;
    size_t n_ = 0;
  };

  void Rehash(size_t n) {
    SlotArray slots(n);
    const size_t mask = n - 1;
    for (size_t r = 0; r < used_; ++r) {
      if (!Live(r)) continue;
      const uint64_t h = Mix64(At(r).key);
      size_t i = Home(h, mask);
      while (slots[i].row1 != 0) i = (i + 1) & mask;
      slots[i] = Slot{Tag(h), static_cast<uint32_t>(r + 1)};
    }
    slots_.swap(slots);
  }

  size_t row_bytes_;  // RowCodec::bytes()
  size_t used_ = 0, live_ = 0;
  SlotArray slots_;
  std::vector<Block> arenas_;
  size_t arena_size_ = 0, arena_used_ = 0;
  std::vector<float*> blocks_;  // kBlockRows rows each, inside arenas_
  std::vector<std::unique_ptr<KeyMeta[]>> key_blocks_;
  std::vector<uint32_t> free_;  // erased row numbers
};

// Whether ForEachRowOf asks a RowPolicy's Admission before creating a row:
// kAll creates every missing row; kRead counts a training read's sighting
// (Admit), kUpdate asks without counting (Admitted).
enum class Ask { kAll, kRead, kUpdate };

class MemoryStore : public RowStore {
 public:
  explicit MemoryStore(const TableConfig& cfg)
      : cfg_(cfg), opt_(cfg.opt, cfg.dim), codec_(cfg.dim, opt_.state_size(), cfg.precision) {
    for (int i = 0; i < kShards; ++i) shards_.emplace_back(std::make_unique<Shard>(codec_.bytes()));
    if (!cfg.policy.admits_all()) admission_ = std::make_unique<Admission>(cfg.policy, cfg.seed);
  }
  const TableConfig& config() const override { return cfg_; }

  Status Get(const uint64_t* keys, size_t n, float* out, Access access) override {
    const int d = cfg_.dim;
    const bool train = access == Access::kTrain;
    const uint32_t step = step_.load(std::memory_order_relaxed);
    uint64_t refused = 0;
    const size_t made = ForEachRowOf(keys, n, train, [&](size_t i, Shard& sh, uint32_t row1) {
      if (row1 == 0) {
        std::memset(out + i * d, 0, sizeof(float) * d);
        refused += train;
        return;
      }
      if (codec_.packed()) codec_.DecodeWeights(sh.Row(row1 - 1), out + i * d);
      else std::memcpy(out + i * d, sh.Row(row1 - 1), sizeof(float) * d);
      if (train) Touch(&sh.At(row1 - 1).meta, step, false);
    }, admission_ ? Ask::kRead : Ask::kAll);
    if (made) admitted_.fetch_add(made, std::memory_order_relaxed);
    if (refused) rejected_.fetch_add(refused, std::memory_order_relaxed);
    return Status::OK();
  }

  Status Update(const uint64_t* keys, size_t n, const float* grads) override {
    const int d = cfg_.dim;
    const uint32_t step = step_.load(std::memory_order_relaxed);
    if (codec_.int8())
      return Status::InvalidArgument("table '" + cfg_.name +
                                     "' holds int8 rows, a serving copy (embark export): it cannot be trained");
    if (codec_.half()) {
      // Decode to fp32, apply, encode back rounding stochastically.
      thread_local std::vector<float> scratch;
      scratch.resize(codec_.width());
      const size_t made = ForEachRowOf(keys, n, true, [&](size_t i, Shard& sh, uint32_t row1) {
        if (row1 == 0) return;  // not admitted: the gradient is dropped
        float* row = sh.Row(row1 - 1);
        RowMeta& m = sh.At(row1 - 1).meta;
        codec_.Decode(row, scratch.data());
        opt_.Apply(scratch.data(), grads + i * d);
        codec_.EncodeStochastic(scratch.data(), RoundingSeed(keys[i], step, m.count), row);
        Touch(&m, step, true);
      }, admission_ ? Ask::kUpdate : Ask::kAll);
      if (made) admitted_.fetch_add(made, std::memory_order_relaxed);
      return Status::OK();
    }
    const size_t made = ForEachRowOf(keys, n, true, [&](size_t i, Shard& sh, uint32_t row1) {
      if (row1 == 0) return;  // not admitted: the gradient is dropped
      opt_.Apply(sh.Row(row1 - 1), grads + i * d);
      Touch(&sh.At(row1 - 1).meta, step, true);
    }, admission_ ? Ask::kUpdate : Ask::kAll);
    if (made) admitted_.fetch_add(made, std::memory_order_relaxed);
    return Status::OK();
  }

  Status Put(const uint64_t* keys, size_t n, const float* rows, const RowMeta* meta) override {
    const size_t w = row_width();
    const uint32_t step = step_.load(std::memory_order_relaxed);
    ForEachRowOf(keys, n, true, [&](size_t i, Shard& sh, uint32_t row1) {
      if (codec_.packed()) codec_.Encode(rows + i * w, sh.Row(row1 - 1));
      else std::memcpy(sh.Row(row1 - 1), rows + i * w, sizeof(float) * w);
      RowMeta m = meta ? meta[i] : RowMeta{step, 0};
      if (m.count == kFreeRow) m.count = kFreeRow - 1;
      sh.At(row1 - 1).meta = m;
    });
    return Status::OK();
  }

  Status Read(const uint64_t* keys, size_t n, float* rows, RowMeta* meta, bool* found) override {
    const size_t w = row_width();
    ForEachRowOf(keys, n, false, [&](size_t i, Shard& sh, uint32_t row1) {
      found[i] = row1 != 0;
      if (row1 == 0) {
        std::memset(rows + i * w, 0, sizeof(float) * w);
        if (meta) meta[i] = RowMeta{};
        return;
      }
      if (codec_.packed()) codec_.Decode(sh.Row(row1 - 1), rows + i * w);
      else std::memcpy(rows + i * w, sh.Row(row1 - 1), sizeof(float) * w);
      if (meta) meta[i] = sh.At(row1 - 1).meta;
    });
    return Status::OK();
  }

  Status Erase(const uint64_t* keys, size_t n) override {
    for (size_t i = 0; i < n; ++i) {
      const uint64_t h = Mix64(keys[i]);
      Shard& s = *shards_[h & (kShards - 1)];
      std::lock_guard<std::mutex> lk(s.mu);
      s.Erase(keys[i], h);
    }
    return Status::OK();
  }

  void SetStep(uint32_t step) override { step_.store(step, std::memory_order_relaxed); }

  Status SetOptimizer(const SparseOptimizerConfig& opt) override { return ReplaceOptimizer(opt, &cfg_, &opt_); }

  std::unique_ptr<RowIterator> NewIterator(size_t block_rows) const override;

  Status Evict(uint32_t now) override;

  StoreStats stats() const override {
    StoreStats st;
    for (auto& s : shards_) {
      std::lock_guard<std::mutex> lk(s->mu);
      st.rows += s->live();
      st.memory_bytes += s->bytes();
    }
    if (admission_) st.memory_bytes += admission_->memory_bytes();
    st.admitted = admitted_.load(std::memory_order_relaxed);
    st.rejected = rejected_.load(std::memory_order_relaxed);
    st.evicted = evicted_.load(std::memory_order_relaxed);
    st.expired = expired_.load(std::memory_order_relaxed);
    return st;
  }

  // Copies up to `max` live rows of shard s from row number *r on into out;
  // advances *r. Holds the shard's lock only while copying.
  void CopyOut(int s, size_t* r, size_t max, RowBatch* out) const {
    const Shard& sh = *shards_[s];
    const size_t w = row_width();
    std::lock_guard<std::mutex> lk(sh.mu);
    for (; *r < sh.used() && out->size() < max; ++*r) {
      if (!sh.Live(*r)) continue;
      const KeyMeta& km = sh.At(*r);
      out->keys.push_back(km.key);
      out->meta.push_back(km.meta);
      const float* row = sh.Row(*r);
      if (codec_.packed()) {
        out->rows.resize(out->rows.size() + w);
        codec_.Decode(row, out->rows.data() + out->rows.size() - w);
      } else {
        out->rows.insert(out->rows.end(), row, row + w);
      }
    }
  }

 private:
  // Runs fn(i, shard, row + 1) for every keys[i], shard by shard with one
  // lock per shard; a missing row is created when `create` (and, unless
  // `ask` is kAll, the Admission admits it), else fn gets 0. Returns the
  // number of rows created.
  template <typename Fn>
  size_t ForEachRowOf(const uint64_t* keys, size_t n, bool create, Fn&& fn, Ask ask = Ask::kAll) {
    thread_local std::vector<uint64_t> hashes;
    thread_local std::vector<uint32_t> order;
    hashes.resize(n);
    order.resize(n);
    size_t start[kShards + 1] = {};
    for (size_t i = 0; i < n; ++i) {
      hashes[i] = Mix64(keys[i]);
      ++start[(hashes[i] & (kShards - 1)) + 1];
    }
    for (int s = 0; s < kShards; ++s) start[s + 1] += start[s];
    size_t fill[kShards];
    std::memcpy(fill, start, sizeof(fill));
    for (size_t i = 0; i < n; ++i) order[fill[hashes[i] & (kShards - 1)]++] = static_cast<uint32_t>(i);
    // Groups of kGroup keys: the index slots of the next group are
    // prefetched while this group is probed (which prefetches its keys and
    // rows) and then resolved, so many independent cache misses overlap.
    constexpr size_t kGroup = 32;
    uint32_t cand[kGroup];
    size_t made = 0;
    const bool asks = create && ask != Ask::kAll;
    const uint32_t step = asks ? step_.load(std::memory_order_relaxed) : 0;
    for (int s = 0; s < kShards; ++s) {
      const size_t b = start[s], e = start[s + 1];
      if (b == e) continue;
      Shard& sh = *shards_[s];
      std::lock_guard<std::mutex> lk(sh.mu);
      for (size_t j = b; j < std::min(e, b + kGroup); ++j) sh.PrefetchSlot(hashes[order[j]]);
      for (size_t g = b; g < e; g += kGroup) {
        const size_t ge = std::min(e, g + kGroup);
        for (size_t j = ge; j < std::min(e, ge + kGroup); ++j) sh.PrefetchSlot(hashes[order[j]]);
        for (size_t j = g; j < ge; ++j) cand[j - g] = sh.Probe(hashes[order[j]]);
        for (size_t j = g; j < ge; ++j) {
          const size_t i = order[j];
          bool created = false;
          uint32_t row1 = sh.Resolve(keys[i], hashes[i], cand[j - g], create && !asks, &created);
          if (row1 == 0 && asks &&
              (ask == Ask::kRead ? admission_->Admit(keys[i], step) : admission_->Admitted(keys[i], step)))
            row1 = sh.Find(keys[i], hashes[i], true, &created);
          made += created;
          if (created) InitRow(keys[i], sh.Row(row1 - 1));
          fn(i, sh, row1);
        }
      }
    }
    return made;
  }

  // A new row of `key` (InitRow's, rounded to nearest in an fp16 row).
  void InitRow(uint64_t key, float* row) const {
    if (!codec_.packed()) return opt_.InitRow(key, cfg_.init_scale, cfg_.seed, row);
    thread_local std::vector<float> init;
    init.resize(codec_.width());
    opt_.InitRow(key, cfg_.init_scale, cfg_.seed, init.data());
    codec_.Encode(init.data(), row);
  }

  TableConfig cfg_;
  SparseOptimizer opt_;
  RowCodec codec_;
  std::atomic<uint32_t> step_{0};
  std::vector<std::unique_ptr<Shard>> shards_;
  std::unique_ptr<Admission> admission_;  // null when the policy admits every id
  std::atomic<uint64_t> admitted_{0}, rejected_{0}, evicted_{0}, expired_{0};
};

// Two kinds of drop, each a walk over the shards holding one shard's lock at
// a time: first the rows idle past the TTL; then, over the cap, an LRU
// cutoff computed from every row's metadata (one walk, and one more over the
// rows at the cutoff step when they are only partly dropped) and a walk
// that drops the rows under it. Rows that training touches between the
// walks stay (their last_step has moved on), so with training running the
// table may end a little over the cap until the next call.
Status MemoryStore::Evict(uint32_t now) {
  const RowPolicy& p = cfg_.policy;
  if (p.ttl_steps > 0) {
    uint64_t dropped = 0;
    for (auto& s : shards_) {
      std::lock_guard<std::mutex> lk(s->mu);
      for (size_t r = 0; r < s->used(); ++r) {
        if (!s->Live(r)) continue;
        const KeyMeta km = s->At(r);
        if (uint64_t{km.meta.last_step} + p.ttl_steps < now) dropped += s->Erase(km.key, Mix64(km.key));
      }
    }
    expired_.fetch_add(dropped, std::memory_order_relaxed);
  }
  if (p.max_rows == 0) return Status::OK();
  LruCutoff lru;
  uint64_t rows = 0;
  for (auto& s : shards_) {
    std::lock_guard<std::mutex> lk(s->mu);
    for (size_t r = 0; r < s->used(); ++r)
      if (s->Live(r)) {
        lru.Add(s->At(r).meta);
        ++rows;
      }
  }
  if (rows <= p.max_rows) return Status::OK();
  const uint64_t drop = rows - p.max_rows;
  const uint32_t partial = lru.PartialStep(drop);
  for (auto& s : shards_) {
    std::lock_guard<std::mutex> lk(s->mu);
    for (size_t r = 0; r < s->used(); ++r)
      if (s->Live(r) && s->At(r).meta.last_step == partial) lru.AddAtStep(s->At(r).meta);
  }
  const Cutoff cut = lru.Find(drop);
  uint64_t taken = 0, dropped = 0;
  for (auto& s : shards_) {
    std::lock_guard<std::mutex> lk(s->mu);
    for (size_t r = 0; r < s->used() && dropped < drop; ++r) {
      if (!s->Live(r)) continue;
      const KeyMeta km = s->At(r);
      if (Drops(cut, km.meta, &taken)) dropped += s->Erase(km.key, Mix64(km.key));
    }
  }
  evicted_.fetch_add(dropped, std::memory_order_relaxed);
  return Status::OK();
}

// Walks the shards in order, copying a block of rows out under the shard's
// lock and handing it over after releasing it.
class MemoryIterator : public RowIterator {
 public:
  MemoryIterator(const MemoryStore* store, size_t block) : store_(store), block_(std::max<size_t>(1, block)) {}
  Result<bool> Next(RowBatch* out) override {
    out->clear();
    while (shard_ < kShards && out->size() < block_) {
      store_->CopyOut(shard_, &row_, block_, out);
      if (out->size() < block_) {
        ++shard_;
        row_ = 0;
      }
    }
    return out->size() > 0;
  }

 private:
  const MemoryStore* store_;
  size_t block_;
  int shard_ = 0;
  size_t row_ = 0;
};

std::unique_ptr<RowIterator> MemoryStore::NewIterator(size_t block_rows) const {
  return std::make_unique<MemoryIterator>(this, block_rows);
}

}  // namespace

void SparseOptimizer::InitRow(uint64_t key, float init_scale, uint64_t seed, float* row) const {
  uint64_t x = Mix64(key ^ Mix64(seed));
  for (int j = 0; j < dim_; ++j) {
    x = Mix64(x);
    row[j] = init_scale * (2.0f * UnitFloat(x) - 1.0f);
  }
  InitSparseState(cfg_, dim_, row + dim_);
}

int OwnerOf(uint64_t key, int ranks) {
  if (ranks <= 1) return 0;
  return static_cast<int>((Mix64(key ^ 0x6A09E667F3BCC909ULL) >> 33) % static_cast<uint64_t>(ranks));
}

std::unique_ptr<RowStore> NewMemoryStore(const TableConfig& cfg) { return std::make_unique<MemoryStore>(cfg); }

}  // namespace embark
