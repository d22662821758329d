// The tiered store: the RowStore conformance suite with caches so small that
// rows leave RAM all the time, then what only a tier has: the same rows as
// the in-memory store under training, prefetch, write-back, corrupted disk
// files, and its directory's safety.
#include "tier/tiered_store.h"

#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <random>
#include <thread>
#include <vector>

#include "row_store_conformance.h"
#include "store_helpers.h"
#include "test_util.h"

namespace embark {
namespace {

namespace fs = std::filesystem;

std::unique_ptr<RowStore> MakeTiered(const TableConfig& c, size_t cache_rows, bool background) {
  static std::atomic<int> made{0};
  TierOptions o;
  o.dir = testing::TempDir() + "/table" + std::to_string(made++);
  o.cache_rows = cache_rows;
  o.background = background;
  auto s = NewTieredStore(c, o);
  EXPECT_TRUE(s.ok()) << s.status().message();
  return s.ok() ? std::move(*s) : nullptr;
}

// Two rows per shard, with the cleaner and prefetcher running.
struct TinyTieredFactory {
  static std::unique_ptr<RowStore> Make(const TableConfig& c) { return MakeTiered(c, 128, true); }
};
// One row per shard, no background threads: every miss evicts, and callers
// write dirty rows back themselves.
struct OneRowTieredFactory {
  static std::unique_ptr<RowStore> Make(const TableConfig& c) { return MakeTiered(c, 64, false); }
};
using TieredFactories = ::testing::Types<TinyTieredFactory, OneRowTieredFactory>;
INSTANTIATE_TYPED_TEST_SUITE_P(Tiered, RowStoreConformance, TieredFactories);

TableConfig Config(SparseOptKind kind, int dim = 8) {
  TableConfig c = ConformanceConfig(kind, dim);
  c.opt.lr = 0.05f;
  return c;
}

std::vector<float> AllRows(RowStore* s, std::vector<uint64_t>* keys) {
  std::vector<std::pair<uint64_t, std::vector<float>>> rows;
  auto it = s->NewIterator(100);
  RowBatch b;
  for (;;) {
    auto more = it->Next(&b);
    EXPECT_TRUE(more.ok()) << more.status().message();
    if (!more.ok() || !*more) break;
    for (size_t i = 0; i < b.size(); ++i)
      rows.emplace_back(b.keys[i], std::vector<float>(b.rows.begin() + i * s->row_width(),
                                                      b.rows.begin() + (i + 1) * s->row_width()));
  }
  std::sort(rows.begin(), rows.end());
  std::vector<float> out;
  keys->clear();
  for (auto& [k, r] : rows) {
    keys->push_back(k);
    out.insert(out.end(), r.begin(), r.end());
  }
  return out;
}

// Training traffic (Zipf-like ids, reads then updates of the unique ids,
// step by step) gives bit-identical rows in RAM and in a tier whose cache
// holds a tenth of them.
TEST(TieredStore, TrainsTheSameRowsAsTheMemoryStore) {
  for (SparseOptKind kind : {SparseOptKind::kAdagrad, SparseOptKind::kAdam}) {
    const TableConfig c = Config(kind);
    auto mem = NewMemoryStore(c);
    auto tier = MakeTiered(c, 640, true);
    std::mt19937_64 rng(5);
    std::vector<float> out_m, out_t, grads;
    for (uint32_t step = 1; step <= 60; ++step) {
      mem->SetStep(step);
      tier->SetStep(step);
      std::vector<uint64_t> keys;
      for (int i = 0; i < 300; ++i) {
        const double u = std::uniform_real_distribution<double>(0, 1)(rng);
        keys.push_back(static_cast<uint64_t>(std::pow(6000.0, u)));  // log-uniform: a hot head and a long tail
      }
      std::sort(keys.begin(), keys.end());
      keys.erase(std::unique(keys.begin(), keys.end()), keys.end());
      if (step % 3 == 0) tier->Prefetch(keys.data(), keys.size());
      out_m.resize(keys.size() * c.dim);
      out_t.resize(keys.size() * c.dim);
      ASSERT_TRUE(mem->Get(keys.data(), keys.size(), out_m.data(), Access::kTrain).ok());
      ASSERT_TRUE(tier->Get(keys.data(), keys.size(), out_t.data(), Access::kTrain).ok());
      ASSERT_EQ(out_m, out_t) << "step " << step;
      grads.resize(keys.size() * c.dim);
      for (size_t i = 0; i < grads.size(); ++i) grads[i] = out_m[i] * 0.5f + 0.01f * static_cast<float>(i % 7);
      ASSERT_TRUE(mem->Update(keys.data(), keys.size(), grads.data()).ok());
      ASSERT_TRUE(tier->Update(keys.data(), keys.size(), grads.data()).ok());
    }
    std::vector<uint64_t> km, kt;
    const std::vector<float> rm = AllRows(mem.get(), &km), rt = AllRows(tier.get(), &kt);
    EXPECT_EQ(km, kt);
    EXPECT_EQ(rm, rt);
    const StoreStats st = tier->stats();
    EXPECT_EQ(st.rows, km.size());
    EXPECT_GT(km.size(), 5 * 640u);  // the cache held under a fifth of the rows
    EXPECT_GT(st.misses, 0u);
    EXPECT_GT(st.hits, 0u);
    EXPECT_EQ(st.admitted, km.size());
  }
}

// Threads training disjoint and shared keys through a tiny cache, with
// prefetches and checkpoints walking the store meanwhile: every update
// lands (a row's count is its updates).
TEST(TieredStore, ConcurrentTrainingAndCheckpointsLoseNoUpdate) {
  const TableConfig c = Config(SparseOptKind::kSgd, 4);
  auto tier = MakeTiered(c, 256, true);
  constexpr int kThreads = 3, kRounds = 200;
  std::vector<std::thread> th;
  for (int t = 0; t < kThreads; ++t) {
    th.emplace_back([&, t] {
      std::mt19937_64 rng(t);
      std::vector<float> g(64 * 4, 0.0f), out(64 * 4);
      for (int r = 0; r < kRounds; ++r) {
        std::vector<uint64_t> keys;
        for (uint64_t k = 0; k < 64; ++k) keys.push_back(k * 3 + (rng() % 3 == 0 ? 0 : 1));
        std::sort(keys.begin(), keys.end());
        keys.erase(std::unique(keys.begin(), keys.end()), keys.end());
        tier->Prefetch(keys.data(), keys.size());
        ASSERT_TRUE(tier->Get(keys.data(), keys.size(), out.data(), Access::kTrain).ok());
        ASSERT_TRUE(tier->Update(keys.data(), keys.size(), g.data()).ok());
      }
    });
  }
  std::thread ck([&] {
    for (int r = 0; r < 5; ++r) {
      std::vector<uint64_t> k;
      AllRows(tier.get(), &k);
    }
  });
  for (auto& t : th) t.join();
  ck.join();
  // Count the updates each key got from the rows' metadata.
  uint64_t total = 0;
  auto it = tier->NewIterator(1000);
  RowBatch b;
  while (*it->Next(&b))
    for (const RowMeta& m : b.meta) total += m.count;
  // Every thread updated 64 distinct keys (some shared) per round: the
  // number of (thread, round, key) triples.
  uint64_t expect = 0;
  for (int t = 0; t < kThreads; ++t) {
    std::mt19937_64 rng(t);
    for (int r = 0; r < kRounds; ++r) {
      std::vector<uint64_t> keys;
      for (uint64_t k = 0; k < 64; ++k) keys.push_back(k * 3 + (rng() % 3 == 0 ? 0 : 1));
      std::sort(keys.begin(), keys.end());
      keys.erase(std::unique(keys.begin(), keys.end()), keys.end());
      expect += keys.size();
    }
  }
  EXPECT_EQ(total, expect);
}

// Prefetched rows are in RAM by the time the step reads them.
TEST(TieredStore, PrefetchBringsRowsInBeforeTheyAreRead) {
  const TableConfig c = Config(SparseOptKind::kAdagrad, 4);
  auto tier = MakeTiered(c, 64 * 64, true);
  std::vector<uint64_t> a(2000), b(2000);
  for (size_t i = 0; i < a.size(); ++i) {
    a[i] = i;
    b[i] = 100000 + i;
  }
  std::vector<float> out(2000 * 4);
  ASSERT_TRUE(tier->Get(a.data(), a.size(), out.data(), Access::kTrain).ok());
  ASSERT_TRUE(tier->Get(b.data(), b.size(), out.data(), Access::kTrain).ok());  // a's rows go to disk
  const StoreStats before = tier->stats();
  tier->Prefetch(a.data(), a.size());
  for (int w = 0; w < 500; ++w) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
    if (tier->stats().disk_read_bytes > before.disk_read_bytes) break;
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  ASSERT_TRUE(tier->Get(a.data(), a.size(), out.data(), Access::kRead).ok());
  const StoreStats after = tier->stats();
  // Most of a's rows were hits: the prefetcher brought them in.
  EXPECT_GT(after.hits - before.hits, a.size() / 2);
}

// A write-back cache over RocksDB with bloom filters, and a corrupted data
// file: the error names the table directory and says the checkpoint is the
// durable copy.
TEST(TieredStore, CorruptedDiskFileIsAnErrorNamingTheDirectory) {
  const TableConfig c = Config(SparseOptKind::kAdagrad, 16);
  TierOptions o;
  o.dir = testing::TempDir() + "/corrupt";
  o.cache_rows = 2048;
  o.background = false;
  auto made = NewTieredStore(c, o);
  ASSERT_TRUE(made.ok()) << made.status().message();
  auto& tier = *made;
  std::vector<uint64_t> keys(50000);
  for (size_t i = 0; i < keys.size(); ++i) keys[i] = i * 7919;
  std::vector<float> rows(keys.size() * tier->row_width(), 0.5f);
  ASSERT_TRUE(tier->Put(keys.data(), keys.size(), rows.data(), nullptr).ok());
  // A checkpoint walk writes every dirty row and flushes nothing more; push
  // the write buffer to a file by writing enough more rows.
  std::vector<uint64_t> more(100000);
  for (size_t i = 0; i < more.size(); ++i) more[i] = (uint64_t{1} << 40) + i;
  std::vector<float> mrows(more.size() * tier->row_width(), 0.25f);
  ASSERT_TRUE(tier->Put(more.data(), more.size(), mrows.data(), nullptr).ok());
  size_t corrupted = 0;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(o.dir)) {
    if (e.path().extension() != ".sst") continue;
    std::fstream f(e.path(), std::ios::in | std::ios::out | std::ios::binary);
    const auto size = static_cast<std::streamoff>(fs::file_size(e.path(), ec));
    if (ec || !f) continue;  // compacted away meanwhile
    for (std::streamoff at = 100; at + 64 < size / 2; at += 997) {
      f.seekp(at);
      f.write("garbage!", 8);
    }
    ++corrupted;
  }
  ASSERT_GT(corrupted, 0u) << "no data file was written";
  std::vector<float> out(keys.size() * c.dim);
  Status st = tier->Get(keys.data(), keys.size(), out.data(), Access::kRead);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find(o.dir), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("checkpoint"), std::string::npos) << st.message();
}

