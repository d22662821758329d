// Which rows a capped table drops: the least recently used (smallest
// RowMeta::last_step; among rows last used in the same step, the fewest
// updates first). Any store computes the cutoff the same way: one pass
// feeds every row's metadata to an LruCutoff, Find gives the cutoff for the
// number of rows to drop, and a second pass drops the rows Drop selects.
#pragma once

#include <algorithm>
#include <cstdint>
#include <unordered_map>
#include <utility>
#include <vector>

#include "embedding/row_store.h"

namespace embark {

// The rows to drop: every row with last_step < step, those with last_step ==
// step and count < count, and `take` of those with (step, count) exactly.
struct Cutoff {
  uint32_t step = 0;
  uint32_t count = 0;
  uint64_t take = 0;
  bool any = false;  // false: drop nothing
};

// The smallest value v of a histogram such that the values < v total at most
// n; returns {v, n - total below v} (how many of the rows at v to take).
inline std::pair<uint32_t, uint64_t> HistogramCutoff(const std::unordered_map<uint32_t, uint64_t>& hist, uint64_t n) {
  std::vector<std::pair<uint32_t, uint64_t>> v(hist.begin(), hist.end());
  std::sort(v.begin(), v.end());
  uint64_t below = 0;
  for (const auto& [value, rows] : v) {
    if (below + rows > n) return {value, n - below};
    below += rows;
  }
  return {UINT32_MAX, 0};  // n >= all rows: everything is below the end
}

// Two passes over the rows: Add every row's metadata, then AddAtStep those
// at the cutoff step (to break ties by count), then Find.
class LruCutoff {
 public:
  void Add(const RowMeta& m) { ++steps_[m.last_step]; }
  // The step whose rows are only partly dropped, after every Add; callers
  // then AddAtStep the counts of the rows last used at it.
  uint32_t PartialStep(uint64_t drop) const { return HistogramCutoff(steps_, drop).first; }
  void AddAtStep(const RowMeta& m) { ++counts_[m.count]; }
  // The cutoff that drops `drop` rows.
  Cutoff Find(uint64_t drop) const {
    Cutoff c;
    if (drop == 0) return c;
    c.any = true;
    auto [step, rest] = HistogramCutoff(steps_, drop);
    c.step = step;
    if (rest == 0) return c;  // rows last used at `step` all stay
    auto [count, take] = HistogramCutoff(counts_, rest);
    c.count = count;
    c.take = take;
    return c;
  }

 private:
  std::unordered_map<uint32_t, uint64_t> steps_, counts_;
};

// Whether a row falls under the cutoff: every row below it, and (for the
// rows exactly at it) while *taken < c.take, counting them in *taken.
inline bool Drops(const Cutoff& c, const RowMeta& m, uint64_t* taken) {
  if (!c.any) return false;
  if (m.last_step != c.step) return m.last_step < c.step;
  if (m.count != c.count) return m.count < c.count;
  if (*taken >= c.take) return false;
  ++*taken;
  return true;
}

}  // namespace embark
