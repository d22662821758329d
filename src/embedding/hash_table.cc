// The in-memory embedding table.
//
// Consistency: keys are spread over 64 shards by hash; each shard has its own
// mutex, open-addressing index and row arena. Lookup copies a row and Update
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
#include <mutex>
#include <vector>

#include "embedding/table.h"
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

// One shard: an open-addressing index of 8-byte slots (32 bits of the key's
// hash as a tag, and the row number + 1), and rows with their keys in blocks
// that never move. A probe compares tags inside the index and
// touches a stored key only on a tag match, so a lookup costs one miss for
// the slot and one for the row, both prefetchable.
class Shard {
 public:
  explicit Shard(int width) : width_(width) {}

  // Returns the row of `key`, or nullptr when absent and !create.
  float* Find(uint64_t key, uint64_t h, bool create, bool* created) {
    if (created) *created = false;
    if (slots_.empty()) {
      if (!create) return nullptr;
      Rehash(16);
    }
    const uint32_t tag = Tag(h);
    size_t mask = slots_.size() - 1;
    for (size_t i = (h >> kShardBits) & mask;; i = (i + 1) & mask) {
      const Slot s = slots_[i];
      if (s.row1 == 0) {
        if (!create) return nullptr;
        if ((size_ + 1) * 4 > slots_.size() * 3) {  // keep load under 3/4
          Rehash(slots_.size() * 2);
          return Find(key, h, create, created);
        }
        const size_t row = size_++;
        if (row % kBlockRows == 0) {
          NewBlock();
        }
        slots_[i] = Slot{tag, static_cast<uint32_t>(row + 1)};
        KeyRef(row) = key;
        if (created) *created = true;
        return Row(row);
      }
      if (s.tag == tag && KeyRef(s.row1 - 1) == key) return Row(s.row1 - 1);
    }
  }

  // Batched access in two passes over a group of keys whose index slots
  // were prefetched beforehand: Probe reads a key's slots (tags only) and
  // returns the candidate row + 1 (0 = absent), prefetching its key and row;
  // Resolve then confirms the key and finds or creates it the slow way when
  // the candidate was wrong or absent.
  void PrefetchSlot(uint64_t h) const {
    if (!slots_.empty()) __builtin_prefetch(&slots_[(h >> kShardBits) & (slots_.size() - 1)]);
  }
  uint32_t Probe(uint64_t h) const {
    if (slots_.empty()) return 0;
    const size_t mask = slots_.size() - 1;
    const uint32_t tag = Tag(h);
    for (size_t i = (h >> kShardBits) & mask;; i = (i + 1) & mask) {
      const Slot s = slots_[i];
      if (s.row1 == 0) return 0;
      if (s.tag == tag) {
        __builtin_prefetch(&KeyRef(s.row1 - 1));
        const float* row = Row(s.row1 - 1);
        __builtin_prefetch(row);
        if (width_ > 16) __builtin_prefetch(row + 16);
        if (width_ > 32) __builtin_prefetch(row + width_ - 1);
        return s.row1;
      }
    }
  }
  float* Resolve(uint64_t key, uint64_t h, uint32_t cand, bool create, bool* created) {
    if (cand != 0 && KeyRef(cand - 1) == key) {
      *created = false;
      return Row(cand - 1);
    }
    return Find(key, h, create, created);
  }

  float* Row(size_t r) { return const_cast<float*>(std::as_const(*this).Row(r)); }
  const float* Row(size_t r) const { return blocks_[r / kBlockRows] + (r % kBlockRows) * width_; }
  size_t size() const { return size_; }
  uint64_t key(size_t r) const { return KeyRef(r); }
  // Bytes held: index, keys and row blocks.
  size_t bytes() const {
    return slots_.size() * sizeof(Slot) + blocks_.size() * kBlockRows * (RowBytes() + sizeof(uint64_t));
  }
  std::mutex mu;

