// The dense gradient allreduce over a Communicator: reduce-scatter then
// allgather (each rank sums one contiguous slice), so every rank sends about
// 2 (N-1)/N of the gradient per step whatever N is. Optional compression on
// the wire: fp16, or 1 bit per value (sign, with one scale per 256 values)
// with error feedback on both the sending and the summing side, as in
// DoubleSqueeze: what compression drops is added back into the next step.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "dist/comm.h"

namespace embark {

enum class WireCompression { kNone, kFp16, kOneBit };
Result<WireCompression> ParseWireCompression(const std::string& s);

class DenseAllreduce {
 public:
  DenseAllreduce(Communicator* comm, size_t n, WireCompression c);

  // data[0..n) becomes the sum of every rank's data (compressed as
  // configured); *count becomes the sum of every rank's *count, exactly.
  Status Sum(float* data, double* count);

 private:
  size_t Begin(int p) const { return n_ * static_cast<size_t>(p) / comm_->size(); }
  void Encode(const float* x, size_t m, float* residual, Bytes* out) const;
  bool Decode(BytesReader* in, size_t m, float* out, bool add) const;

  Communicator* comm_;
  size_t n_;
  WireCompression c_;
  std::vector<float> residual_;         // sender's error feedback, n floats
  std::vector<float> slice_residual_;   // summing side's, over this rank's slice
  std::vector<float> slice_;
  std::vector<Bytes> send_, recv_;
};

}  // namespace embark
