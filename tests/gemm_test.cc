// The inference GEMM: correct against a double-precision reference, and a
// row's output the same bits whatever rows share the call.
#include "nn/gemm.h"

#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <vector>

namespace embark {
namespace {

struct Case {
  int in, out;
};

TEST(InferenceLinear, MatchesReferenceAndIsBatchInvariant) {
  std::mt19937 rng(7);
  std::normal_distribution<float> normal;
  for (Case c : {Case{13, 512}, Case{1, 1}, Case{7, 17}, Case{64, 16}, Case{37, 33}, Case{256, 1}}) {
    const int rows = 23;
    std::vector<float> x(static_cast<size_t>(rows) * c.in), w(static_cast<size_t>(c.out) * c.in), b(c.out);
    for (auto& v : x) v = normal(rng);
    for (auto& v : w) v = normal(rng);
    for (auto& v : b) v = normal(rng);
    std::vector<float> packed(PackedSize(c.in, c.out));
    PackWeights(w.data(), c.in, c.out, packed.data());
    for (bool relu : {false, true}) {
      std::vector<float> all(static_cast<size_t>(rows) * c.out);
      InferenceLinear(x.data(), rows, c.in, packed.data(), b.data(), c.out, all.data(), relu);
      for (int r = 0; r < rows; ++r)
        for (int n = 0; n < c.out; ++n) {
          double ref = b[n];
          for (int k = 0; k < c.in; ++k) ref += static_cast<double>(x[r * c.in + k]) * w[n * c.in + k];
          if (relu) ref = std::max(ref, 0.0);
          ASSERT_NEAR(all[static_cast<size_t>(r) * c.out + n], ref, 1e-4 * (1 + std::abs(ref)))
              << c.in << "x" << c.out << " row " << r << " col " << n;
        }
      // Every split of the rows into calls gives the same bits.
      for (int chunk : {1, 2, 5, 6, 7}) {
        std::vector<float> part(all.size());
        for (int r = 0; r < rows; r += chunk) {
          const int n = std::min(chunk, rows - r);
          InferenceLinear(x.data() + static_cast<size_t>(r) * c.in, n, c.in, packed.data(), b.data(), c.out,
                          part.data() + static_cast<size_t>(r) * c.out, relu);
        }
        ASSERT_EQ(0, std::memcmp(part.data(), all.data(), all.size() * sizeof(float)))
            << c.in << "x" << c.out << " in chunks of " << chunk;
      }
    }
  }
}

}  // namespace
}  // namespace embark
