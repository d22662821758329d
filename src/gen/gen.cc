#include "gen/gen.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <vector>

#include "metrics/metrics.h"
#include "util/fs.h"
#include "util/hash.h"

namespace embark {
namespace {

constexpr int kDense = 13;
constexpr int kFields = 26;
constexpr int kLatent = 4;
constexpr int kInteracting = 8;  // fields 0..7 interact pairwise

class Rng {
 public:
  explicit Rng(uint64_t s) : s_(Mix64(s)) {}
  uint64_t Next() { return s_ = Mix64(s_); }
  double Uniform() { return (Next() >> 11) * (1.0 / 9007199254740992.0); }
  double Normal() {
    double u1 = std::max(Uniform(), 1e-300), u2 = Uniform();
    return std::sqrt(-2 * std::log(u1)) * std::cos(2 * M_PI * u2);
  }

 private:
  uint64_t s_;
};

// A normal deviate fixed by (seed, a, b, c): the planted parameters need no storage.
double HashNormal(uint64_t seed, uint64_t a, uint64_t b, uint64_t c) {
  Rng r(seed ^ Mix64(a * 1000003 + Mix64(b * 7919 + c)));
  return r.Normal();
}

struct Field {
  uint32_t vocab;
  double missing;
  std::vector<double> cdf;
};

struct Planted {
  uint64_t seed;
  std::vector<Field> fields;
  double bias = -1.6;
  double beta[kDense] = {};
  double mu[kDense] = {};
  double mean_log[kDense] = {};
  double dense_missing[kDense] = {};

