#include "model/objective.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "model/model.h"
#include "train/config.h"

namespace embark {
namespace {

// One sample's binary cross-entropy on logit z with label y, added into
// `sums` (loss: log(1 + e^-|z|) + max(z, 0) - z*y, stable); returns
// d(loss)/dz = sigmoid(z) - y.
inline float BceSample(float z, float y, ObjectiveSums* sums) {
  sums->loss += std::log1p(std::exp(-std::fabs(z))) + std::max(z, 0.0f) - z * y;
  const float p = Sigmoid(z);
  sums->pred += p;
  sums->labels += y;
  return p - y;
}

}  // namespace

double Objective::ChanceLoss(double label_mean, size_t) const {
  const double p = std::clamp(label_mean, 1e-6, 1 - 1e-6);
  return -(p * std::log(p) + (1 - p) * std::log(1 - p));
}

namespace {

class BinaryCrossEntropy : public Objective {
 public:
  const char* name() const override { return "bce"; }
  bool separable() const override { return true; }
  void Compute(const float* out, const float* labels, const uint64_t*, size_t n, int outputs, float scale,
               float* dout, ObjectiveSums* sums) override {
    ObjectiveSums s;
    for (size_t k = 0; k < n; ++k) dout[k * outputs] = BceSample(out[k * outputs], labels[k], &s) * scale;
    sums->loss += s.loss;
    sums->pred += s.pred;
    sums->labels += s.labels;
  }
};

class TowerCrossEntropy : public Objective {
 public:
  TowerCrossEntropy(int dim, float temperature) : T_(dim), inv_t_(1.0f / temperature) {}
  const char* name() const override { return "bce"; }
  bool separable() const override { return true; }
  void Compute(const float* out, const float* labels, const uint64_t*, size_t n, int outputs, float scale,
               float* dout, ObjectiveSums* sums) override {
    ObjectiveSums s;
    for (size_t k = 0; k < n; ++k) {
      const float* u = out + k * outputs;
      const float* v = u + T_;
      float dot = 0;
      for (int d = 0; d < T_; ++d) dot += u[d] * v[d];
      const float g = BceSample(dot * inv_t_, labels[k], &s) * scale * inv_t_;
      float* du = dout + k * outputs;
      float* dv = du + T_;
      for (int d = 0; d < T_; ++d) {
        du[d] = g * v[d];
        dv[d] = g * u[d];
      }
    }
    sums->loss += s.loss;
    sums->pred += s.pred;
    sums->labels += s.labels;
  }

 private:
  int T_;
  float inv_t_;
};

// The frequencies' bytes: "EMBQ", u32 version 1, u64 total, u64 items, then
// (u64 item, u64 count) per item in ascending item order.
constexpr char kFreqMagic[4] = {'E', 'M', 'B', 'Q'};

class InBatchSoftmax : public Objective {
 public:
  explicit InBatchSoftmax(const SoftmaxOptions& o) : o_(o), inv_t_(1.0f / o.temperature) {}
  const char* name() const override { return "softmax"; }
  bool separable() const override { return false; }
  bool needs_items() const override { return true; }
  double ChanceLoss(double, size_t batch) const override { return std::log(static_cast<double>(std::max<size_t>(batch, 1))); }

