#include "nn/layers.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "nn/gemm.h"
#include "util/hash.h"

extern "C" void openblas_set_num_threads(int);

namespace embark {

void InitBlas() { openblas_set_num_threads(1); }

Linear::Linear(ParamSet* ps, const std::string& name, int in, int out, uint64_t seed) : in_(in), out_(out) {
  w_ = ps->Add(name + ".weight", static_cast<size_t>(in) * out);
  b_ = ps->Add(name + ".bias", static_cast<size_t>(out));
  float* w = ps->data() + w_;
  const double stddev = std::sqrt(2.0 / (in + out));
  uint64_t s = Mix64(seed);
  for (size_t i = 0; i < static_cast<size_t>(in) * out; ++i) {
    // Box-Muller from two hashed uniforms.
    s = Mix64(s);
    double u1 = std::max(1e-12, static_cast<double>(UnitFloat(s)));
    s = Mix64(s);
    double u2 = UnitFloat(s);
    w[i] = static_cast<float>(stddev * std::sqrt(-2 * std::log(u1)) * std::cos(2 * M_PI * u2));
  }
}

void Linear::Forward(TrainGemm* gemm, const float* p, const float* x, int b, float* y, bool relu) const {
  gemm->Forward(x, p + w_, p + b_, b, out_, in_, relu, y);
}

void Linear::Infer(const float* p, const float* x, int b, float* y, bool relu, const float* packed) const {
  InferenceLinear(x, b, in_, packed, p + b_, out_, y, relu);
}

size_t Linear::packed_size() const { return PackedSize(in_, out_); }

void Linear::Pack(const float* p, float* packed) const { PackWeights(p + w_, in_, out_, packed); }

void Linear::Backward(TrainGemm* gemm, const float* p, const float* x, const float* dy, int b, float* g,
                      float* dx) const {
  float* db = g + b_;
  for (int r = 0; r < b; ++r) {
    const float* row = dy + static_cast<size_t>(r) * out_;
    for (int j = 0; j < out_; ++j) db[j] += row[j];
  }
  gemm->Backward(dy, x, p + w_, b, out_, in_, g + w_, dx);
}

void ReluBackward(const float* y, size_t n, float* dy) {
  for (size_t i = 0; i < n; ++i) dy[i] = y[i] > 0.0f ? dy[i] : 0.0f;
}

Mlp::Mlp(ParamSet* ps, const std::string& name, int in, const std::vector<int>& sizes, bool relu_last, uint64_t seed)
    : in_(in), relu_last_(relu_last) {
  int prev = in;
  for (size_t i = 0; i < sizes.size(); ++i) {
    layers_.emplace_back(ps, name + "." + std::to_string(i), prev, sizes[i], Mix64(seed + i));
    prev = sizes[i];
  }
}

const float* Mlp::Forward(TrainGemm* gemm, const float* p, const float* x, int b, State* st) const {
  return Run(gemm, p, x, b, st, nullptr);
}

const float* Mlp::Infer(const float* p, const float* x, int b, State* st, const float* packed) const {
  return Run(nullptr, p, x, b, st, packed);
}

const float* Mlp::Run(TrainGemm* gemm, const float* p, const float* x, int b, State* st, const float* packed) const {
  st->act.resize(layers_.size());
  const float* cur = x;
  for (size_t i = 0; i < layers_.size(); ++i) {
    auto& a = st->act[i];
    a.resize(static_cast<size_t>(b) * layers_[i].out());
    bool relu = i + 1 < layers_.size() || relu_last_;
    if (packed != nullptr) {
      layers_[i].Infer(p, cur, b, a.data(), relu, packed);
      packed += layers_[i].packed_size();
    } else {
      layers_[i].Forward(gemm, p, cur, b, a.data(), relu);
    }
    cur = a.data();
  }
  return cur;
}

size_t Mlp::packed_size() const {
  size_t n = 0;
  for (const auto& l : layers_) n += l.packed_size();
  return n;
}

void Mlp::Pack(const float* p, float* packed) const {
  for (const auto& l : layers_) {
    l.Pack(p, packed);
    packed += l.packed_size();
  }
}

void Mlp::Backward(TrainGemm* gemm, const float* p, const float* x, int b, State* st, float* dout, float* g,
                   float* dx) const {
  float* dy = dout;
  for (size_t k = layers_.size(); k-- > 0;) {
    const Linear& l = layers_[k];
    bool relu = k + 1 < layers_.size() || relu_last_;
    if (relu) ReluBackward(st->act[k].data(), static_cast<size_t>(b) * l.out(), dy);
    const float* in = k == 0 ? x : st->act[k - 1].data();
    float* dx_k = nullptr;
    if (k > 0) {
      auto& buf = (dy == st->grad_a.data()) ? st->grad_b : st->grad_a;
      buf.resize(static_cast<size_t>(b) * l.in());
      dx_k = buf.data();
    } else {
      dx_k = dx;
    }
    l.Backward(gemm, p, in, dy, b, g, dx_k);
    dy = dx_k;
  }
}

}  // namespace embark
