// Small helpers of the store tests (admission_test, tier_test).
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "embedding/row_store.h"

namespace embark {

// Training reads of keys [b, e) at `step`: their rows get last_step = step.
inline void TouchAt(RowStore* t, uint32_t step, uint64_t b, uint64_t e) {
  t->SetStep(step);
  std::vector<uint64_t> keys;
  for (uint64_t k = b; k < e; ++k) keys.push_back(k);
  std::vector<float> w(keys.size() * t->dim());
  ASSERT_TRUE(t->Get(keys.data(), keys.size(), w.data(), Access::kTrain).ok());
}

// Whether the store holds a row for k.
inline bool Has(RowStore* t, uint64_t k) {
  std::vector<float> row(t->row_width());
  RowMeta m;
  bool found = false;
  EXPECT_TRUE(t->Read(&k, 1, row.data(), &m, &found).ok());
  return found;
}

}  // namespace embark
