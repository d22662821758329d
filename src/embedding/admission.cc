#include "embedding/admission.h"

#include <algorithm>

#include "util/hash.h"

namespace embark {

Admission::Admission(const RowPolicy& p, uint64_t seed)
    : min_count_(p.admit_min_count <= 1 ? 0 : std::min<uint32_t>(p.admit_min_count, UINT8_MAX)),
      probability_(p.admit_probability),
      seed_(Mix64(seed ^ 0xA076F1D3C2B9E857ULL)) {
  if (min_count_ > 0) {
    const size_t n = kSketchRows * kSketchWidth;
    sketch_ = std::make_unique<std::atomic<uint8_t>[]>(n);
    for (size_t i = 0; i < n; ++i) sketch_[i].store(0, std::memory_order_relaxed);
  }
}

size_t Admission::Slot(int r, uint64_t key) const {
  // One 64-bit hash per row, from the key and the row (independent rows).
  const uint64_t h = Mix64(key ^ seed_ ^ (static_cast<uint64_t>(r + 1) * 0x9E3779B97F4A7C15ULL));
  return static_cast<size_t>(r) * kSketchWidth + (h & (kSketchWidth - 1));
}

bool Admission::Coin(uint64_t key, uint32_t step) const {
  if (probability_ >= 1.0f) return true;
  if (probability_ <= 0.0f) return false;
  const uint64_t bits = Mix64(Mix64(key ^ seed_) ^ (static_cast<uint64_t>(step) * 0xD6E8FEB86659FD93ULL));
  return UnitFloat(bits) < probability_;
}

bool Admission::Admit(uint64_t key, uint32_t step) {
  if (min_count_ > 0) {
    size_t slot[kSketchRows];
    uint8_t least = UINT8_MAX;
    for (int r = 0; r < kSketchRows; ++r) {
      slot[r] = Slot(r, key);
      least = std::min(least, sketch_[slot[r]].load(std::memory_order_relaxed));
    }
    if (least < min_count_) {
      // Conservative update: raise only the counters at the minimum.
      for (int r = 0; r < kSketchRows; ++r) {
        uint8_t v = least;
        sketch_[slot[r]].compare_exchange_strong(v, static_cast<uint8_t>(least + 1), std::memory_order_relaxed);
      }
      if (least + 1u < min_count_) return false;
    }
  }
  return Coin(key, step);
}

bool Admission::Admitted(uint64_t key, uint32_t step) const {
  if (min_count_ > 0) {
    for (int r = 0; r < kSketchRows; ++r)
      if (sketch_[Slot(r, key)].load(std::memory_order_relaxed) < min_count_) return false;
  }
  return Coin(key, step);
}

size_t Admission::memory_bytes() const {
  return sketch_ ? kSketchRows * kSketchWidth * sizeof(std::atomic<uint8_t>) : 0;
}

}  // namespace embark
