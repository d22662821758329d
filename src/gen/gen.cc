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
  // With drift, ids move slide / kDriftSlideVocab ranks down a window (the
  // fraction accumulating); 0: ids keep their ranks.
  uint32_t slide = 0;
};

struct Planted {
  uint64_t seed;
  bool drift = false;
  std::vector<Field> fields;
  double bias = -1.6;
  double beta[kDense] = {};
  double mu[kDense] = {};
  double mean_log[kDense] = {};
  double dense_missing[kDense] = {};

  // Popular ids carry more signal than rare ones, as in real click logs; the
  // tail stays learnable from the data a test can afford. (Without drift an
  // id's rank is the id itself.)
  static double Shrink(uint32_t rank) { return std::pow(1.0 + rank / 30.0, -0.75); }

  // An id is named by its label: without drift the label is its rank; with
  // drift the id at `rank` in window w is rank - shift(w), so window 0 is
  // the model without drift, an id moves down as the shift grows, and the
  // new ids at the top have labels below any seen before.
  int64_t Label(int f, uint32_t rank, uint32_t w) const {
    return static_cast<int64_t>(rank) - static_cast<int64_t>(uint64_t{w} * fields[f].slide / kDriftSlideVocab);
  }
  // Which of its weight draws an id has in window w: a new one every
  // kDriftPeriod windows, at a phase of the id's own; 0 in window 0 and
  // without drift.
  uint64_t Version(int f, int64_t label, uint32_t w) const {
    if (!drift || w == 0) return 0;
    Rng r(seed ^ Mix64(99 * 1000003 + Mix64(f * 7919 + static_cast<uint64_t>(label))));
    const double phase = r.Uniform() * kDriftPeriod;
    return static_cast<uint64_t>((w + phase) / kDriftPeriod);
  }
  // The normal deviate behind weight `a` of an id in its `version`: version
  // 0's, then a mix of it and a fresh one (same variance, correlation
  // sqrt(1 - change^2) with version 0's).
  double Deviate(uint64_t version, uint64_t a, int f, int64_t label) const {
    const double base = HashNormal(seed, a, f, static_cast<uint64_t>(label));
    if (version == 0) return base;
    const double fresh = HashNormal(seed ^ Mix64(0xD21F7ULL + version), a, f, static_cast<uint64_t>(label));
    return std::sqrt(1 - kDriftChange * kDriftChange) * base + kDriftChange * fresh;
  }
  double Weight(int f, uint32_t rank, int64_t label, uint64_t version) const {
    return 0.6 * Shrink(rank) * Deviate(version, 1, f, label);
  }
  void Latent(int f, uint32_t rank, int64_t label, uint64_t version, double* u) const {
    for (int k = 0; k < kLatent; ++k) u[k] = 0.4 * std::sqrt(Shrink(rank)) * Deviate(version, 2 + k, f, label);
  }
  std::string Token(int f, int64_t label) const {
    char buf[16];
    std::snprintf(buf, sizeof(buf), "%08x",
                  static_cast<uint32_t>(Mix64(seed * 31 + f * 1000003ULL + static_cast<uint64_t>(label))));
    return buf;
  }
};