  void Compute(const float* out, const float* labels, const uint64_t* items, size_t n, int outputs, float scale,
               float* dout, ObjectiveSums* sums) override {
    const int T = o_.dim;
    std::fill(dout, dout + n * outputs, 0.0f);
    if (n == 0) return;
    // Frequencies: this batch counts before its items are scored.
    logq_.resize(n);
    if (o_.logq) {
      total_ += n;
      for (size_t j = 0; j < n; ++j)
        if (items[j] != 0) ++counts_[items[j]];
      const double log_total = std::log(static_cast<double>(total_));
      for (size_t j = 0; j < n; ++j) {
        const uint64_t c = items[j] != 0 ? counts_[items[j]] : 1;
        logq_[j] = static_cast<float>(std::log(static_cast<double>(c)) - log_total);
      }
    } else {
      std::fill(logq_.begin(), logq_.end(), 0.0f);
    }
    // Z = U V^T / t - log q (columns), masked; then each row's softmax.
    const int N = static_cast<int>(n);
    z_.resize(n * n);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, N, T, inv_t_, out, outputs, out + T, outputs, 0.0f,
                z_.data(), N);
    constexpr float kMasked = -std::numeric_limits<float>::infinity();
    double loss = 0, pred = 0, positives = 0;
    for (size_t i = 0; i < n; ++i) {
      float* zi = z_.data() + i * n;
      for (size_t j = 0; j < n; ++j) {
        zi[j] -= logq_[j];
        if (o_.remove_hits && j != i && items[i] != 0 && items[j] == items[i]) zi[j] = kMasked;
      }
      const float w = labels[i] > 0 ? 1.0f : 0.0f;
      float mx = zi[i];
      for (size_t j = 0; j < n; ++j) mx = std::max(mx, zi[j]);
      double sum = 0;
      for (size_t j = 0; j < n; ++j) sum += std::exp(static_cast<double>(zi[j] - mx));
      const double lse = mx + std::log(sum);
      // The row becomes its gradient: w (P_ij - [i = j]) * scale, and 1/t for the dot product.
      if (w > 0) {
        loss += lse - zi[i];
        pred += std::exp(zi[i] - lse);
        positives += 1;
      }
      const float c = w * scale * inv_t_;
      for (size_t j = 0; j < n; ++j) zi[j] = c * static_cast<float>(std::exp(zi[j] - lse));
      zi[i] -= c;
    }
    // dU = G V, dV = G^T U.
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, T, N, 1.0f, z_.data(), N, out + T, outputs, 0.0f,
                dout, outputs);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, N, T, N, 1.0f, z_.data(), N, out, outputs, 0.0f,
                dout + T, outputs);
    sums->loss += loss;
    sums->pred += pred;
    sums->labels += positives;
  }

  std::string SaveState() const override {
    if (!o_.logq || total_ == 0) return {};
    std::vector<std::pair<uint64_t, uint64_t>> v(counts_.begin(), counts_.end());
    std::sort(v.begin(), v.end());
    std::string s(kFreqMagic, 4);
    auto put = [&s](uint64_t x, size_t bytes) {
      for (size_t b = 0; b < bytes; ++b) s.push_back(static_cast<char>(x >> (8 * b)));
    };
    put(1, 4);
    put(total_, 8);
    put(v.size(), 8);
    for (const auto& [item, count] : v) {
      put(item, 8);
      put(count, 8);
    }
    return s;
  }

  Status LoadState(const std::string& bytes) override {
    counts_.clear();
    total_ = 0;
    if (bytes.empty()) return Status::OK();
    size_t at = 0;
    auto get = [&](size_t n, uint64_t* x) {
      if (bytes.size() - at < n) return false;
      *x = 0;
      for (size_t b = 0; b < n; ++b) *x |= static_cast<uint64_t>(static_cast<unsigned char>(bytes[at + b])) << (8 * b);
      at += n;
      return true;
    };
    uint64_t version = 0, total = 0, items = 0;
    if (bytes.size() < 4 || std::memcmp(bytes.data(), kFreqMagic, 4) != 0)
      return Status::Corruption("item frequencies: not an embark frequency file");
    at = 4;
    if (!get(4, &version) || version != 1) return Status::Corruption("item frequencies: unknown version");
    if (!get(8, &total) || !get(8, &items) || items > (bytes.size() - at) / 16 || (bytes.size() - at) != items * 16)
      return Status::Corruption("item frequencies: truncated or of the wrong size");
    uint64_t sum = 0;
    std::unordered_map<uint64_t, uint64_t> loaded;
    for (uint64_t k = 0; k < items; ++k) {
      uint64_t item = 0, count = 0;
      get(8, &item);
      get(8, &count);
      if (count == 0 || loaded.count(item)) return Status::Corruption("item frequencies: a bad entry");
      loaded[item] = count;
      sum += count;
    }
    if (sum > total) return Status::Corruption("item frequencies: counts above their total");
    counts_ = std::move(loaded);
    total_ = total;
    return Status::OK();
  }

 private:
  SoftmaxOptions o_;
  float inv_t_;
  std::unordered_map<uint64_t, uint64_t> counts_;
  uint64_t total_ = 0;
  std::vector<float> z_, logq_;
};

}  // namespace

std::unique_ptr<Objective> NewBinaryCrossEntropy() { return std::make_unique<BinaryCrossEntropy>(); }

std::unique_ptr<Objective> NewTowerCrossEntropy(int dim, float temperature) {
  return std::make_unique<TowerCrossEntropy>(dim, temperature);
}

std::unique_ptr<Objective> NewInBatchSoftmax(const SoftmaxOptions& options) {
  return std::make_unique<InBatchSoftmax>(options);
}

Result<std::unique_ptr<Objective>> NewObjective(const TrainConfig& cfg, int tower_dim) {
  const std::string which = cfg.objective == "auto" ? (tower_dim > 0 ? "softmax" : "bce") : cfg.objective;
  if (which == "bce") {
    if (tower_dim > 0) return NewTowerCrossEntropy(tower_dim, cfg.temperature);
    return NewBinaryCrossEntropy();
  }
  if (which == "softmax") {
    if (tower_dim == 0)
      return Status::InvalidArgument("objective softmax needs model two_tower (model " + cfg.model + " trains on bce)");
    SoftmaxOptions o;
    o.dim = tower_dim;
    o.temperature = cfg.temperature;
    o.logq = cfg.logq_correction;
    o.remove_hits = cfg.remove_accidental_hits;
    return NewInBatchSoftmax(o);
  }
  return Status::InvalidArgument("unknown objective '" + cfg.objective + "' (expected auto, bce or softmax)");
}

}  // namespace embark
