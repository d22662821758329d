// The RowStore conformance suite: what every row store must do, whatever it
// keeps in RAM or on disk. A store's test file instantiates it with a
// factory type that has `static std::unique_ptr<RowStore> Make(const
// TableConfig&)` (and may keep state, such as a directory, in the fixture):
//
//   struct MyFactory { static std::unique_ptr<RowStore> Make(const TableConfig& c); };
//   INSTANTIATE_TYPED_TEST_SUITE_P(My, RowStoreConformance, ::testing::Types<MyFactory>);
//
// A store that keeps weights in less than fp32 (RowPrecision::kFp16) says so
// with `static constexpr float kRelTolerance` in its factory: the checks of
// exact weight values then allow that relative error (and that absolute
// error near zero); without it they stay exact.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <set>
#include <thread>
#include <vector>

#include "embedding/row_store.h"

namespace embark {

inline TableConfig ConformanceConfig(SparseOptKind kind, int dim = 4) {
  TableConfig c;
  c.name = "t";
  c.dim = dim;
  c.init_scale = 0.1f;
  c.seed = 11;
  c.opt.kind = kind;
  c.opt.lr = 0.1f;
  return c;
}

template <typename Factory>
constexpr float ConformanceTolerance() {
  if constexpr (requires { Factory::kRelTolerance; }) return Factory::kRelTolerance;
  else return 0.0f;
}

template <typename Factory>
class RowStoreConformance : public ::testing::Test {
 protected:
  static constexpr float kTol = ConformanceTolerance<Factory>();
  // got == want, or within kTol of it (relative, and absolute near zero).
  static ::testing::AssertionResult Near(float got, float want) {
    if (kTol == 0 ? got == want : std::fabs(got - want) <= kTol * std::max(1.0f, std::fabs(want)))
      return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << got << " vs " << want << " (tolerance " << kTol << ")";
  }
  std::unique_ptr<RowStore> Make(const TableConfig& c) { return Factory::Make(c); }
  std::unique_ptr<RowStore> Make(SparseOptKind kind, int dim = 4) { return Make(ConformanceConfig(kind, dim)); }
};

TYPED_TEST_SUITE_P(RowStoreConformance);

TYPED_TEST_P(RowStoreConformance, TrainingGetCreatesRowsFromTheKey) {
  auto a = this->Make(SparseOptKind::kSgd);
  auto b = this->Make(SparseOptKind::kSgd);
  std::vector<uint64_t> keys = {5, 1ull << 63, 5, 77};
  std::vector<float> ra(16), rb(16);
  ASSERT_TRUE(a->Get(keys.data(), 4, ra.data(), Access::kTrain).ok());
  ASSERT_TRUE(b->Get(keys.data() + 3, 1, rb.data() + 12, Access::kTrain).ok());
  ASSERT_TRUE(b->Get(keys.data(), 3, rb.data(), Access::kTrain).ok());
  EXPECT_EQ(ra, rb);  // same key, same initial row, whatever the order
  EXPECT_EQ(a->stats().rows, 3u);
  for (float v : ra) EXPECT_LE(std::fabs(v), 0.1f);
  EXPECT_NE(ra[0], ra[4]);
  // The row is the optimizer's InitRow of the key.
  SparseOptimizer opt(a->config().opt, 4);
  std::vector<float> want(a->row_width());
  opt.InitRow(77, 0.1f, 11, want.data());
  for (int j = 0; j < 4; ++j) EXPECT_TRUE(this->Near(ra[12 + j], want[j])) << j;
}

TYPED_TEST_P(RowStoreConformance, ReadAccessReadsZerosAndChangesNothing) {
  auto t = this->Make(SparseOptKind::kAdagrad);
  uint64_t k = 9;
  std::vector<float> r(4, 1.0f);
  ASSERT_TRUE(t->Get(&k, 1, r.data(), Access::kRead).ok());
  EXPECT_EQ(r, std::vector<float>(4, 0.0f));
  EXPECT_EQ(t->stats().rows, 0u);
  // Nor does a read of a held row touch its metadata.
  t->SetStep(3);
  ASSERT_TRUE(t->Get(&k, 1, r.data(), Access::kTrain).ok());
  t->SetStep(8);
  ASSERT_TRUE(t->Get(&k, 1, r.data(), Access::kRead).ok());
  std::vector<float> row(t->row_width());
  RowMeta m;
  bool found = false;
  ASSERT_TRUE(t->Read(&k, 1, row.data(), &m, &found).ok());
  EXPECT_TRUE(found);
  EXPECT_EQ(m.last_step, 3u);
  EXPECT_EQ(m.count, 0u);
}

TYPED_TEST_P(RowStoreConformance, GrowsPastManyRehashes) {
  auto t = this->Make(SparseOptKind::kSgd, 2);
  std::vector<uint64_t> keys(100000);
  for (size_t i = 0; i < keys.size(); ++i) keys[i] = i * 7919;
  std::vector<float> out(keys.size() * 2), again(keys.size() * 2);
  ASSERT_TRUE(t->Get(keys.data(), keys.size(), out.data(), Access::kTrain).ok());
  ASSERT_TRUE(t->Get(keys.data(), keys.size(), again.data(), Access::kTrain).ok());
  EXPECT_EQ(out, again);
  EXPECT_EQ(t->stats().rows, keys.size());
}

// Every optimizer: a store's Update is the SparseOptimizer applied to the row.
TYPED_TEST_P(RowStoreConformance, UpdateAppliesTheTablesOptimizer) {
  for (SparseOptKind kind : {SparseOptKind::kSgd, SparseOptKind::kAdagrad, SparseOptKind::kRowwiseAdagrad,
                             SparseOptKind::kAdam, SparseOptKind::kFtrl}) {
    SCOPED_TRACE(SparseOptName(kind));
    auto t = this->Make(kind, 3);
    const TableConfig& c = t->config();
    SparseOptimizer opt(c.opt, 3);
    std::vector<uint64_t> keys = {4, 40, 400};
    std::vector<float> g = {0.5f, -1, 0.25f, 1, 2, -3, 0, 0.1f, -0.2f};
    ASSERT_TRUE(t->Update(keys.data(), 3, g.data()).ok());  // creates, then updates
    ASSERT_TRUE(t->Update(keys.data(), 3, g.data()).ok());
    const int w = t->row_width();
    std::vector<float> rows(3 * w), want(w);
    std::vector<RowMeta> meta(3);
    bool found[3];
    ASSERT_TRUE(t->Read(keys.data(), 3, rows.data(), meta.data(), found).ok());
    for (int i = 0; i < 3; ++i) {
      ASSERT_TRUE(found[i]);
      opt.InitRow(keys[i], c.init_scale, c.seed, want.data());
      opt.Apply(want.data(), g.data() + 3 * i);
      opt.Apply(want.data(), g.data() + 3 * i);
      for (int j = 0; j < w; ++j) EXPECT_TRUE(this->Near(rows[i * w + j], want[j])) << "key " << keys[i] << " float " << j;
      EXPECT_EQ(meta[i].count, 2u);
    }
  }
}

TYPED_TEST_P(RowStoreConformance, PutAndReadRoundTripRowsAndMetadata) {
  auto t = this->Make(SparseOptKind::kAdam, 2);
  const int w = t->row_width();
  std::vector<uint64_t> keys = {1, 2, 3};
  std::vector<float> rows(3 * w);
  for (size_t i = 0; i < rows.size(); ++i) rows[i] = 0.5f * static_cast<float>(i);
  std::vector<RowMeta> meta = {{10, 1}, {20, 2}, {30, 3}};
  ASSERT_TRUE(t->Put(keys.data(), 3, rows.data(), meta.data()).ok());
  std::vector<uint64_t> ask = {3, 99, 1};
  std::vector<float> got(3 * w, -1);
  std::vector<RowMeta> gm(3);
  bool found[3];
  ASSERT_TRUE(t->Read(ask.data(), 3, got.data(), gm.data(), found).ok());
  EXPECT_TRUE(found[0]);
  EXPECT_FALSE(found[1]);
  EXPECT_TRUE(found[2]);
  EXPECT_TRUE(std::equal(got.begin(), got.begin() + w, rows.begin() + 2 * w));
  EXPECT_EQ(std::vector<float>(got.begin() + w, got.begin() + 2 * w), std::vector<float>(w, 0.0f));
  EXPECT_TRUE(std::equal(got.begin() + 2 * w, got.end(), rows.begin()));
  EXPECT_EQ(gm[0].last_step, 30u);
  EXPECT_EQ(gm[0].count, 3u);
  EXPECT_EQ(gm[2].last_step, 10u);
  EXPECT_EQ(t->stats().rows, 3u);  // Read created nothing
  // Put replaces a held row; weights are what Get returns.
  std::vector<float> again(w, 7.0f);
  ASSERT_TRUE(t->Put(keys.data(), 1, again.data(), nullptr).ok());
  std::vector<float> wts(2);
  ASSERT_TRUE(t->Get(keys.data(), 1, wts.data(), Access::kRead).ok());
  EXPECT_EQ(wts, std::vector<float>(2, 7.0f));
}

TYPED_TEST_P(RowStoreConformance, EraseForgetsKeysAndKeepsTheRest) {
  auto t = this->Make(SparseOptKind::kSgd, 2);
  const size_t n = 20000;
  std::vector<uint64_t> keys(n);
  for (size_t i = 0; i < n; ++i) keys[i] = i * 0x9E3779B97F4A7C15ULL + 3;
  std::vector<float> rows(n * 2);
  for (size_t i = 0; i < rows.size(); ++i) rows[i] = static_cast<float>(i);
  ASSERT_TRUE(t->Put(keys.data(), n, rows.data(), nullptr).ok());
  std::vector<uint64_t> gone, kept;
  for (size_t i = 0; i < n; ++i) (i % 3 == 0 ? gone : kept).push_back(keys[i]);
  ASSERT_TRUE(t->Erase(gone.data(), gone.size()).ok());
  ASSERT_TRUE(t->Erase(gone.data(), 10).ok());  // erasing again is harmless
  EXPECT_EQ(t->stats().rows, kept.size());
  std::vector<float> got(n * 2);
  std::vector<uint8_t> found_bytes(n);
  bool* found = reinterpret_cast<bool*>(found_bytes.data());
  ASSERT_TRUE(t->Read(keys.data(), n, got.data(), nullptr, found).ok());
  for (size_t i = 0; i < n; ++i) {
    ASSERT_EQ(found[i], i % 3 != 0) << i;
    if (found[i]) ASSERT_TRUE(this->Near(got[2 * i + 1], rows[2 * i + 1])) << i;
  }
  // An erased key comes back as a new row, initialised from the key again.
  auto fresh = this->Make(SparseOptKind::kSgd, 2);
  std::vector<float> a(2), b(2);
  ASSERT_TRUE(t->Get(gone.data(), 1, a.data(), Access::kTrain).ok());
  ASSERT_TRUE(fresh->Get(gone.data(), 1, b.data(), Access::kTrain).ok());
  EXPECT_EQ(a, b);
  EXPECT_EQ(t->stats().rows, kept.size() + 1);
  // Re-inserting every erased key reuses the space.
  const size_t bytes = t->stats().memory_bytes;
  ASSERT_TRUE(t->Put(gone.data(), gone.size(), rows.data(), nullptr).ok());
  EXPECT_EQ(t->stats().rows, n);
  EXPECT_LE(t->stats().memory_bytes, bytes + bytes / 4);
}

TYPED_TEST_P(RowStoreConformance, MetadataTracksTheStepAndTheUpdates) {
  auto t = this->Make(SparseOptKind::kAdagrad, 2);
  uint64_t k = 42;
  std::vector<float> g = {1, 1}, w(2), row(t->row_width());
  t->SetStep(5);
  ASSERT_TRUE(t->Update(&k, 1, g.data()).ok());
  ASSERT_TRUE(t->Update(&k, 1, g.data()).ok());
  t->SetStep(7);
  ASSERT_TRUE(t->Get(&k, 1, w.data(), Access::kTrain).ok());
  RowMeta m;
  bool found = false;
  ASSERT_TRUE(t->Read(&k, 1, row.data(), &m, &found).ok());
  EXPECT_EQ(m.last_step, 7u);
  EXPECT_EQ(m.count, 2u);
}

TYPED_TEST_P(RowStoreConformance, IteratorReturnsEveryRowOnceInBlocks) {
  auto t = this->Make(SparseOptKind::kRowwiseAdagrad, 3);
  const size_t n = 1000;
  std::vector<uint64_t> keys(n);
  for (size_t i = 0; i < n; ++i) keys[i] = i * 31 + 1;
  std::vector<float> g(n * 3, 0.5f);
  t->SetStep(4);
  ASSERT_TRUE(t->Update(keys.data(), n, g.data()).ok());
  std::vector<uint64_t> half(keys.begin(), keys.begin() + n / 2);
  ASSERT_TRUE(t->Erase(half.data(), 100).ok());
  const int w = t->row_width();
  auto it = t->NewIterator(64);
  RowBatch b;
  std::set<uint64_t> seen;
  for (;;) {
    auto more = it->Next(&b);
    ASSERT_TRUE(more.ok());
    if (!more.value()) break;
    ASSERT_LE(b.size(), 64u);
    ASSERT_EQ(b.rows.size(), b.size() * w);
    ASSERT_EQ(b.meta.size(), b.size());
    std::vector<float> want(b.size() * w);
    std::vector<uint8_t> fb(b.size());
    ASSERT_TRUE(t->Read(b.keys.data(), b.size(), want.data(), nullptr, reinterpret_cast<bool*>(fb.data())).ok());
    EXPECT_EQ(b.rows, want);
    for (size_t i = 0; i < b.size(); ++i) {
      EXPECT_TRUE(seen.insert(b.keys[i]).second) << "key twice: " << b.keys[i];
      EXPECT_EQ(b.meta[i].last_step, 4u);
      EXPECT_EQ(b.meta[i].count, 1u);
    }
  }
  EXPECT_EQ(seen.size(), n - 100);
  for (size_t i = 0; i < 100; ++i) EXPECT_EQ(seen.count(keys[i]), 0u);
}

// The caller of an iterator runs no code under the store's locks: between
// blocks it may read and write the same store (a held lock would deadlock).
TYPED_TEST_P(RowStoreConformance, IteratorHoldsNoLockBetweenBlocks) {
  auto t = this->Make(SparseOptKind::kSgd, 2);
  std::vector<uint64_t> keys(300);
  for (size_t i = 0; i < keys.size(); ++i) keys[i] = i;
  std::vector<float> out(keys.size() * 2);
  ASSERT_TRUE(t->Get(keys.data(), keys.size(), out.data(), Access::kTrain).ok());
  auto it = t->NewIterator(16);
  RowBatch b;
  size_t rows = 0;
  for (;;) {
    auto more = it->Next(&b);
    ASSERT_TRUE(more.ok());
    if (!more.value()) break;
    rows += b.size();
    std::vector<float> g(b.size() * 2, 0.0f);
    ASSERT_TRUE(t->Update(b.keys.data(), b.size(), g.data()).ok());
  }
  EXPECT_EQ(rows, keys.size());
}

// Updates from many threads to the same rows are applied atomically per row:
// with SGD and constant gradients every update must be counted exactly.
TYPED_TEST_P(RowStoreConformance, ConcurrentUpdatesAreNeverLost) {
  TableConfig c = ConformanceConfig(SparseOptKind::kSgd, 8);
  c.init_scale = 0;
  c.opt.lr = 1.0f;
  auto t = this->Make(c);
  std::vector<uint64_t> keys(64);
  for (size_t i = 0; i < keys.size(); ++i) keys[i] = i;
  std::vector<float> grads(keys.size() * 8, -1.0f);
  const int kThreads = 4, kRounds = 500;
  std::vector<std::thread> th;
  for (int i = 0; i < kThreads; ++i)
    th.emplace_back([&] {
      std::vector<float> buf(keys.size() * 8);
      for (int r = 0; r < kRounds; ++r) {
        EXPECT_TRUE(t->Get(keys.data(), keys.size(), buf.data(), Access::kTrain).ok());
        EXPECT_TRUE(t->Update(keys.data(), keys.size(), grads.data()).ok());
      }
    });
  for (auto& x : th) x.join();
  std::vector<float> out(keys.size() * 8);
  ASSERT_TRUE(t->Get(keys.data(), keys.size(), out.data(), Access::kRead).ok());
  for (float v : out) EXPECT_EQ(v, static_cast<float>(kThreads * kRounds));
}

TYPED_TEST_P(RowStoreConformance, SetOptimizerChangesSettingsButNotTheKind) {
  auto t = this->Make(SparseOptKind::kSgd, 1);
  TableConfig c = t->config();
  c.init_scale = 0;
  t = this->Make(c);
  uint64_t k = 1;
  float g = 1, w = 0;
  ASSERT_TRUE(t->Update(&k, 1, &g).ok());  // lr 0.1
  SparseOptimizerConfig o = t->config().opt;
  o.lr = 1.0f;
  ASSERT_TRUE(t->SetOptimizer(o).ok());
  EXPECT_EQ(t->config().opt.lr, 1.0f);
  ASSERT_TRUE(t->Update(&k, 1, &g).ok());  // lr 1
  ASSERT_TRUE(t->Get(&k, 1, &w, Access::kRead).ok());
  if (this->kTol == 0) EXPECT_FLOAT_EQ(w, -1.1f);
  else EXPECT_TRUE(this->Near(w, -1.1f));
  o.kind = SparseOptKind::kAdam;
  Status s = t->SetOptimizer(o);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("adam"), std::string::npos) << s.message();
}