Planted MakePlanted(const GenOptions& opt) {
  Planted p;
  p.seed = opt.seed;
  p.drift = opt.drift;
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
    if (opt.drift && fl.vocab >= kDriftMinVocab) fl.slide = std::min(fl.vocab, kDriftSlideVocab);
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

// What the rows of one draw leave for the figures.
struct Drawn {
  std::vector<double> probs, first, window0;  // true probability, first-order logit, window 0's logit
  std::vector<float> labels;
  uint64_t values = 0, new_ids = 0;  // categorical values; those whose id window 0 did not have
};

GenFigures Figures(const Drawn& d) {
  GenFigures g;
  g.rows = d.labels.size();
  Metrics m = Evaluate(d.probs, d.labels);
  g.ctr = m.ctr;
  g.optimal_auc = m.auc;
  g.optimal_logloss = m.logloss;
  g.first_order_auc = Auc(d.first, d.labels);
  return g;
}

// Draws `rows` rows of window w (0 without drift) from the row generator
// (seed, stream) and appends them to every sink.
Status DrawRows(const Planted& p, uint32_t w, uint64_t rows, uint64_t stream,
                const std::vector<fs::AtomicFile*>& sinks, Drawn* d) {
  std::string buf;
  Rng rng(p.seed * 0x5851F42D4C957F2DULL + stream);
  d->probs.reserve(rows);
  d->first.reserve(rows);
  d->labels.reserve(rows);
  if (p.drift) d->window0.reserve(rows);
  double u[kInteracting][kLatent], u0[kInteracting][kLatent];
  bool present[kInteracting], present0[kInteracting];
  char num[32];
  auto flush = [&]() -> Status {
    for (fs::AtomicFile* s : sinks) EMBARK_RETURN_IF_ERROR(s->Append(buf));
    buf.clear();
    return Status::OK();
  };
  for (uint64_t r = 0; r < rows; ++r) {
    double logit = p.bias;
    std::string dense_part, cat_part;
    for (int i = 0; i < kDense; ++i) {
      dense_part.push_back('\t');
      if (rng.Uniform() < p.dense_missing[i]) continue;
      double x = std::floor(std::exp(p.mu[i] + rng.Normal()));
      logit += p.beta[i] * (std::log1p(x) - p.mean_log[i]);
      std::snprintf(num, sizeof(num), "%.0f", x);
      dense_part += num;
    }
    double logit0 = logit;  // window 0's model: the same bias and numeric part
    for (int f = 0; f < kFields; ++f) {
      const Field& fl = p.fields[f];
      cat_part.push_back('\t');
      bool missing = rng.Uniform() < fl.missing;
      if (f < kInteracting) present[f] = present0[f] = !missing;
      if (missing) continue;
      uint32_t rank = static_cast<uint32_t>(std::lower_bound(fl.cdf.begin(), fl.cdf.end(), rng.Uniform()) - fl.cdf.begin());
      rank = std::min(rank, fl.vocab - 1);
      const int64_t label = p.Label(f, rank, w);
      const uint64_t version = p.Version(f, label, w);
      logit += p.Weight(f, rank, label, version);
      if (f < kInteracting) p.Latent(f, rank, label, version, u[f]);
      cat_part += p.Token(f, label);
      if (!p.drift) continue;
      // In window 0 this id had rank == label, if it existed at all; one it
      // did not have adds nothing to window 0's logit.
      ++d->values;
      if (label < 0 || label >= fl.vocab) {
        ++d->new_ids;
        if (f < kInteracting) present0[f] = false;
        continue;
      }
      const uint32_t rank0 = static_cast<uint32_t>(label);
      logit0 += p.Weight(f, rank0, label, 0);
      if (f < kInteracting) p.Latent(f, rank0, label, 0, u0[f]);
    }
    double first_order = logit;
    for (int f = 0; f < kInteracting; ++f) {
      for (int g = f + 1; g < kInteracting; ++g) {
        for (int k = 0; k < kLatent; ++k) {
          if (present[f] && present[g]) logit += u[f][k] * u[g][k];
          if (p.drift && present0[f] && present0[g]) logit0 += u0[f][k] * u0[g][k];
        }
      }
    }
    double prob = 1.0 / (1.0 + std::exp(-logit));
    float label = rng.Uniform() < prob ? 1.0f : 0.0f;
    d->probs.push_back(prob);
    d->first.push_back(first_order);
    d->labels.push_back(label);
    if (p.drift) d->window0.push_back(logit0);
    buf += label > 0 ? '1' : '0';
    buf += dense_part;
    buf += cat_part;
    buf += '\n';
    if (buf.size() > (1 << 20)) EMBARK_RETURN_IF_ERROR(flush());
  }
  return flush();
}

Result<GenFigures> WriteRows(const Planted& p, uint64_t rows, uint64_t stream, const std::string& path) {
  // Written to a temporary beside `path`, fsynced and renamed: a failure
  // (with the system's reason) leaves no partial file and no temporary.
  EMBARK_ASSIGN_OR_RETURN(auto out, fs::AtomicFile::Create(path));
  Drawn d;
  EMBARK_RETURN_IF_ERROR(DrawRows(p, 0, rows, stream, {out.get()}, &d));
  EMBARK_RETURN_IF_ERROR(out->Commit());
  return Figures(d);
}

std::string PartName(uint32_t w) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "part-%05u.tsv", w);
  return buf;
}