  // Popular ids carry more signal than rare ones, as in real click logs; the
  // tail stays learnable from the data a test can afford.
  static double Shrink(uint32_t id) { return std::pow(1.0 + id / 30.0, -0.75); }
  double Weight(int f, uint32_t id) const { return 0.6 * Shrink(id) * HashNormal(seed, 1, f, id); }
  void Latent(int f, uint32_t id, double* u) const {
    for (int k = 0; k < kLatent; ++k) u[k] = 0.4 * std::sqrt(Shrink(id)) * HashNormal(seed, 2 + k, f, id);
  }
  std::string Token(int f, uint32_t id) const {
    char buf[16];
    std::snprintf(buf, sizeof(buf), "%08x", static_cast<uint32_t>(Mix64(seed * 31 + f * 1000003ULL + id)));
    return buf;
  }
};

Planted MakePlanted(const GenOptions& opt) {
  Planted p;
  p.seed = opt.seed;
  // Interacting fields (0..7) have small to medium vocabularies; the rest
  // range up to max_vocab, with a few long tails.
  static const uint32_t kVocab[kFields] = {3,     10,    20,  50,    100,   200,  300,   500,   8,
                                           12000, 0,     50,  3000,  0,     120,  6000,  300,   0,
                                           20,    1500,  700, 0,     12000, 3,    6000,  0};
  for (int f = 0; f < kFields; ++f) {
    Field fl;
    fl.vocab = std::max<uint32_t>(2, std::min(opt.max_vocab, kVocab[f] == 0 ? opt.max_vocab : kVocab[f]));
    fl.missing = (f % 4 == 3) ? 0.2 : 0.0;
    fl.cdf.resize(fl.vocab);
    double s = 0;
    for (uint32_t i = 0; i < fl.vocab; ++i) fl.cdf[i] = (s += std::pow(i + 1.0, -opt.zipf));
    for (auto& c : fl.cdf) c /= s;
    p.fields.push_back(std::move(fl));
  }
  for (int i = 0; i < kDense; ++i) {
    p.mu[i] = 0.5 + 0.4 * i;
    p.beta[i] = i < 4 ? 0.35 * (i % 2 == 0 ? 1 : -1) : 0.0;
    p.dense_missing[i] = (i % 5 == 2) ? 0.15 : 0.0;
    // E[log1p(floor(exp(N(mu, 1))))] is close to mu for these mu; centring
    // only moves the bias, so an estimate is enough.
    p.mean_log[i] = p.mu[i];
  }
  return p;
}

Result<GenFigures> WriteRows(const Planted& p, uint64_t rows, uint64_t stream, const std::string& path) {
  // Written to a temporary beside `path`, fsynced and renamed: a failure
  // (with the system's reason) leaves no partial file and no temporary.
  EMBARK_ASSIGN_OR_RETURN(auto out, fs::AtomicFile::Create(path));
  std::string buf;
  Rng rng(p.seed * 0x5851F42D4C957F2DULL + stream);
  std::vector<double> probs, first;
  std::vector<float> labels;
  probs.reserve(rows);
  first.reserve(rows);
  labels.reserve(rows);
  double u[kInteracting][kLatent];
  bool present[kInteracting];
  char num[32];
  for (uint64_t r = 0; r < rows; ++r) {
    double logit = p.bias;
    std::string line;
    std::string dense_part, cat_part;
    for (int i = 0; i < kDense; ++i) {
      dense_part.push_back('\t');
      if (rng.Uniform() < p.dense_missing[i]) continue;
      double x = std::floor(std::exp(p.mu[i] + rng.Normal()));
      logit += p.beta[i] * (std::log1p(x) - p.mean_log[i]);
      std::snprintf(num, sizeof(num), "%.0f", x);
      dense_part += num;
    }
    for (int f = 0; f < kFields; ++f) {
      const Field& fl = p.fields[f];
      cat_part.push_back('\t');
      bool missing = rng.Uniform() < fl.missing;
      if (f < kInteracting) present[f] = !missing;
      if (missing) continue;
      uint32_t id = static_cast<uint32_t>(std::lower_bound(fl.cdf.begin(), fl.cdf.end(), rng.Uniform()) - fl.cdf.begin());
      id = std::min(id, fl.vocab - 1);
      logit += p.Weight(f, id);
      if (f < kInteracting) p.Latent(f, id, u[f]);
      cat_part += p.Token(f, id);
    }
    double first_order = logit;
    for (int f = 0; f < kInteracting; ++f) {
      if (!present[f]) continue;
      for (int g = f + 1; g < kInteracting; ++g) {
        if (!present[g]) continue;
        for (int k = 0; k < kLatent; ++k) logit += u[f][k] * u[g][k];
      }
    }
    double prob = 1.0 / (1.0 + std::exp(-logit));
    float label = rng.Uniform() < prob ? 1.0f : 0.0f;
    probs.push_back(prob);
    first.push_back(first_order);
    labels.push_back(label);
    buf += label > 0 ? '1' : '0';
    buf += dense_part;
    buf += cat_part;
    buf += '\n';
    if (buf.size() > (1 << 20)) {
      Status st = out->Append(buf);
      if (!st.ok()) {
        out->Abort();
        return st;
      }
      buf.clear();
    }
  }
  Status st = out->Append(buf);
  if (st.ok()) st = out->Commit();
  if (!st.ok()) {
    out->Abort();
    return st;
  }
  GenFigures g;
  g.rows = rows;
  Metrics m = Evaluate(probs, labels);
  g.ctr = m.ctr;
  g.optimal_auc = m.auc;
  g.optimal_logloss = m.logloss;
  g.first_order_auc = Auc(first, labels);
  return g;
}

}  // namespace

Result<GenReport> Generate(const GenOptions& opt) {
  const std::string most = std::to_string(kMaxGenRows);
  if (opt.rows == 0 || opt.rows > kMaxGenRows)
    return Status::InvalidArgument("--rows: " + std::to_string(opt.rows) + " is out of range [1, " + most + "]");
  if (opt.valid_rows > kMaxGenRows)
    return Status::InvalidArgument("--valid-rows: " + std::to_string(opt.valid_rows) + " is out of range [0, " +
                                   most + "]");
  if (opt.out.empty()) return Status::InvalidArgument("--out is required");
  if (opt.valid_rows > 0 && opt.valid_out.empty()) return Status::InvalidArgument("--valid-rows needs --valid-out");
  if (opt.valid_rows == 0 && !opt.valid_out.empty())
    return Status::InvalidArgument("--valid-out needs --valid-rows (how many validation rows to write)");
  for (const std::string* path : {&opt.out, &opt.valid_out}) {
    std::error_code ec;
    if (!path->empty() && std::filesystem::is_directory(*path, ec))
      return Status::InvalidArgument(std::string(path == &opt.out ? "--out" : "--valid-out") + " '" + *path +
                                     "' is a directory; gen writes a file there");
  }
  if (!opt.valid_out.empty()) {
    // The second file would replace the first.
    std::error_code ec;
    const auto a = std::filesystem::weakly_canonical(std::filesystem::absolute(opt.out, ec), ec);
    const auto b = std::filesystem::weakly_canonical(std::filesystem::absolute(opt.valid_out, ec), ec);
    if (opt.out == opt.valid_out || (!a.empty() && a == b))
      return Status::InvalidArgument("--valid-out '" + opt.valid_out + "' is the --out file '" + opt.out +
                                     "'; the validation rows would replace the training rows: give two paths");
  }
  if (opt.max_vocab < 2) return Status::InvalidArgument("--vocab must be at least 2");
  if (!(opt.zipf > 0 && opt.zipf < 10)) return Status::InvalidArgument("--zipf must be in (0, 10)");
  Planted p = MakePlanted(opt);
  GenReport rep;
  EMBARK_ASSIGN_OR_RETURN(rep.train, WriteRows(p, opt.rows, 1, opt.out));
  if (opt.valid_rows > 0) {
    EMBARK_ASSIGN_OR_RETURN(rep.valid, WriteRows(p, opt.valid_rows, 2, opt.valid_out));
  }
  return rep;
}

}  // namespace embark
