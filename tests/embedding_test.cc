#include "embedding/row_store.h"

#include <gtest/gtest.h>

#include <cmath>
#include <thread>
#include <vector>

#include "row_store_conformance.h"

namespace embark {
namespace {

struct MemoryStoreFactory {
  static std::unique_ptr<RowStore> Make(const TableConfig& c) { return NewMemoryStore(c); }
};
INSTANTIATE_TYPED_TEST_SUITE_P(Memory, RowStoreConformance, ::testing::Types<MemoryStoreFactory>);

TableConfig Config(SparseOptKind kind, int dim = 4) {
  TableConfig c;
  c.dim = dim;
  c.init_scale = 0.1f;
  c.opt.kind = kind;
  c.opt.lr = 0.1f;
  return c;
}

// Enough rows that every shard fills its growing blocks and moves on to
// full-size ones: each row must still be found, with its own contents, and
// the table's byte count must stay near the rows it holds.
TEST(MemoryStore, LargeTableKeepsEveryRowAcrossBlockSizes) {
  auto t = NewMemoryStore(Config(SparseOptKind::kSgd, 1));
  const size_t n = 2500000;
  std::vector<uint64_t> keys(n);
  for (size_t i = 0; i < n; ++i) keys[i] = i * 0x9E3779B97F4A7C15ULL + 1;
  std::vector<float> out(n);
  ASSERT_TRUE(t->Get(keys.data(), n, out.data(), Access::kTrain).ok());
  // SGD with lr 0.1 takes w to w - 0.1 g: choose g so that row i becomes i % 1000.
  std::vector<float> grads(n);
  for (size_t i = 0; i < n; ++i) grads[i] = (out[i] - static_cast<float>(i % 1000)) / 0.1f;
  ASSERT_TRUE(t->Update(keys.data(), n, grads.data()).ok());
  std::vector<float> back(n);
  ASSERT_TRUE(t->Get(keys.data(), n, back.data(), Access::kRead).ok());
  size_t wrong = 0;
  for (size_t i = 0; i < n; ++i) wrong += std::fabs(back[i] - static_cast<float>(i % 1000)) > 1e-3f;
  EXPECT_EQ(wrong, 0u);
  EXPECT_EQ(t->stats().rows, n);
  size_t seen = 0;
  auto it = t->NewIterator();
  RowBatch b;
  for (;;) {
    auto more = it->Next(&b);
    ASSERT_TRUE(more.ok());
    if (!more.value()) break;
    seen += b.size();
  }
  EXPECT_EQ(seen, n);
  // One float of weight per row; the key with its 8 bytes of metadata adds
  // 16, and the index at most 8 / (3/8) bytes.
  const size_t bytes = t->stats().memory_bytes;
  EXPECT_LE(bytes, n * (4 + 16 + 22) + (size_t{64} << 20));
  EXPECT_GE(bytes, n * (4 + 16));
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

}  // namespace
}  // namespace embark
