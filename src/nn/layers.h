// Dense layers: training forward and backward passes on the calling
// thread's TrainGemm (nn/train_gemm.h: OpenBLAS or oneDNN, fp32 or bf16);
// inference forward passes on the batch-invariant kernel of nn/gemm.h.
// Layers hold only offsets into a ParamSet; parameters and gradients are
// passed in, so one layer object serves every thread.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "nn/params.h"
#include "nn/train_gemm.h"

namespace embark {

// Pins BLAS to one thread per call: embark parallelises across sub-batches.
void InitBlas();

class Linear {
 public:
  Linear() = default;
  // Weights are Xavier-normal from `seed`, biases zero.
  Linear(ParamSet* ps, const std::string& name, int in, int out, uint64_t seed);
  // y[b, out] = x[b, in] W^T + bias, then ReLU when `relu`, on `gemm`.
  void Forward(TrainGemm* gemm, const float* p, const float* x, int b, float* y, bool relu) const;
  // The same on the batch-invariant inference kernel of nn/gemm.h, with the
  // weights packed by Pack.
  void Infer(const float* p, const float* x, int b, float* y, bool relu, const float* packed) const;
  // Given dy (already multiplied by the ReLU mask), accumulates dW and db
  // into g and, when dx is not null, writes dx = dy W. dW and dx on `gemm`
  // (in its precision), db in fp32.
  void Backward(TrainGemm* gemm, const float* p, const float* x, const float* dy, int b, float* g, float* dx) const;
  // Inference weights: packed_size() floats written by Pack.
  size_t packed_size() const;
  void Pack(const float* p, float* packed) const;
  int in() const { return in_; }
  int out() const { return out_; }

 private:
  int in_ = 0, out_ = 0;
  size_t w_ = 0, b_ = 0;
};

// A stack of Linear layers with ReLU between them (and after the last one
// when `relu_last`), keeping its activations per call for the backward pass.
class Mlp {
 public:
  struct State {
    std::vector<std::vector<float>> act;  // output of each layer
    std::vector<float> grad_a, grad_b;
  };
  Mlp() = default;
  Mlp(ParamSet* ps, const std::string& name, int in, const std::vector<int>& sizes, bool relu_last, uint64_t seed);
  // Returns a pointer to the output [b, out()] inside `st`.
  const float* Forward(TrainGemm* gemm, const float* p, const float* x, int b, State* st) const;
  // The same on the inference kernel, with every layer packed back to back
  // by Pack.
  const float* Infer(const float* p, const float* x, int b, State* st, const float* packed) const;
  size_t packed_size() const;
  void Pack(const float* p, float* packed) const;
  // dout [b, out()] is consumed (overwritten). dx may be null.
  void Backward(TrainGemm* gemm, const float* p, const float* x, int b, State* st, float* dout, float* g,
                float* dx) const;
  int out() const { return layers_.empty() ? in_ : layers_.back().out(); }
  bool empty() const { return layers_.empty(); }
  // Multiply-adds of one sample's forward pass.
  int64_t macs() const {
    int64_t n = 0;
    for (const auto& l : layers_) n += static_cast<int64_t>(l.in()) * l.out();
    return n;
  }

 private:
  int in_ = 0;
  bool relu_last_ = false;
  std::vector<Linear> layers_;

  const float* Run(TrainGemm* gemm, const float* p, const float* x, int b, State* st, const float* packed) const;
};

// ReLU backward in place: dy[i] = y[i] > 0 ? dy[i] : 0.
void ReluBackward(const float* y, size_t n, float* dy);

}  // namespace embark
