// Samples in memory: a structure of arrays that the readers fill, the
// shuffle buffer gathers from, the models read, and a caller may build
// itself. Sparse features are in CSR form per (sample, field): the keys of
// field f of sample s are keys[offsets[s*F+f] .. offsets[s*F+f+1]), each
// with a weight in values (1 for a categorical id). Keys are the hashed
// feature ids a reader produces (a model's checkpoint fixes the hashing);
// numeric fields are already transformed as the data spec says.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace embark {

struct Batch {
  int num_dense = 0;
  int num_fields = 0;
  std::vector<float> labels;        // [n], 0 or 1
  std::vector<float> dense;         // [n * num_dense], already transformed
  std::vector<uint32_t> offsets{0};  // [n * num_fields + 1]
  std::vector<uint64_t> keys;       // hashed feature keys
  std::vector<float> values;        // one weight per key (1 for categorical)

  size_t size() const { return labels.size(); }
  void Reset(int dense_count, int field_count) {
    num_dense = dense_count;
    num_fields = field_count;
    labels.clear();
    dense.clear();
    offsets.assign(1, 0);
    keys.clear();
    values.clear();
  }
  // Appends every sample of `src` (same shape) to this batch.
  void AppendAll(const Batch& src) {
    const uint32_t shift = static_cast<uint32_t>(keys.size());
    labels.insert(labels.end(), src.labels.begin(), src.labels.end());
    dense.insert(dense.end(), src.dense.begin(), src.dense.end());
    for (size_t i = 1; i < src.offsets.size(); ++i) offsets.push_back(src.offsets[i] + shift);
    keys.insert(keys.end(), src.keys.begin(), src.keys.end());
    values.insert(values.end(), src.values.begin(), src.values.end());
  }
  // Appends sample `i` of `src` (same shape) to this batch.
  void AppendFrom(const Batch& src, size_t i) {
    labels.push_back(src.labels[i]);
    dense.insert(dense.end(), src.dense.begin() + i * num_dense, src.dense.begin() + (i + 1) * num_dense);
    size_t base = i * num_fields;
    uint32_t start = src.offsets[base];
    uint32_t shift = static_cast<uint32_t>(keys.size()) - start;
    for (int f = 1; f <= num_fields; ++f) offsets.push_back(src.offsets[base + f] + shift);
    uint32_t end = src.offsets[base + num_fields];
    keys.insert(keys.end(), src.keys.begin() + start, src.keys.begin() + end);
    values.insert(values.end(), src.values.begin() + start, src.values.begin() + end);
  }
};

}  // namespace embark