TEST(TieredStore, RefusesADirectoryItDidNotMake) {
  const TableConfig c = Config(SparseOptKind::kAdagrad, 4);
  const std::string dir = testing::TempDir() + "/user";
  fs::create_directories(dir);
  std::ofstream(dir + "/thesis.tex") << "precious";
  TierOptions o;
  o.dir = dir;
  o.cache_rows = 64;
  auto s = NewTieredStore(c, o);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("not made by embark"), std::string::npos) << s.status().message();
  EXPECT_TRUE(fs::exists(dir + "/thesis.tex"));
  // A directory it made is emptied and reused; a second store on it while
  // the first is open is refused.
  o.dir = dir + "/t";
  {
    auto a = NewTieredStore(c, o);
    ASSERT_TRUE(a.ok()) << a.status().message();
    std::vector<uint64_t> k = {1, 2, 3};
    std::vector<float> out(3 * 4);
    ASSERT_TRUE((*a)->Get(k.data(), 3, out.data(), Access::kTrain).ok());
    auto b = NewTieredStore(c, o);
    EXPECT_FALSE(b.ok());
  }
  auto again = NewTieredStore(c, o);
  ASSERT_TRUE(again.ok()) << again.status().message();
  EXPECT_EQ((*again)->stats().rows, 0u);
}

