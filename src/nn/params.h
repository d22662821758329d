// Dense parameters of a model live in one contiguous buffer, as do each
// thread's gradients, so that combining gradients across threads (and later
// across ranks) is one vector sum and a checkpoint is one array.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace embark {

class ParamSet {
 public:
  struct Entry {
    std::string name;
    size_t offset;
    size_t size;
  };
  // Reserves `n` floats and returns their offset.
  size_t Add(const std::string& name, size_t n) {
    entries_.push_back({name, values_.size(), n});
    values_.resize(values_.size() + n, 0.0f);
    return entries_.back().offset;
  }
  float* data() { return values_.data(); }
  const float* data() const { return values_.data(); }
  size_t size() const { return values_.size(); }
  const std::vector<Entry>& entries() const { return entries_; }
  std::vector<float>& values() { return values_; }

 private:
  std::vector<float> values_;
  std::vector<Entry> entries_;
};

}  // namespace embark
