#include "embedding/table.h"

#include <gtest/gtest.h>

#include <cmath>
#include <thread>
#include <vector>

namespace embark {
namespace {

TableConfig Config(SparseOptKind kind, int dim = 4) {
  TableConfig c;
  c.dim = dim;
  c.init_scale = 0.1f;
  c.opt.kind = kind;
  c.opt.lr = 0.1f;
  return c;
}

TEST(HashTable, RowsGrowOnDemandAndInitFromTheKey) {
  auto a = NewHashTable(Config(SparseOptKind::kSgd));
  auto b = NewHashTable(Config(SparseOptKind::kSgd));
  std::vector<uint64_t> keys = {5, 1ull << 63, 5, 77};
  std::vector<float> ra(16), rb(16);
  a->Lookup(keys.data(), 4, ra.data(), true);
  b->Lookup(keys.data() + 3, 1, rb.data() + 12, true);
  b->Lookup(keys.data(), 3, rb.data(), true);
  EXPECT_EQ(ra, rb);  // same key, same initial row, whatever the order
  EXPECT_EQ(a->size(), 3u);
  for (float v : ra) EXPECT_LE(std::fabs(v), 0.1f);
  EXPECT_NE(ra[0], ra[4]);
}

TEST(HashTable, InferenceLookupReadsZerosAndDoesNotGrow) {
  auto t = NewHashTable(Config(SparseOptKind::kAdagrad));
  uint64_t k = 9;
  std::vector<float> r(4, 1.0f);
  t->Lookup(&k, 1, r.data(), false);
  EXPECT_EQ(r, std::vector<float>(4, 0.0f));
  EXPECT_EQ(t->size(), 0u);
}

TEST(HashTable, GrowsPastManyRehashes) {
  auto t = NewHashTable(Config(SparseOptKind::kSgd, 2));
  std::vector<uint64_t> keys(100000);
  for (size_t i = 0; i < keys.size(); ++i) keys[i] = i * 7919;
  std::vector<float> out(keys.size() * 2), again(keys.size() * 2);
  t->Lookup(keys.data(), keys.size(), out.data(), true);
  t->Lookup(keys.data(), keys.size(), again.data(), true);
  EXPECT_EQ(out, again);
  EXPECT_EQ(t->size(), keys.size());
}

// Enough rows that every shard fills its growing blocks and moves on to
// full-size ones: each row must still be found, with its own contents, and
// the table's byte count must stay near the rows it holds.
TEST(HashTable, LargeTableKeepsEveryRowAcrossBlockSizes) {
  auto t = NewHashTable(Config(SparseOptKind::kSgd, 1));
  const size_t n = 2500000;
  std::vector<uint64_t> keys(n);
  for (size_t i = 0; i < n; ++i) keys[i] = i * 0x9E3779B97F4A7C15ULL + 1;
  std::vector<float> out(n);
  t->Lookup(keys.data(), n, out.data(), true);
  // SGD with lr 0.1 takes w to w - 0.1 g: choose g so that row i becomes i % 1000.
  std::vector<float> grads(n);
  for (size_t i = 0; i < n; ++i) grads[i] = (out[i] - static_cast<float>(i % 1000)) / 0.1f;
  t->Update(keys.data(), n, grads.data());
  std::vector<float> back(n);
  t->Lookup(keys.data(), n, back.data(), false);
  size_t wrong = 0;
  for (size_t i = 0; i < n; ++i) wrong += std::fabs(back[i] - static_cast<float>(i % 1000)) > 1e-3f;
  EXPECT_EQ(wrong, 0u);
  EXPECT_EQ(t->size(), n);
  size_t seen = 0;
  t->ForEachRow([&](uint64_t, const float*) { ++seen; });
  EXPECT_EQ(seen, n);
  // One float of weight per row; keys and index add at most 8 + 8 / (3/8) bytes.
  EXPECT_LE(t->memory_bytes(), n * (4 + 8 + 22) + (size_t{64} << 20));
  EXPECT_GE(t->memory_bytes(), n * (4 + 8));
}

// Reference updates written out directly from the textbook formulas.
TEST(SparseOptimizers, MatchReferenceFormulas) {
  const float g[2] = {0.5f, -1.0f};
  SparseOptimizerConfig c;
  c.lr = 0.1f;
  {
    c.kind = SparseOptKind::kSgd;
    float w[2] = {1, 2};
    ApplySparseUpdate(c, 2, w, nullptr, g);
    EXPECT_FLOAT_EQ(w[0], 1 - 0.05f);
    EXPECT_FLOAT_EQ(w[1], 2 + 0.1f);
  }
  {
    c.kind = SparseOptKind::kAdagrad;
    float w[2] = {1, 2}, s[2] = {0, 0};
    ApplySparseUpdate(c, 2, w, s, g);
    ApplySparseUpdate(c, 2, w, s, g);
    EXPECT_FLOAT_EQ(s[0], 0.5f);
    EXPECT_NEAR(w[0], 1 - 0.1f * 0.5f / 0.5f - 0.1f * 0.5f / std::sqrt(0.5f), 1e-6);
  }
  {
    c.kind = SparseOptKind::kRowwiseAdagrad;
    float w[2] = {1, 2}, s[1] = {0};
    ApplySparseUpdate(c, 2, w, s, g);
    EXPECT_FLOAT_EQ(s[0], (0.25f + 1.0f) / 2);
    EXPECT_NEAR(w[1], 2 + 0.1f * 1.0f / std::sqrt(0.625f), 1e-6);
  }
  {
    c.kind = SparseOptKind::kAdam;
    float w[2] = {1, 2}, s[5] = {0, 0, 0, 0, 0};
    ApplySparseUpdate(c, 2, w, s, g);
    // First Adam step moves each weight by lr * sign(g) (bias-corrected).
    EXPECT_NEAR(w[0], 1 - 0.1f, 1e-5);
    EXPECT_NEAR(w[1], 2 + 0.1f, 1e-5);
    EXPECT_EQ(s[4], 1.0f);
  }
  {
    c.kind = SparseOptKind::kFtrl;
    c.ftrl_beta = 1.0f;
    c.l1 = 0.0f;
    float w[1] = {0}, s[2] = {0, 0};
    const float g1[1] = {0.5f};
    ApplySparseUpdate(c, 1, w, s, g1);
    // z = 0.5, n = 0.25: w = -z / ((beta + sqrt(n)) / alpha)
    EXPECT_NEAR(w[0], -0.5f / ((1 + 0.5f) / 0.1f), 1e-7);
    c.l1 = 1.0f;  // |z| <= l1 keeps the weight at exactly zero
    float w2[1] = {0}, s2[2] = {0, 0};
    ApplySparseUpdate(c, 1, w2, s2, g1);
    EXPECT_EQ(w2[0], 0.0f);
  }
}

// Updates from many threads to the same rows are applied atomically per row:
// with SGD and constant gradients every update must be counted exactly.
TEST(HashTable, ConcurrentUpdatesAreNeverLost) {
  TableConfig c = Config(SparseOptKind::kSgd, 8);
  c.init_scale = 0;
  c.opt.lr = 1.0f;
  auto t = NewHashTable(c);
  std::vector<uint64_t> keys(64);
  for (size_t i = 0; i < keys.size(); ++i) keys[i] = i;
  std::vector<float> grads(keys.size() * 8, -1.0f);
  const int kThreads = 4, kRounds = 500;
  std::vector<std::thread> th;
  for (int i = 0; i < kThreads; ++i)
    th.emplace_back([&] {
      std::vector<float> buf(keys.size() * 8);
      for (int r = 0; r < kRounds; ++r) {
        t->Lookup(keys.data(), keys.size(), buf.data(), true);
        t->Update(keys.data(), keys.size(), grads.data());
      }
    });
  for (auto& x : th) x.join();
  std::vector<float> out(keys.size() * 8);
  t->Lookup(keys.data(), keys.size(), out.data(), false);
  for (float v : out) EXPECT_EQ(v, static_cast<float>(kThreads * kRounds));
}

TEST(HashTable, RowsExportAndImportWithOptimizerState) {
  auto a = NewHashTable(Config(SparseOptKind::kAdam, 3));
  std::vector<uint64_t> keys = {1, 2, 3};
  std::vector<float> g(9, 0.25f), out(9);
  a->Update(keys.data(), 3, g.data());
  auto b = NewHashTable(Config(SparseOptKind::kAdam, 3));
  int rows = 0;
  a->ForEachRow([&](uint64_t k, const float* row) {
    b->InsertRow(k, row);
    ++rows;
  });
  EXPECT_EQ(rows, 3);
  EXPECT_EQ(a->row_width(), 3 + 7);
  a->Update(keys.data(), 3, g.data());
  b->Update(keys.data(), 3, g.data());
  std::vector<float> ra(9), rb(9);
  a->Lookup(keys.data(), 3, ra.data(), false);
  b->Lookup(keys.data(), 3, rb.data(), false);
  EXPECT_EQ(ra, rb);
}

}  // namespace
}  // namespace embark