TEST(TieredStore, BudgetSizesTheCache) {
  const TableConfig c = Config(SparseOptKind::kAdagrad, 16);
  TierOptions o;
  o.dir = testing::TempDir() + "/budget";
  o.memory_budget = 32 << 20;
  auto s = NewTieredStore(c, o);
  ASSERT_TRUE(s.ok()) << s.status().message();
  // The cache's arrays and the disk tier's RAM stay inside the budget once
  // the cache is full.
  std::vector<uint64_t> keys(400000);
  for (size_t i = 0; i < keys.size(); ++i) keys[i] = i;
  std::vector<float> out(keys.size() * 16);
  ASSERT_TRUE((*s)->Get(keys.data(), keys.size(), out.data(), Access::kTrain).ok());
  const StoreStats st = (*s)->stats();
  EXPECT_EQ(st.rows, keys.size());
  EXPECT_LE(st.memory_bytes, o.memory_budget);
  EXPECT_GT(st.memory_bytes, o.memory_budget / 2);
  o.memory_budget = 1 << 20;
  o.dir += "2";
  EXPECT_FALSE(NewTieredStore(c, o).ok());
}

TableConfig PolicyConfig(RowPolicy p) {
  TableConfig c = ConformanceConfig(SparseOptKind::kSgd, 4);
  c.policy = p;
  return c;
}


