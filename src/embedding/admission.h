// Feature admission: which ids that training sees get an embedding row.
//
// Rare ids (seen once or twice in a whole run) make most of a CTR model's
// rows and little of its accuracy; admitting an id only once it has been
// seen admit_min_count times, or with probability admit_probability per
// sighting, keeps their rows out. An Admission is shared by every store that
// follows a RowPolicy (the in-memory store, the RAM cache over disk): the
// store asks Admit when a training read finds no row, and Admitted when an
// update finds none.
//
// Min-count uses a count-min sketch of kSketchRows x kSketchWidth 8-bit
// counters (16 MiB, whatever the number of ids; admit_min_count is at most
// 255) with conservative update: each sighting raises only the counters at
// the current minimum, and never past admit_min_count, so counters cannot
// overflow and the estimate is the smallest over-count a count-min sketch
// gives. The estimate never undercounts: an id seen N times is admitted at
// the latest on its Nth sighting. Collisions may admit an id earlier: rarely
// while the distinct ids seen stay well under kSketchWidth (4Mi), more
// often beyond: after 2M distinct ids, about 2% of new ids pass
// admit_min_count 2 on their first sighting (admission_test). Counts never decay, and the sketch is not saved in
// checkpoints: a resumed run counts afresh.
//
// Probability: each sighting of an id without a row passes with probability
// p, decided by a hash of (key, step, seed), so runs repeat. With both set,
// an id needs both: its count reached and the coin of that sighting.
//
// Thread-safe: counters are relaxed atomics; concurrent sightings of one id
// may both count or both read the same minimum (an approximate count, as a
// sketch's is anyway).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>

#include "embedding/row_store.h"

namespace embark {

class Admission {
 public:
  static constexpr int kSketchRows = 4;
  static constexpr size_t kSketchWidth = size_t{1} << 22;  // counters per row: 4 x 4Mi x 1 byte = 16 MiB

  explicit Admission(const RowPolicy& p, uint64_t seed);

  // A training read of `key`, which has no row, at `step`: counts the
  // sighting and says whether the row is created now.
  bool Admit(uint64_t key, uint32_t step);

  // An update of `key`, which has no row, at `step`: the answer a read in
  // the same step gives, without counting a sighting (so an update of an id
  // whose read was refused creates no row).
  bool Admitted(uint64_t key, uint32_t step) const;

  // Memory held (the sketch; 0 without min-count).
  size_t memory_bytes() const;

 private:
  bool Coin(uint64_t key, uint32_t step) const;
  size_t Slot(int r, uint64_t key) const;

  uint32_t min_count_;  // 0: no count needed
  float probability_;
  uint64_t seed_;
  std::unique_ptr<std::atomic<uint8_t>[]> sketch_;  // kSketchRows x kSketchWidth
};

}  // namespace embark
