// What the fuzz targets share: a check that aborts (libFuzzer reports it
// with the input), and the structural invariants of a Batch.
#pragma once

#include <cstdlib>

#include "data/batch.h"

namespace embark::fuzz {

inline void Check(bool ok) {
  if (!ok) std::abort();
}

// Offsets rise from 0 to the key count, one value per key, one label and
// num_dense values per sample, every label 0 or 1.
inline void CheckBatch(const Batch& b) {
  const size_t n = b.size();
  Check(b.offsets.size() == n * static_cast<size_t>(b.num_fields) + 1);
  Check(b.offsets.front() == 0 && b.offsets.back() == b.keys.size());
  Check(b.values.size() == b.keys.size());
  Check(b.dense.size() == n * static_cast<size_t>(b.num_dense));
  for (size_t i = 1; i < b.offsets.size(); ++i) Check(b.offsets[i - 1] <= b.offsets[i]);
  for (float y : b.labels) Check(y == 0.0f || y == 1.0f);
}

}  // namespace embark::fuzz
