#include "embedding/row_store.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <thread>
#include <vector>

#include "row_store_conformance.h"

namespace embark {
namespace {

struct MemoryStoreFactory {
  static std::unique_ptr<RowStore> Make(const TableConfig& c) { return NewMemoryStore(c); }
};
INSTANTIATE_TYPED_TEST_SUITE_P(Memory, RowStoreConformance, ::testing::Types<MemoryStoreFactory>);

// The same store keeping weights in fp16: exact-value checks allow the
// rounding (a half has 11 significant bits; stochastic rounding moves a
// value by up to one unit in the last place, 2^-10 relative).
struct MemoryFp16StoreFactory {
  static constexpr float kRelTolerance = 2e-3f;
  static std::unique_ptr<RowStore> Make(const TableConfig& c) {
    TableConfig h = c;
    h.precision = RowPrecision::kFp16;
    return NewMemoryStore(h);
  }
};
INSTANTIATE_TYPED_TEST_SUITE_P(MemoryFp16, RowStoreConformance, ::testing::Types<MemoryFp16StoreFactory>);

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

// The sparse optimizers as they were first written: one element at a time,
// both of Adam's bias corrections from powf on every update. The optimized
// updates (ApplySparseUpdate, SparseOptimizer::Apply with its tables and
// vectorised loops, a store's Update) must give the same floats.
void ReferenceUpdate(const SparseOptimizerConfig& cfg, int dim, float* w, float* s, const float* g) {
  const float lr = cfg.lr;
  switch (cfg.kind) {
    case SparseOptKind::kSgd:
      for (int i = 0; i < dim; ++i) w[i] -= lr * (g[i] + cfg.l2 * w[i]);
      break;
    case SparseOptKind::kAdagrad:
      for (int i = 0; i < dim; ++i) {
        float gi = g[i] + cfg.l2 * w[i];
        s[i] += gi * gi;
        w[i] -= lr * gi / (std::sqrt(s[i]) + cfg.eps);
      }
      break;
    case SparseOptKind::kRowwiseAdagrad: {
      float sq = 0;
      for (int i = 0; i < dim; ++i) {
        float gi = g[i] + cfg.l2 * w[i];
        sq += gi * gi;
      }
      s[0] += sq / static_cast<float>(dim);
      float scale = lr / (std::sqrt(s[0]) + cfg.eps);
      for (int i = 0; i < dim; ++i) w[i] -= scale * (g[i] + cfg.l2 * w[i]);
      break;
    }
    case SparseOptKind::kAdam: {
      float* m = s;
      float* v = s + dim;
      float& t = s[2 * dim];
      t += 1;
      const float c1 = 1.0f - std::pow(cfg.beta1, t);
      const float c2 = 1.0f - std::pow(cfg.beta2, t);
      for (int i = 0; i < dim; ++i) {
        float gi = g[i] + cfg.l2 * w[i];
        m[i] = cfg.beta1 * m[i] + (1 - cfg.beta1) * gi;
        v[i] = cfg.beta2 * v[i] + (1 - cfg.beta2) * gi * gi;
        w[i] -= lr * (m[i] / c1) / (std::sqrt(v[i] / c2) + cfg.eps);
      }
      break;
    }
    case SparseOptKind::kFtrl: {
      float* z = s;
      float* n = s + dim;
      for (int i = 0; i < dim; ++i) {
        float gi = g[i];
        float n_new = n[i] + gi * gi;
        float sigma = (std::sqrt(n_new) - std::sqrt(n[i])) / lr;
        z[i] += gi - sigma * w[i];
        n[i] = n_new;
        if (std::fabs(z[i]) <= cfg.l1) {
          w[i] = 0;
        } else {
          float sign = z[i] < 0 ? -1.0f : 1.0f;
          w[i] = -(z[i] - sign * cfg.l1) / ((cfg.ftrl_beta + std::sqrt(n[i])) / lr + cfg.l2);
        }
      }
      break;
    }
  }
}

// Equal as floats, or both NaN; else within `ulps` units in the last place.
::testing::AssertionResult Near(float got, float want, int ulps) {
  if (got == want || (std::isnan(got) && std::isnan(want))) return ::testing::AssertionSuccess();
  int32_t a, b;
  std::memcpy(&a, &got, 4);
  std::memcpy(&b, &want, 4);
  if ((a < 0) == (b < 0) && std::abs(static_cast<int64_t>(a) - b) <= ulps) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << got << " against the reference's " << want;
}

// Every optimizer, every row width the updater specialises and some it does
// not, random gradients (some zero, some large), many steps: the optimized
// update of each row follows the reference float for float. Rows are kept
// side by side and every third one skips a step, so Adam's rows have
// different step counts.
TEST(SparseOptimizers, OptimizedUpdatesMatchTheReference) {
  std::mt19937 rng(5);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::uniform_real_distribution<float> unit(0.0f, 1.0f);
  for (SparseOptKind kind : {SparseOptKind::kSgd, SparseOptKind::kAdagrad, SparseOptKind::kRowwiseAdagrad,
                             SparseOptKind::kAdam, SparseOptKind::kFtrl}) {
    for (int dim : {1, 3, 8, 16, 17, 32, 64}) {
      SCOPED_TRACE(std::string(SparseOptName(kind)) + " dim " + std::to_string(dim));
      SparseOptimizerConfig c;
      c.kind = kind;
      c.lr = 0.05f;
      c.l2 = dim % 2 ? 1e-3f : 0.0f;
      c.l1 = kind == SparseOptKind::kFtrl ? 0.01f : 0.0f;
      c.initial_accumulator = 0.1f;
      SparseOptimizer opt(c, dim);
      const int width = dim + SparseStateSize(kind, dim), rows = 6, steps = 300;
      std::vector<float> ref(rows * width), fast, plain;
      for (float& x : ref) x = 0.1f * normal(rng);
      for (int r = 0; r < rows; ++r) InitSparseState(c, dim, &ref[r * width + dim]);
      fast = plain = ref;
      std::vector<float> g(dim);
      for (int step = 0; step < steps; ++step) {
        for (int r = 0; r < rows; ++r) {
          if ((step + r) % 3 == 0) continue;
          const float scale = unit(rng) < 0.1f ? 100.0f : 1.0f;
          for (float& x : g) x = unit(rng) < 0.1f ? 0.0f : scale * normal(rng);
          ReferenceUpdate(c, dim, &ref[r * width], &ref[r * width + dim], g.data());
          opt.Apply(&fast[r * width], g.data());
          ApplySparseUpdate(c, dim, &plain[r * width], &plain[r * width + dim], g.data());
        }
      }
      for (size_t i = 0; i < ref.size(); ++i) {
        ASSERT_TRUE(Near(fast[i], ref[i], 0)) << "updater, float " << i;
        ASSERT_TRUE(Near(plain[i], ref[i], 0)) << "ApplySparseUpdate, float " << i;
      }
    }
  }
}

// Adam's bias corrections come from a table for the first steps, are 1.0f
// once beta^t is negligible, and from powf past a table that does not reach
// that far (beta2 close to 1): every way gives the reference's floats,
// across the table's end.
TEST(SparseOptimizers, AdamBiasCorrectionsMatchPowfAtEveryStep) {
  std::mt19937 rng(9);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (float beta2 : {0.999f, 0.9999f, 0.5f}) {
    SCOPED_TRACE(beta2);
    SparseOptimizerConfig c;
    c.kind = SparseOptKind::kAdam;
    c.beta2 = beta2;
    const int dim = 4, width = dim + SparseStateSize(c.kind, dim);
    SparseOptimizer opt(c, dim);
    std::vector<float> ref(width, 0.0f), fast(width, 0.0f), g(dim);
    for (int step = 1; step <= SparseUpdater::kAdamTableSteps + 3000; ++step) {
      for (float& x : g) x = normal(rng);
      ReferenceUpdate(c, dim, ref.data(), ref.data() + dim, g.data());
      opt.Apply(fast.data(), g.data());
      for (int i = 0; i < width; ++i) ASSERT_TRUE(Near(fast[i], ref[i], 0)) << "step " << step << " float " << i;
    }
  }
}

// A store's Update is the same arithmetic, through its batched, prefetching
// loop: rows updated many times in batches of repeated and new keys match
// rows updated one by one with the reference.
TEST(SparseOptimizers, StoreUpdatesMatchTheReference) {
  std::mt19937 rng(3);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (SparseOptKind kind : {SparseOptKind::kSgd, SparseOptKind::kAdagrad, SparseOptKind::kRowwiseAdagrad,
                             SparseOptKind::kAdam, SparseOptKind::kFtrl}) {
    for (int dim : {16, 7}) {
      SCOPED_TRACE(std::string(SparseOptName(kind)) + " dim " + std::to_string(dim));
      TableConfig c = Config(kind, dim);
      auto t = NewMemoryStore(c);
      const SparseOptimizer opt(c.opt, dim);
      const int width = c.row_width();
      const size_t keys = 3000;
      std::vector<std::vector<float>> ref(keys);
      std::vector<uint64_t> batch;
      std::vector<float> g;
      std::uniform_int_distribution<size_t> pick(0, keys - 1);
      for (int step = 0; step < 40; ++step) {
        std::vector<bool> in(keys, false);
        batch.clear();
        g.clear();
        for (int i = 0; i < 700; ++i) {
          const size_t k = pick(rng);
          if (in[k]) continue;  // keys are unique within an update
          in[k] = true;
          batch.push_back(k * 1000003);
          for (int j = 0; j < dim; ++j) g.push_back(normal(rng));
          if (ref[k].empty()) {
            ref[k].resize(width);
            opt.InitRow(k * 1000003, c.init_scale, c.seed, ref[k].data());
          }
          ReferenceUpdate(c.opt, dim, ref[k].data(), ref[k].data() + dim, &g[g.size() - dim]);
        }
        ASSERT_TRUE(t->Update(batch.data(), batch.size(), g.data()).ok());
      }
      std::vector<float> row(width);
      for (size_t k = 0; k < keys; ++k) {
        if (ref[k].empty()) continue;
        const uint64_t key = k * 1000003;
        bool found = false;
        ASSERT_TRUE(t->Read(&key, 1, row.data(), nullptr, &found).ok());
        ASSERT_TRUE(found);
        for (int j = 0; j < width; ++j) ASSERT_TRUE(Near(row[j], ref[k][j], 0)) << "key " << key << " float " << j;
      }
    }
  }
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
