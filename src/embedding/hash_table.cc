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
#include <algorithm>
#include <cstring>
#include <mutex>
#include <vector>

#include "embedding/table.h"
#include "util/hash.h"

namespace embark {
namespace {

constexpr int kShardBits = 6;
constexpr int kShards = 1 << kShardBits;
constexpr size_t kBlockRows = 4096;

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
    size_t mask = slots_.size() - 1;
    for (size_t i = (h >> kShardBits) & mask;; i = (i + 1) & mask) {
      uint32_t s = slots_[i];
      if (s == 0) {
        if (!create) return nullptr;
        if ((size_ + 1) * 4 > slots_.size() * 3) {  // keep load under 3/4
          Rehash(slots_.size() * 2);
          return Find(key, h, create, created);
        }
        uint32_t row = static_cast<uint32_t>(size_++);
        slots_[i] = row + 1;
        keys_.push_back(key);
        if (row % kBlockRows == 0) blocks_.emplace_back(new float[kBlockRows * width_]);
        if (created) *created = true;
        return Row(row);
      }
      if (keys_[s - 1] == key) return Row(s - 1);
    }
  }

  // Prefetch stages for a key with hash h: its index slot, then (once the
  // slot is in cache) its stored key and row.
  void PrefetchSlot(uint64_t h) const {
    if (!slots_.empty()) __builtin_prefetch(&slots_[(h >> kShardBits) & (slots_.size() - 1)]);
  }
  void PrefetchRow(uint64_t h) const {
    if (slots_.empty()) return;
    const uint32_t s = slots_[(h >> kShardBits) & (slots_.size() - 1)];
    if (s == 0) return;
    __builtin_prefetch(&keys_[s - 1]);
    const float* row = Row(s - 1);
    __builtin_prefetch(row);
    __builtin_prefetch(row + width_ - 1);
  }

  float* Row(size_t r) { return blocks_[r / kBlockRows].get() + (r % kBlockRows) * width_; }
  const float* Row(size_t r) const { return blocks_[r / kBlockRows].get() + (r % kBlockRows) * width_; }
  size_t size() const { return size_; }
  uint64_t key(size_t r) const { return keys_[r]; }
  std::mutex mu;

 private:
  void Rehash(size_t n) {
    std::vector<uint32_t> slots(n, 0);
    size_t mask = n - 1;
    for (size_t r = 0; r < size_; ++r) {
      size_t i = (Mix64(keys_[r]) >> kShardBits) & mask;
      while (slots[i] != 0) i = (i + 1) & mask;
      slots[i] = static_cast<uint32_t>(r + 1);
    }
    slots_.swap(slots);
  }

  int width_;
  size_t size_ = 0;
  std::vector<uint32_t> slots_;  // 0 = empty, else row + 1
  std::vector<uint64_t> keys_;   // by row
  std::vector<std::unique_ptr<float[]>> blocks_;
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
    size_t n = 0;
    for (auto& s : shards_) {
      std::lock_guard<std::mutex> lk(s->mu);
      n += s->size();
    }
    return n;
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
    constexpr size_t kSlotAhead = 16, kRowAhead = 8;
    for (int s = 0; s < kShards; ++s) {
      const size_t b = start[s], e = start[s + 1];
      if (b == e) continue;
      Shard& sh = *shards_[s];
      std::lock_guard<std::mutex> lk(sh.mu);
      for (size_t j = b; j < std::min(e, b + kSlotAhead); ++j) sh.PrefetchSlot(hashes[order[j]]);
      for (size_t j = b; j < std::min(e, b + kRowAhead); ++j) sh.PrefetchRow(hashes[order[j]]);
      for (size_t j = b; j < e; ++j) {
        if (j + kSlotAhead < e) sh.PrefetchSlot(hashes[order[j + kSlotAhead]]);
        if (j + kRowAhead < e) sh.PrefetchRow(hashes[order[j + kRowAhead]]);
        const size_t i = order[j];
        bool created = false;
        float* row = sh.Find(keys[i], hashes[i], create, &created);
        if (created) InitRow(keys[i], row);
        fn(i, row);
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

std::unique_ptr<EmbeddingTable> NewHashTable(const TableConfig& cfg) { return std::make_unique<HashTable>(cfg); }

}  // namespace embark
