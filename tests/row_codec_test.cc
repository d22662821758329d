#include "embedding/row_codec.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "embedding/row_store.h"

namespace embark {
namespace {

TEST(RowCodec, HalfConversionsRoundTripEveryHalf) {
  for (uint32_t h = 0; h < 0x10000; ++h) {
    if ((h & 0x7C00) == 0x7C00) continue;  // inf and NaN
    const float f = HalfToFloat(static_cast<uint16_t>(h));
    ASSERT_EQ(FloatToHalf(f), h) << h;
    // A value that is a half rounds to itself whatever the random bits.
    ASSERT_EQ(FloatToHalfAdd(f, 0), h) << h;
    ASSERT_EQ(FloatToHalfAdd(f, 0xFFFFFFFFu), h) << h;
  }
  EXPECT_EQ(HalfToFloat(FloatToHalf(1e6f)), 65504.0f);  // saturates
  EXPECT_TRUE(std::isnan(HalfToFloat(FloatToHalfAdd(std::nanf(""), 123))));
}

// Stochastic rounding picks one of the two neighbouring halves, with the
// probability that makes the mean the value itself: for normal and
// subnormal halves, positive and negative.
TEST(RowCodec, StochasticRoundingIsUnbiased) {
  for (float v : {0.1f, -0.3337f, 1.0f + 1.0f / 4096, 1234.567f, 3e-6f, -7.7e-7f}) {
    SCOPED_TRACE(v);
    const float lo = HalfToFloat(FloatToHalfAdd(v, 0));
    const float hi = HalfToFloat(FloatToHalfAdd(v, 0xFFFFFFFFu));
    ASSERT_NE(lo, hi);
    const int n = 200000;
    double sum = 0;
    for (int i = 0; i < n; ++i) {
      const float r = HalfToFloat(FloatToHalfAdd(v, static_cast<uint32_t>(Mix64(i))));
      ASSERT_TRUE(r == lo || r == hi) << r;
      sum += r;
    }
    const double mean = sum / n;
    // The standard error of the mean is at most |hi - lo| / (2 sqrt(n)).
    EXPECT_NEAR(mean, v, 5 * std::fabs(hi - lo) / (2 * std::sqrt(static_cast<double>(n))));
    // Round to nearest is biased by up to half a unit; the mean is far closer.
    const float nearest = HalfToFloat(FloatToHalf(v));
    if (std::fabs(nearest - v) > 0.2 * std::fabs(hi - lo)) EXPECT_LT(std::fabs(mean - v), std::fabs(nearest - v) / 4);
  }
}

TEST(RowCodec, Fp16RowsLayoutAndRepeatableRounding) {
  RowCodec c(5, 5, RowPrecision::kFp16);  // Adagrad's layout for dim 5: 10 + 2 padding + 20 bytes
  EXPECT_EQ(c.bytes(), 32u);
  EXPECT_EQ(RowCodec(5, 5, RowPrecision::kFp32).bytes(), 40u);
  EXPECT_EQ(RowCodec(5, 5, RowPrecision::kInt8).bytes(), 16u);  // scale, bias, 5 bytes + 3 padding
  std::vector<float> in = {0.1f, -0.2f, 0.3f, 1e-5f, 7.0f, 0.123456789f, 1, 2, 3, 4};
  std::vector<char> a(c.bytes()), b(c.bytes());
  c.EncodeStochastic(in.data(), RoundingSeed(7, 3, 1), a.data());
  c.EncodeStochastic(in.data(), RoundingSeed(7, 3, 1), b.data());
  EXPECT_EQ(a, b);  // same key, step and count: same bits
  std::vector<float> out(10);
  c.Decode(a.data(), out.data());
  for (int j = 0; j < 5; ++j) EXPECT_NEAR(out[j], in[j], std::fabs(in[j]) * 1e-3 + 1e-7) << j;
  for (int j = 5; j < 10; ++j) EXPECT_EQ(out[j], in[j]) << j;  // state stays fp32
}

// A training run of an fp16 store repeats bit for bit, and small updates
// are not lost to rounding: 1000 SGD steps of 1e-5 move a weight of 1 by
// 0.01, each step far below the half spacing at 1 (2^-10).
TEST(RowCodec, Fp16StoreKeepsSmallUpdatesAndRepeats) {
  TableConfig c;
  c.dim = 8;
  c.init_scale = 0;
  c.opt.kind = SparseOptKind::kSgd;
  c.opt.lr = 1.0f;
  c.precision = RowPrecision::kFp16;
  auto run = [&] {
    auto t = NewMemoryStore(c);
    std::vector<uint64_t> keys = {1, 2, 3};
    std::vector<float> rows(3 * 8, 1.0f), g(3 * 8, -1e-5f);
    EXPECT_TRUE(t->Put(keys.data(), 3, rows.data(), nullptr).ok());
    for (uint32_t s = 0; s < 1000; ++s) {
      t->SetStep(s);
      EXPECT_TRUE(t->Update(keys.data(), 3, g.data()).ok());
    }
    std::vector<float> out(3 * 8);
    EXPECT_TRUE(t->Get(keys.data(), 3, out.data(), Access::kRead).ok());
    return out;
  };
  const std::vector<float> a = run(), b = run();
  EXPECT_EQ(a, b);
  double mean = 0;
  for (float v : a) mean += v / a.size();
  EXPECT_NEAR(mean, 1.01, 0.002);
  // fp16 rows take less memory than fp32 ones.
  TableConfig f = c;
  f.precision = RowPrecision::kFp32;
  auto t16 = NewMemoryStore(c), t32 = NewMemoryStore(f);
  std::vector<uint64_t> keys(50000);
  for (size_t i = 0; i < keys.size(); ++i) keys[i] = i;
  std::vector<float> out(keys.size() * 8);
  ASSERT_TRUE(t16->Get(keys.data(), keys.size(), out.data(), Access::kTrain).ok());
  ASSERT_TRUE(t32->Get(keys.data(), keys.size(), out.data(), Access::kTrain).ok());
  EXPECT_LT(t16->stats().memory_bytes, t32->stats().memory_bytes * 3 / 4);
}

// int8 rows: every weight within half a step (scale / 2) of the original,
// the row's extremes exact; a constant row is exact.
TEST(RowCodec, Int8RoundTripErrorIsBoundedPerRow) {
  const int dim = 16;
  RowCodec c(dim, dim, RowPrecision::kInt8);
  std::vector<char> row(c.bytes());
  std::vector<float> in(2 * dim), out(2 * dim);
  for (int r = 0; r < 1000; ++r) {
    const float spread = std::ldexp(1.0f, r % 20 - 10);
    for (int j = 0; j < 2 * dim; ++j) in[j] = spread * (2 * UnitFloat(Mix64(r * 64 + j)) - 1);
    c.Encode(in.data(), row.data());
    c.Decode(row.data(), out.data());
    const float lo = *std::min_element(in.begin(), in.begin() + dim);
    const float hi = *std::max_element(in.begin(), in.begin() + dim);
    const float step = (hi - lo) / 255;
    for (int j = 0; j < dim; ++j) ASSERT_LE(std::fabs(out[j] - in[j]), step * 0.5f + 1e-6f * spread) << r << " " << j;
    for (int j = dim; j < 2 * dim; ++j) ASSERT_EQ(out[j], 0.0f);  // no optimizer state
    // Encoding the decoded row gives the same row again.
    std::vector<char> again(c.bytes());
    std::vector<float> out2(2 * dim);
    c.Encode(out.data(), again.data());
    c.Decode(again.data(), out2.data());
    for (int j = 0; j < dim; ++j) ASSERT_NEAR(out2[j], out[j], 1e-6f * spread) << r << " " << j;
  }
  std::vector<float> flat(2 * dim, 0.25f);
  c.Encode(flat.data(), row.data());
  c.Decode(row.data(), out.data());
  for (int j = 0; j < dim; ++j) EXPECT_EQ(out[j], 0.25f);
}

TEST(RowCodec, Int8StoreRefusesTraining) {
  TableConfig c;
  c.name = "embeddings";
  c.dim = 4;
  c.precision = RowPrecision::kInt8;
  auto t = NewMemoryStore(c);
  uint64_t k = 3;
  std::vector<float> row(t->row_width(), 0.5f), g(4, 1.0f);
  ASSERT_TRUE(t->Put(&k, 1, row.data(), nullptr).ok());
  Status s = t->Update(&k, 1, g.data());
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("int8"), std::string::npos) << s.message();
  std::vector<float> w(4);
  ASSERT_TRUE(t->Get(&k, 1, w.data(), Access::kRead).ok());
  EXPECT_EQ(w, std::vector<float>(4, 0.5f));
}

}  // namespace
}  // namespace embark