// The rows of drifting windows, one after the other, to `out` and/or one
// file a window under `out_dir`. A failure leaves `out` as it was and the
// windows before it in place (each file is whole), no temporary.
Result<GenReport> WriteWindows(const Planted& p, const GenOptions& opt, uint32_t windows) {
  std::unique_ptr<fs::AtomicFile> all;
  if (!opt.out.empty()) {
    EMBARK_ASSIGN_OR_RETURN(all, fs::AtomicFile::Create(opt.out));
  }
  GenReport rep;
  Drawn total;
  for (uint32_t w = 0; w < windows; ++w) {
    const uint64_t rows = opt.rows / windows + (w < opt.rows % windows ? 1 : 0);
    GenWindow win;
    win.index = w;
    std::unique_ptr<fs::AtomicFile> part;
    std::vector<fs::AtomicFile*> sinks;
    if (all) sinks.push_back(all.get());
    if (!opt.out_dir.empty()) {
      win.path = (std::filesystem::path(opt.out_dir) / PartName(w)).string();
      // A reader watching the directory skips dot-files: it sees the window whole or not at all.
      EMBARK_ASSIGN_OR_RETURN(part, fs::AtomicFile::CreateHidden(win.path));
      sinks.push_back(part.get());
    }
    Drawn d;
    EMBARK_RETURN_IF_ERROR(DrawRows(p, w, rows, 1000 + w, sinks, &d));
    if (part) EMBARK_RETURN_IF_ERROR(part->Commit());
    win.figures = Figures(d);
    win.window0_model_auc = Auc(d.window0, d.labels);
    win.new_id_share = d.values ? static_cast<double>(d.new_ids) / d.values : 0;
    rep.windows.push_back(std::move(win));
    total.probs.insert(total.probs.end(), d.probs.begin(), d.probs.end());
    total.first.insert(total.first.end(), d.first.begin(), d.first.end());
    total.labels.insert(total.labels.end(), d.labels.begin(), d.labels.end());
  }
  if (all) EMBARK_RETURN_IF_ERROR(all->Commit());
  rep.train = Figures(total);
  return rep;
}

Status CheckDrift(const GenOptions& opt, uint32_t windows) {
  if (windows > kMaxDriftWindows)
    return Status::InvalidArgument("--windows: " + std::to_string(windows) + " is out of range [1, " +
                                   std::to_string(kMaxDriftWindows) + "]");
  if (opt.rows < windows)
    return Status::InvalidArgument("--rows: " + std::to_string(opt.rows) + " is fewer than the " +
                                   std::to_string(windows) + " windows; each window needs a row");
  if (opt.valid_rows > 0 || !opt.valid_out.empty())
    return Status::InvalidArgument(
        "--valid-rows/--valid-out: not with --drift (each window is the test data of the model trained on the "
        "windows before it)");
  if (opt.out.empty() && opt.out_dir.empty())
    return Status::InvalidArgument("--drift needs --out FILE (all windows), --out-dir DIR (a file a window) or both");
  std::error_code ec;
  if (!opt.out.empty() && std::filesystem::is_directory(opt.out, ec))
    return Status::InvalidArgument("--out '" + opt.out + "' is a directory; gen writes a file there");
  if (!opt.out_dir.empty()) {
    if (std::filesystem::exists(opt.out_dir, ec) && !std::filesystem::is_directory(opt.out_dir, ec))
      return Status::InvalidArgument("--out-dir '" + opt.out_dir + "' is not a directory");
    if (!opt.out.empty()) {
      // A reader of the directory would read the single file's rows as well.
      const auto dir = std::filesystem::weakly_canonical(std::filesystem::absolute(opt.out_dir, ec), ec);
      const auto parent =
          std::filesystem::weakly_canonical(std::filesystem::absolute(opt.out, ec), ec).parent_path();
      if (!dir.empty() && dir == parent)
        return Status::InvalidArgument("--out '" + opt.out + "' is in --out-dir '" + opt.out_dir +
                                       "'; a reader of the directory would read every row twice: give another path");
    }
  }
  return Status::OK();
}

}  // namespace

Result<GenReport> Generate(const GenOptions& opt) {
  const std::string most = std::to_string(kMaxGenRows);
  if (opt.rows == 0 || opt.rows > kMaxGenRows)
    return Status::InvalidArgument("--rows: " + std::to_string(opt.rows) + " is out of range [1, " + most + "]");
  if (opt.valid_rows > kMaxGenRows)
    return Status::InvalidArgument("--valid-rows: " + std::to_string(opt.valid_rows) + " is out of range [0, " +
                                   most + "]");
  if (opt.drift) {
    const uint32_t windows = opt.windows == 0 ? kDefaultDriftWindows : opt.windows;
    EMBARK_RETURN_IF_ERROR(CheckDrift(opt, windows));
    if (opt.max_vocab < 2) return Status::InvalidArgument("--vocab must be at least 2");
    if (!(opt.zipf > 0 && opt.zipf < 10)) return Status::InvalidArgument("--zipf must be in (0, 10)");
    if (!opt.out_dir.empty()) EMBARK_RETURN_IF_ERROR(Env::Posix()->CreateDirs(opt.out_dir));
    return WriteWindows(MakePlanted(opt), opt, windows);
  }
  if (opt.windows != 0) return Status::InvalidArgument("--windows needs --drift");
  if (!opt.out_dir.empty()) return Status::InvalidArgument("--out-dir needs --drift (without it gen writes one file: --out)");
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