 private:
  struct Slot {
    uint32_t tag;
    uint32_t row1;  // 0 = empty, else row + 1
  };
  static uint32_t Tag(uint64_t h) { return static_cast<uint32_t>(h >> 32); }
  size_t RowBytes() const { return sizeof(float) * width_; }
  uint64_t& KeyRef(size_t r) const { return key_blocks_[r / kBlockRows][r % kBlockRows]; }

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
    key_blocks_.push_back(std::make_unique<uint64_t[]>(kBlockRows));
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
    size_t mask = n - 1;
    for (size_t r = 0; r < size_; ++r) {
      const uint64_t h = Mix64(KeyRef(r));
      size_t i = (h >> kShardBits) & mask;
      while (slots[i].row1 != 0) i = (i + 1) & mask;
      slots[i] = Slot{Tag(h), static_cast<uint32_t>(r + 1)};
    }
    slots_.swap(slots);
  }

  int width_;
  size_t size_ = 0;
  SlotArray slots_;
  std::vector<Block> arenas_;
  size_t arena_size_ = 0, arena_used_ = 0;
  std::vector<float*> blocks_;  // kBlockRows rows each, inside arenas_
  std::vector<std::unique_ptr<uint64_t[]>> key_blocks_;
};

class HashTable : public EmbeddingTable {
 public:
  explicit HashTable(const TableConfig& cfg) : cfg_(cfg) {
    for (int i = 0; i < kShards; ++i) shards_.emplace_back(std::make_unique<Shard>(row_width()));
  }
  const TableConfig& config() const override { return cfg_; }

  void Lookup(const uint64_t* keys, size_t n, float* out, bool create_missing) override {
    const int d = cfg_.dim;
    ForEachRowOf(keys, n, create_missing, [&](size_t i, float* row) {
      if (row == nullptr) {
        std::memset(out + i * d, 0, sizeof(float) * d);
      } else {
        std::memcpy(out + i * d, row, sizeof(float) * d);
      }
    });
  }

  void Update(const uint64_t* keys, size_t n, const float* grads) override {
    const int d = cfg_.dim;
    ForEachRowOf(keys, n, true,
                 [&](size_t i, float* row) { ApplySparseUpdate(cfg_.opt, d, row, row + d, grads + i * d); });
  }

  size_t size() const override {
    return SumOverShards([](const Shard& s) { return s.size(); });
  }
  size_t memory_bytes() const override {
    return SumOverShards([](const Shard& s) { return s.bytes(); });
  }

  void ForEachRow(const std::function<void(uint64_t, const float*)>& fn) const override {
    for (auto& s : shards_) {
      std::lock_guard<std::mutex> lk(s->mu);
      for (size_t r = 0; r < s->size(); ++r) fn(s->key(r), s->Row(r));
    }
  }

  void InsertRow(uint64_t key, const float* row) override {
    uint64_t h = Mix64(key);
    Shard& s = *shards_[h & (kShards - 1)];
    std::lock_guard<std::mutex> lk(s.mu);
    float* dst = s.Find(key, h, true, nullptr);
    std::memcpy(dst, row, sizeof(float) * row_width());
  }

 private:
  template <typename Fn>
  size_t SumOverShards(Fn&& fn) const {
    size_t n = 0;
    for (auto& s : shards_) {
      std::lock_guard<std::mutex> lk(s->mu);
      n += fn(*s);
    }
    return n;
  }

  // Runs fn(i, row) for every keys[i], shard by shard with one lock per
  // shard; a missing row is created when `create`, else fn gets nullptr.
  template <typename Fn>
  void ForEachRowOf(const uint64_t* keys, size_t n, bool create, Fn&& fn) {
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
          float* row = sh.Resolve(keys[i], hashes[i], cand[j - g], create, &created);
          if (created) InitRow(keys[i], row);
          fn(i, row);
        }
      }
    }
  }

  void InitRow(uint64_t key, float* row) const {
    uint64_t x = Mix64(key ^ Mix64(cfg_.seed));
    for (int j = 0; j < cfg_.dim; ++j) {
      x = Mix64(x);
      row[j] = cfg_.init_scale * (2.0f * UnitFloat(x) - 1.0f);
    }
    InitSparseState(cfg_.opt, cfg_.dim, row + cfg_.dim);
  }

  TableConfig cfg_;
  std::vector<std::unique_ptr<Shard>> shards_;
};

}  // namespace

int OwnerOf(uint64_t key, int ranks) {
  if (ranks <= 1) return 0;
  return static_cast<int>((Mix64(key ^ 0x6A09E667F3BCC909ULL) >> 33) % static_cast<uint64_t>(ranks));
}

std::unique_ptr<EmbeddingTable> NewHashTable(const TableConfig& cfg) { return std::make_unique<HashTable>(cfg); }

}  // namespace embark
