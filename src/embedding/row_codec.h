// How a store lays out one row in memory, and the conversions between that
// layout and the fp32 rows of the RowStore interface.
//
// fp32: `[dim fp32 weights | state fp32]`, copied as is.
// fp16: `[dim fp16 weights | padding to 4 bytes | state fp32]`: the weights
// in IEEE half precision, the optimizer state kept in fp32 (Adagrad
// accumulators and Adam moments span many orders of magnitude and are added
// to in small steps, which half precision would lose).
//
// Writes after an update round the weights stochastically: up or down to the
// neighbouring halves with probabilities that make the rounding unbiased, so
// many small updates are not all rounded away. The random bits come from a
// seed the store derives from (key, step, update count), so runs repeat bit
// for bit.
//
// int8 (serving copies, `embark export --row-precision int8`):
// `[f32 scale | f32 bias | dim int8 | padding to 4 bytes]`, weight j being
// scale * q[j] + bias; no optimizer state (it reads as zeros). The bias is
// the row's smallest weight and the scale (max - min) / 255, so q runs over
// [0, 255] stored as q - 128, and each weight is within scale / 2 of the
// original.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>

#if defined(__F16C__)
#include <immintrin.h>
#endif

#include "embedding/row_store.h"
#include "util/hash.h"

namespace embark {

// fp16 bits -> float (exact).
inline float HalfToFloat(uint16_t h) {
#if defined(__F16C__)
  return _cvtsh_ss(h);
#else
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000) << 16;
  uint32_t e = (h >> 10) & 0x1F, m = h & 0x3FF, x;
  if (e == 0x1F) {
    x = sign | 0x7F800000 | (m << 13);
  } else if (e != 0) {
    x = sign | ((e + 112) << 23) | (m << 13);
  } else {
    float f = static_cast<float>(m) * (1.0f / 16777216.0f);  // m * 2^-24
    std::memcpy(&x, &f, 4);
    x |= sign;
  }
  float f;
  std::memcpy(&f, &x, 4);
  return f;
#endif
}

// float -> fp16 bits. `r` is added to the 13 (more for results below the
// smallest normal half) mantissa bits that the conversion drops before they
// are truncated: r uniform in [0, 2^32) gives stochastic rounding, r = 2^31
// gives round-half-up on the magnitude. Values past the largest half
// saturate to +-65504; NaN stays NaN.
inline uint16_t FloatToHalfAdd(float f, uint32_t r) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  const uint16_t sign = static_cast<uint16_t>((x >> 16) & 0x8000);
  uint32_t a = x & 0x7FFFFFFF;
  if (a > 0x7F800000) return sign | 0x7E00;  // NaN
  if (a >= 0x38800000) {                     // >= 2^-14: a normal half (or overflow)
    a += r >> 19;                            // 13 random bits below the kept mantissa
    if (a >= 0x477FF000 + 0x1000) return sign | 0x7BFF;
    return sign | static_cast<uint16_t>((a - 0x38000000) >> 13);
  }
  // A subnormal half: multiples of 2^-24. q = |f| * 2^24 < 1024 is exact in
  // double, as is q plus 32 random bits below the point.
  const double q = static_cast<double>(std::fabs(f)) * 16777216.0 + static_cast<double>(r) * (1.0 / 4294967296.0);
  return sign | static_cast<uint16_t>(static_cast<uint32_t>(q));  // up to 1024 = the smallest normal
}

// Round to nearest, ties to even.
inline uint16_t FloatToHalf(float f) {
#if defined(__F16C__)
  if (std::fabs(f) > 65504.0f && !std::isnan(f)) f = std::copysign(65504.0f, f);
  return _cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT);
#else
  uint32_t x;
  std::memcpy(&x, &f, 4);
  const uint32_t a = x & 0x7FFFFFFF;
  if (a >= 0x38800000 && a <= 0x7F800000) {
    const uint32_t odd = (a >> 13) & 1;
    // Adding 0xFFF + odd to the 13 dropped bits and truncating rounds ties to even.
    return FloatToHalfAdd(f, (0xFFFu + odd) << 19);
  }
  if (a > 0x7F800000) return FloatToHalfAdd(f, 0);
  const uint16_t sign = static_cast<uint16_t>((x >> 16) & 0x8000);
  return sign | static_cast<uint16_t>(std::nearbyint(static_cast<double>(std::fabs(f)) * 16777216.0));
#endif
}