TYPED_TEST_P(RowStoreConformance, PrefetchChangesNothing) {
  auto t = this->Make(SparseOptKind::kSgd, 2);
  std::vector<uint64_t> keys = {1, 2, 3};
  t->Prefetch(keys.data(), keys.size());
  EXPECT_EQ(t->stats().rows, 0u);
  std::vector<float> a(6);
  ASSERT_TRUE(t->Get(keys.data(), 3, a.data(), Access::kTrain).ok());
  t->Prefetch(keys.data(), keys.size());
  std::vector<float> b(6);
  ASSERT_TRUE(t->Get(keys.data(), 3, b.data(), Access::kRead).ok());
  EXPECT_EQ(a, b);
}

TYPED_TEST_P(RowStoreConformance, StatsAccountForTheRows) {
  auto t = this->Make(SparseOptKind::kAdagrad, 16);
  EXPECT_EQ(t->stats().rows, 0u);
  std::vector<uint64_t> keys(5000);
  for (size_t i = 0; i < keys.size(); ++i) keys[i] = i + 1;
  std::vector<float> out(keys.size() * 16);
  ASSERT_TRUE(t->Get(keys.data(), keys.size(), out.data(), Access::kTrain).ok());
  const StoreStats st = t->stats();
  EXPECT_EQ(st.rows, keys.size());
  // At least the rows themselves are held somewhere.
  EXPECT_GE(st.memory_bytes + st.disk_bytes, keys.size() * sizeof(float) * t->row_width());
}

REGISTER_TYPED_TEST_SUITE_P(RowStoreConformance, TrainingGetCreatesRowsFromTheKey,
                            ReadAccessReadsZerosAndChangesNothing, GrowsPastManyRehashes,
                            UpdateAppliesTheTablesOptimizer, PutAndReadRoundTripRowsAndMetadata,
                            EraseForgetsKeysAndKeepsTheRest, MetadataTracksTheStepAndTheUpdates,
                            IteratorReturnsEveryRowOnceInBlocks, IteratorHoldsNoLockBetweenBlocks,
                            ConcurrentUpdatesAreNeverLost, SetOptimizerChangesSettingsButNotTheKind,
                            PrefetchChangesNothing, StatsAccountForTheRows);

}  // namespace embark
