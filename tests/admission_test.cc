// Feature admission (admit_min_count, admit_probability), row caps and row
// expiry: Admission itself, the LRU cutoff, and the in-memory store that
// follows a RowPolicy.
#include "embedding/admission.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <thread>
#include <vector>

#include "embedding/eviction.h"
#include "embedding/row_store.h"
#include "store_helpers.h"

namespace embark {
namespace {

TableConfig Config(RowPolicy p) {
  TableConfig c;
  c.dim = 4;
  c.init_scale = 0.1f;
  c.opt.kind = SparseOptKind::kSgd;
  c.opt.lr = 0.1f;
  c.policy = p;
  return c;
}

RowPolicy MinCount(uint32_t n) {
  RowPolicy p;
  p.admit_min_count = n;
  return p;
}

bool AllZero(const std::vector<float>& v) {
  for (float x : v)
    if (x != 0.0f) return false;
  return true;
}

TEST(Admission, MinCountAdmitsOnTheNthSighting) {
  Admission a(MinCount(3), 7);
  for (uint64_t k = 1; k <= 1000; ++k) {
    EXPECT_FALSE(a.Admitted(k, 0));
    EXPECT_FALSE(a.Admit(k, 0)) << k;
    EXPECT_FALSE(a.Admit(k, 1)) << k;
    EXPECT_FALSE(a.Admitted(k, 1)) << k;
    EXPECT_TRUE(a.Admit(k, 2)) << k;
    EXPECT_TRUE(a.Admitted(k, 2)) << k;
  }
}

TEST(Admission, ProbabilityAdmitsThatFractionRepeatably) {
  RowPolicy p;
  p.admit_probability = 0.25f;
  Admission a(p, 3), b(p, 3);
  int yes = 0;
  const int n = 100000;
  for (int k = 0; k < n; ++k) {
    const bool y = a.Admit(k, static_cast<uint32_t>(k % 17));
    EXPECT_EQ(y, b.Admit(k, static_cast<uint32_t>(k % 17)));
    EXPECT_EQ(y, a.Admitted(k, static_cast<uint32_t>(k % 17)));  // an update sees the read's answer
    yes += y;
  }
  EXPECT_NEAR(static_cast<double>(yes) / n, 0.25, 0.01);
  // Another step is another coin: a refused id gets in later.
  int later = 0;
  for (int k = 0; k < 1000; ++k)
    for (uint32_t s = 0; s < 64 && !a.Admit(k, s); ++s) later += s == 63;
  EXPECT_LT(later, 3);
}

TEST(Admission, BothRulesMustPass) {
  RowPolicy p = MinCount(2);
  p.admit_probability = 0.5f;
  Admission a(p, 1);
  int yes = 0;
  for (uint64_t k = 0; k < 20000; ++k) {
    EXPECT_FALSE(a.Admit(k, 5));
    yes += a.Admit(k, 5);
  }
  EXPECT_NEAR(yes / 20000.0, 0.5, 0.02);
}

TEST(Admission, SketchMemoryIsBoundedWhateverTheIds) {
  Admission a(MinCount(2), 1);
  const size_t bound = size_t{16} << 20;
  EXPECT_EQ(a.memory_bytes(), bound);
  for (uint64_t k = 0; k < 2000000; ++k) a.Admit(k * 0x9E3779B97F4A7C15ULL, 0);
  EXPECT_EQ(a.memory_bytes(), bound);
  // 2M distinct ids seen once each in 4Mi-wide rows: a new id seen once is
  // rarely taken for one seen twice.
  int early = 0;
  for (uint64_t k = 0; k < 100000; ++k) early += a.Admit((k + 5000000) * 0x9E3779B97F4A7C15ULL, 0);
  EXPECT_LT(early, 4000);  // 2.2% measured
  std::printf("ids admitted on their first sighting: %d of 100000\n", early);
  RowPolicy p;
  p.admit_probability = 0.5f;
  EXPECT_EQ(Admission(p, 1).memory_bytes(), 0u);
}

TEST(Admission, ConcurrentSightingsAreSafe) {
  Admission a(MinCount(4), 1);
  std::vector<std::thread> th;
  std::atomic<int> admitted{0};
  for (int t = 0; t < 4; ++t)
    th.emplace_back([&] {
      for (uint64_t k = 0; k < 20000; ++k) admitted += a.Admit(k, 0);
    });
  for (auto& t : th) t.join();
  // Racing sightings may lose counts (a sketch's count is approximate), but
  // never corrupt the sketch: some ids were admitted, and every id is
  // admitted within min_count more sightings from one thread.
  EXPECT_GT(admitted.load(), 0);
  for (uint64_t k = 0; k < 20000; ++k) {
    bool in = false;
    for (int s = 0; s < 4 && !in; ++s) in = a.Admit(k, 0);
    ASSERT_TRUE(in) << k;
  }
}

TEST(LruCutoff, DropsTheLeastRecentlyUsedThenTheLeastUpdated) {
  std::vector<RowMeta> rows = {{5, 1}, {3, 9}, {3, 2}, {3, 2}, {7, 0}, {1, 4}, {3, 1}};
  LruCutoff lru;
  for (auto& m : rows) lru.Add(m);
  const uint64_t drop = 4;  // {1,4}, then at step 3: {3,1}, and two of {3,2}
  for (auto& m : rows)
    if (m.last_step == lru.PartialStep(drop)) lru.AddAtStep(m);
  const Cutoff c = lru.Find(drop);
  uint64_t taken = 0;
  std::vector<bool> dropped;
  for (auto& m : rows) dropped.push_back(Drops(c, m, &taken));
  EXPECT_EQ(dropped, (std::vector<bool>{false, false, true, true, false, true, true}));
  EXPECT_FALSE(LruCutoff().Find(0).any);
}

TEST(MemoryStoreAdmission, IdSeenFewerTimesReadsZerosAndGetsNoRow) {
  auto t = NewMemoryStore(Config(MinCount(3)));
  const uint64_t k = 42;
  std::vector<float> w(4), g(4, 1.0f);
  for (int s = 0; s < 2; ++s) {
    t->SetStep(s);
    ASSERT_TRUE(t->Get(&k, 1, w.data(), Access::kTrain).ok());
    EXPECT_TRUE(AllZero(w));
    ASSERT_TRUE(t->Update(&k, 1, g.data()).ok());  // dropped: no row
    EXPECT_EQ(t->stats().rows, 0u);
  }
  ASSERT_TRUE(t->Get(&k, 1, w.data(), Access::kRead).ok());  // inference does not count
  t->SetStep(2);
  ASSERT_TRUE(t->Get(&k, 1, w.data(), Access::kTrain).ok());
  EXPECT_FALSE(AllZero(w));  // the row's initial weights
  ASSERT_TRUE(t->Update(&k, 1, g.data()).ok());
  const StoreStats st = t->stats();
  EXPECT_EQ(st.rows, 1u);
  EXPECT_EQ(st.admitted, 1u);
  EXPECT_EQ(st.rejected, 2u);
  EXPECT_GE(st.memory_bytes, size_t{16} << 20);  // the sketch is counted
  // Checkpoint loads always write.
  const uint64_t other = 43;
  std::vector<float> row(t->row_width(), 0.5f);
  ASSERT_TRUE(t->Put(&other, 1, row.data(), nullptr).ok());
  EXPECT_EQ(t->stats().rows, 2u);
  EXPECT_EQ(t->stats().admitted, 1u);
}

TEST(MemoryStoreAdmission, CountsRowsMadeWithoutAPolicy) {
  auto t = NewMemoryStore(Config(RowPolicy{}));
  std::vector<uint64_t> keys = {1, 2, 3};
  std::vector<float> w(12), g(12, 1.0f);
  ASSERT_TRUE(t->Get(keys.data(), 2, w.data(), Access::kTrain).ok());
  ASSERT_TRUE(t->Update(keys.data(), 3, g.data()).ok());
  EXPECT_EQ(t->stats().admitted, 3u);
  EXPECT_EQ(t->stats().rejected, 0u);
}

TEST(MemoryStoreAdmission, ProbabilityDecidesReadsAndUpdatesAlike) {
  RowPolicy p;
  p.admit_probability = 0.5f;
  auto t = NewMemoryStore(Config(p));
  const size_t n = 10000;
  std::vector<uint64_t> keys(n);
  for (size_t i = 0; i < n; ++i) keys[i] = i + 1;
  std::vector<float> w(n * 4), g(n * 4, 1.0f);
  t->SetStep(1);
  ASSERT_TRUE(t->Get(keys.data(), n, w.data(), Access::kTrain).ok());
  const size_t rows = t->stats().rows;
  EXPECT_NEAR(rows / double(n), 0.5, 0.03);
  ASSERT_TRUE(t->Update(keys.data(), n, g.data()).ok());  // the refused ones stay refused this step
  EXPECT_EQ(t->stats().rows, rows);
  EXPECT_EQ(t->stats().rejected, n - rows);
}


TEST(MemoryStoreEviction, TtlDropsIdleRowsAndKeepsTouchedOnes) {
  RowPolicy p;
  p.ttl_steps = 10;
  auto t = NewMemoryStore(Config(p));
  TouchAt(t.get(), 0, 0, 1000);
  TouchAt(t.get(), 5, 500, 1000);  // touched again later
  ASSERT_TRUE(t->Evict(10).ok());  // 0 + 10 < 10 is false: all stay
  EXPECT_EQ(t->stats().rows, 1000u);
  ASSERT_TRUE(t->Evict(11).ok());
  StoreStats st = t->stats();
  EXPECT_EQ(st.rows, 500u);
  EXPECT_EQ(st.expired, 500u);
  EXPECT_EQ(st.evicted, 0u);
  EXPECT_FALSE(Has(t.get(), 0));
  EXPECT_TRUE(Has(t.get(), 999));
  // Freed rows are reused and the table stays whole.
  TouchAt(t.get(), 20, 2000, 2500);
  EXPECT_EQ(t->stats().rows, 1000u);
  EXPECT_TRUE(Has(t.get(), 2499));
}

TEST(MemoryStoreEviction, CapDropsExactlyTheLeastRecentlyUsed) {
  RowPolicy p;
  p.max_rows = 2500;
  auto t = NewMemoryStore(Config(p));
  for (uint32_t s = 0; s < 5; ++s) TouchAt(t.get(), s, s * 1000, (s + 1) * 1000);  // 5000 rows, steps 0..4
  // Of the rows last used at step 2, those updated (count 1) outlive the rest.
  std::vector<uint64_t> upd;
  for (uint64_t k = 2000; k < 2500; ++k) upd.push_back(k);
  std::vector<float> g(upd.size() * 4, 0.0f);
  t->SetStep(2);
  ASSERT_TRUE(t->Update(upd.data(), upd.size(), g.data()).ok());
  ASSERT_TRUE(t->Evict(5).ok());
  const StoreStats st = t->stats();
  EXPECT_EQ(st.rows, 2500u);
  EXPECT_EQ(st.evicted, 2500u);
  EXPECT_EQ(st.expired, 0u);
  for (uint64_t k = 0; k < 5000; ++k) EXPECT_EQ(Has(t.get(), k), k >= 3000 || (k >= 2000 && k < 2500)) << k;
  ASSERT_TRUE(t->Evict(6).ok());  // under the cap: nothing more
  EXPECT_EQ(t->stats().evicted, 2500u);
}

TEST(MemoryStoreEviction, TtlAndCapTogether) {
  RowPolicy p;
  p.max_rows = 1500;
  p.ttl_steps = 3;
  auto t = NewMemoryStore(Config(p));
  for (uint32_t s = 0; s < 5; ++s) TouchAt(t.get(), s, s * 1000, (s + 1) * 1000);
  ASSERT_TRUE(t->Evict(5).ok());  // steps 0 and 1 expire (idle 4 and 5 > 3), then 500 of step 2 go
  const StoreStats st = t->stats();
  EXPECT_EQ(st.expired, 2000u);
  EXPECT_EQ(st.evicted, 1500u);
  EXPECT_EQ(st.rows, 1500u);
}

// Evict on one thread while others read, update and create rows: every row
// that stays is whole, and the counters add up (run under TSan by
// scripts/test.sh --tsan).
TEST(MemoryStoreEviction, ConcurrentWithTraining) {
  RowPolicy p;
  p.max_rows = 20000;
  p.ttl_steps = 4;
  p.admit_min_count = 2;
  auto t = NewMemoryStore(Config(p));
  std::atomic<bool> stop{false};
  std::atomic<uint32_t> step{0};
  std::vector<std::thread> th;
  for (int w = 0; w < 3; ++w)
    th.emplace_back([&, w] {
      std::vector<uint64_t> keys(256);
      std::vector<float> out(256 * 4), g(256 * 4, 0.01f);
      uint64_t x = w + 1;
      for (int it = 0; it < 400; ++it) {
        for (auto& k : keys) {
          x = x * 6364136223846793005ULL + 1442695040888963407ULL;
          k = (x >> 33) % 60000;
        }
        std::sort(keys.begin(), keys.end());
        keys.erase(std::unique(keys.begin(), keys.end()), keys.end());
        if (w == 0) t->SetStep(step.fetch_add(1) / 8);
        ASSERT_TRUE(t->Get(keys.data(), keys.size(), out.data(), Access::kTrain).ok());
        ASSERT_TRUE(t->Update(keys.data(), keys.size(), g.data()).ok());
        keys.resize(256);
      }
    });
  std::thread evictor([&] {
    while (!stop.load()) ASSERT_TRUE(t->Evict(step.load() / 8).ok());
  });
  for (auto& x : th) x.join();
  stop = true;
  evictor.join();
  ASSERT_TRUE(t->Evict(step.load() / 8 + 100).ok());  // every row expires
  const StoreStats st = t->stats();
  EXPECT_EQ(st.rows, 0u);
  EXPECT_GT(st.admitted, 0u);
  EXPECT_GT(st.rejected, 0u);
  EXPECT_EQ(st.admitted, st.evicted + st.expired);
}

}  // namespace
}  // namespace embark