// The policy's rules hold whether a row is in RAM or on disk.
TEST(TieredPolicy, AdmissionByCount) {
  RowPolicy p;
  p.admit_min_count = 3;
  auto t = MakeTiered(PolicyConfig(p), 64, true);
  std::vector<uint64_t> keys(500);
  for (size_t i = 0; i < keys.size(); ++i) keys[i] = i * 31 + 7;
  std::vector<float> w(keys.size() * 4), g(keys.size() * 4, 1.0f);
  for (uint32_t s = 0; s < 2; ++s) {
    t->SetStep(s);
    ASSERT_TRUE(t->Get(keys.data(), keys.size(), w.data(), Access::kTrain).ok());
    for (float x : w) ASSERT_EQ(x, 0.0f);
    ASSERT_TRUE(t->Update(keys.data(), keys.size(), g.data()).ok());  // dropped: no rows
    EXPECT_EQ(t->stats().rows, 0u);
  }
  t->SetStep(2);
  ASSERT_TRUE(t->Get(keys.data(), keys.size(), w.data(), Access::kTrain).ok());
  ASSERT_TRUE(t->Update(keys.data(), keys.size(), g.data()).ok());
  const StoreStats st = t->stats();
  EXPECT_EQ(st.rows, keys.size());
  EXPECT_EQ(st.admitted, keys.size());
  EXPECT_EQ(st.rejected, 2 * keys.size());
}

TEST(TieredPolicy, TtlDropsIdleRowsInRamAndOnDisk) {
  RowPolicy p;
  p.ttl_steps = 10;
  auto t = MakeTiered(PolicyConfig(p), 128, true);
  TouchAt(t.get(), 0, 0, 1000);
  TouchAt(t.get(), 5, 500, 1000);
  ASSERT_TRUE(t->Evict(10).ok());  // 0 + 10 < 10 is false: all stay
  EXPECT_EQ(t->stats().rows, 1000u);
  ASSERT_TRUE(t->Evict(15).ok());  // walks at most every ttl/2 steps
  const StoreStats st = t->stats();
  EXPECT_EQ(st.rows, 500u);
  EXPECT_EQ(st.expired, 500u);
  for (uint64_t k = 0; k < 1000; k += 7) EXPECT_EQ(Has(t.get(), k), k >= 500) << k;
}

TEST(TieredPolicy, CapDropsTheLeastRecentlyUsedToBelowTheCap) {
  RowPolicy p;
  p.max_rows = 2000;
  auto t = MakeTiered(PolicyConfig(p), 256, true);
  for (uint32_t s = 0; s < 4; ++s) TouchAt(t.get(), s, s * 1000, (s + 1) * 1000);
  ASSERT_TRUE(t->Evict(4).ok());
  const StoreStats st = t->stats();
  // Down to 95% of the cap: the rows of steps 0 and 1, and 100 of step 2.
  EXPECT_EQ(st.rows, 1900u);
  EXPECT_EQ(st.evicted, 2100u);
  for (uint64_t k = 0; k < 4000; k += 13) {
    if (k < 2000) EXPECT_FALSE(Has(t.get(), k)) << k;
    if (k >= 3000) EXPECT_TRUE(Has(t.get(), k)) << k;
  }
  ASSERT_TRUE(t->Evict(5).ok());  // under the cap: nothing more
  EXPECT_EQ(t->stats().evicted, 2100u);
}

}  // namespace
}  // namespace embark
