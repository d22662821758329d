// Dense parameters of a model live in one contiguous buffer, as do each
// thread's gradients, so that combining gradients across threads (and later
// across ranks) is one vector sum and a checkpoint is one array.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace embark {

// Thrown by ParamSet::Add past the set's limit, before anything is
// allocated; Model::Create turns it into an error naming the size.
struct ParamLimitExceeded {
  uint64_t requested;  // floats the set would hold
};

class ParamSet {
 public:
  struct Entry {
    std::string name;
    size_t offset;
    size_t size;
  };
  // Reserves `n` floats and returns their offset.
  size_t Add(const std::string& name, size_t n) {
    if (n > limit_ || values_.size() > limit_ - n) throw ParamLimitExceeded{static_cast<uint64_t>(values_.size()) + n};
    entries_.push_back({name, values_.size(), n});
    values_.resize(values_.size() + n, 0.0f);
    return entries_.back().offset;
  }
  float* data() { return values_.data(); }
  const float* data() const { return values_.data(); }
  size_t size() const { return values_.size(); }
  const std::vector<Entry>& entries() const { return entries_; }
  std::vector<float>& values() { return values_; }
  // The most floats Add may reserve in all.
  void set_limit(size_t floats) { limit_ = floats; }

 private:
  size_t limit_ = SIZE_MAX;
  std::vector<float> values_;
  std::vector<Entry> entries_;
};

}  // namespace embark