// A row's weights w[dim] as int8: q[j] = round((w[j] - bias) / scale) - 128.
inline void QuantizeInt8(const float* w, int dim, int8_t* q, float* scale, float* bias) {
  float lo = w[0], hi = w[0];
  for (int j = 1; j < dim; ++j) {
    lo = std::min(lo, w[j]);
    hi = std::max(hi, w[j]);
  }
  const float s = (hi - lo) / 255.0f;
  *scale = s;
  *bias = lo;
  for (int j = 0; j < dim; ++j) {
    const float v = s > 0 ? std::nearbyint((w[j] - lo) / s) : 0.0f;
    q[j] = static_cast<int8_t>(static_cast<int>(std::clamp(v, 0.0f, 255.0f)) - 128);
  }
}
inline float DequantizeInt8(int8_t q, float scale, float bias) {
  return scale * static_cast<float>(static_cast<int>(q) + 128) + bias;
}

class RowCodec {
 public:
  RowCodec(int dim, int state, RowPrecision p)
      : dim_(dim), state_(state), half_(p == RowPrecision::kFp16), int8_(p == RowPrecision::kInt8) {}
  bool half() const { return half_; }
  bool int8() const { return int8_; }
  // Rows are not plain fp32 (fp16 or int8).
  bool packed() const { return half_ || int8_; }
  // Floats per row in the interface, and bytes per row in memory.
  int width() const { return dim_ + state_; }
  size_t bytes() const {
    if (int8_) return 8 + (static_cast<size_t>(dim_) + 3) / 4 * 4;
    if (!half_) return sizeof(float) * static_cast<size_t>(dim_ + state_);
    return StateOffset() + sizeof(float) * static_cast<size_t>(state_);
  }

  // The weights of a stored row into out[dim].
  void DecodeWeights(const void* row, float* out) const {
    if (int8_) {
      float sb[2];
      std::memcpy(sb, row, 8);
      const int8_t* q = static_cast<const int8_t*>(row) + 8;
      for (int j = 0; j < dim_; ++j) out[j] = DequantizeInt8(q[j], sb[0], sb[1]);
      return;
    }
    if (!half_) {
      std::memcpy(out, row, sizeof(float) * dim_);
      return;
    }
    const uint16_t* h = static_cast<const uint16_t*>(row);
    int j = 0;
#if defined(__F16C__) && defined(__AVX__)
    for (; j + 8 <= dim_; j += 8)
      _mm256_storeu_ps(out + j, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(h + j))));
#endif
    for (; j < dim_; ++j) out[j] = HalfToFloat(h[j]);
  }
  // A whole stored row (weights then state) into out[width].
  void Decode(const void* row, float* out) const {
    DecodeWeights(row, out);
    if (int8_) std::fill(out + dim_, out + dim_ + state_, 0.0f);
    else if (half_) std::memcpy(out + dim_, static_cast<const char*>(row) + StateOffset(), sizeof(float) * state_);
    else std::memcpy(out + dim_, static_cast<const float*>(row) + dim_, sizeof(float) * state_);
  }
  // in[width] into a stored row, weights rounded to nearest.
  void Encode(const float* in, void* row) const {
    if (int8_) {
      float sb[2];
      QuantizeInt8(in, dim_, static_cast<int8_t*>(row) + 8, &sb[0], &sb[1]);
      std::memcpy(row, sb, 8);
      return;
    }
    if (!half_) {
      std::memcpy(row, in, sizeof(float) * (dim_ + state_));
      return;
    }
    uint16_t* h = static_cast<uint16_t*>(row);
    for (int j = 0; j < dim_; ++j) h[j] = FloatToHalf(in[j]);
    EncodeState(in, row);
  }
  // in[width] into a stored row, weights rounded stochastically with random
  // bits drawn from `seed` (element j uses the same bits for the same seed).
  void EncodeStochastic(const float* in, uint64_t seed, void* row) const {
    if (!half_) {
      std::memcpy(row, in, sizeof(float) * (dim_ + state_));
      return;
    }
    uint16_t* h = static_cast<uint16_t*>(row);
    for (int j = 0; j < dim_; j += 2) {
      const uint64_t bits = Mix64(seed + static_cast<uint64_t>(j));
      h[j] = FloatToHalfAdd(in[j], static_cast<uint32_t>(bits));
      if (j + 1 < dim_) h[j + 1] = FloatToHalfAdd(in[j + 1], static_cast<uint32_t>(bits >> 32));
    }
    EncodeState(in, row);
  }

 private:
  size_t StateOffset() const { return (sizeof(uint16_t) * static_cast<size_t>(dim_) + 3) / 4 * 4; }
  void EncodeState(const float* in, void* row) const {
    std::memcpy(static_cast<char*>(row) + StateOffset(), in + dim_, sizeof(float) * state_);
  }

  int dim_, state_;
  bool half_, int8_;
};

// The seed of the stochastic rounding of `key`'s row written by its
// `count`-th update at `step`.
inline uint64_t RoundingSeed(uint64_t key, uint32_t step, uint32_t count) {
  return Mix64(key ^ Mix64((static_cast<uint64_t>(step) << 32 | count) ^ 0x5851F42D4C957F2DULL));
}

}  // namespace embark
