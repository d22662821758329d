#include "model/model.h"

#include <algorithm>
#include <chrono>
#include <cstring>

#include "util/hash.h"

namespace embark {

struct Model::Parts {
  bool has_wide = false, has_fm = false, has_deep = false, has_cross = false, has_dlrm = false;
  int d0 = 0;  // deep input width: fields * dim + dense
  size_t bias = 0, wd = 0, vd = 0;
  std::vector<Linear> cross;
  Mlp deep, bottom, top;
  int vecs = 0;   // DLRM: vectors interacting (fields + bottom output)
  int pairs = 0;  // DLRM: vecs * (vecs - 1) / 2

  // Inference packing: every dense layer back to back.
  size_t PackedSize() const {
    size_t n = deep.packed_size() + bottom.packed_size() + top.packed_size();
    for (const auto& c : cross) n += c.packed_size();
    return n;
  }
  void Pack(const float* P, float* out) const {
    for (const auto& c : cross) {
      c.Pack(P, out);
      out += c.packed_size();
    }
    for (const Mlp* m : {&deep, &bottom, &top}) {
      m->Pack(P, out);
      out += m->packed_size();
    }
  }
};

namespace {

// The optimizer settings of the table named `table` under `cfg`.
Result<SparseOptimizerConfig> TableOptimizer(const TrainConfig& cfg, const std::string& table) {
  const bool wide = table == "wide";
  SparseOptimizerConfig o;
  EMBARK_ASSIGN_OR_RETURN(o.kind, ParseSparseOpt(wide ? cfg.wide_optimizer : cfg.sparse_optimizer));
  o.lr = wide ? cfg.wide_lr : cfg.sparse_lr;
  o.l2 = cfg.sparse_l2;
  o.l1 = cfg.ftrl_l1;
  o.initial_accumulator = cfg.adagrad_init;
  return o;
}

}  // namespace

Model::Model(const TrainConfig& cfg, const DataSpec& spec) : cfg_(cfg), spec_(spec), parts_(std::make_unique<Parts>()) {}
Model::~Model() = default;

Result<std::unique_ptr<Model>> Model::Create(const TrainConfig& cfg, const DataSpec& spec) {
  std::unique_ptr<Model> m(new Model(cfg, spec));
  Parts& p = *m->parts_;
  const std::string& name = cfg.model;
  p.has_wide = name == "lr" || name == "fm" || name == "deepfm" || name == "wdl";
  p.has_fm = name == "fm" || name == "deepfm";
  p.has_deep = name == "deepfm" || name == "wdl" || name == "dcnv2";
  p.has_cross = name == "dcnv2";
  p.has_dlrm = name == "dlrm";
  if (!p.has_wide && !p.has_deep && !p.has_dlrm) return Status::InvalidArgument("unknown model '" + name + "'");
  const int F = spec.num_fields, D = cfg.embedding_dim, nd = spec.num_dense;
  uint64_t seed = cfg.seed;
  ParamSet& ps = m->params_;

  if (p.has_wide) {
    TableConfig tc;
    tc.dim = 1;
    tc.init_scale = 0;
    tc.seed = seed;
    EMBARK_ASSIGN_OR_RETURN(tc.opt, TableOptimizer(cfg, "wide"));
    tc.name = "wide";
    m->wide_ = static_cast<int>(m->tables_.size());
    m->tables_.push_back(NewMemoryStore(tc));
    p.bias = ps.Add("wide.bias", 1);
    p.wd = ps.Add("wide.dense", nd);
  }
  if (name != "lr") {
    TableConfig tc;
    tc.dim = D;
    tc.init_scale = cfg.init_scale;
    tc.seed = seed;
    EMBARK_ASSIGN_OR_RETURN(tc.opt, TableOptimizer(cfg, "embeddings"));
    tc.name = "embeddings";
    m->emb_ = static_cast<int>(m->tables_.size());
    m->tables_.push_back(NewMemoryStore(tc));
  }
  if (p.has_fm) {
    p.vd = ps.Add("fm.dense_factors", static_cast<size_t>(nd) * D);
    float* v = ps.data() + p.vd;
    uint64_t s = Mix64(seed ^ 0xF00D);
    for (int i = 0; i < nd * D; ++i) {
      s = Mix64(s);
      v[i] = cfg.init_scale * (2 * UnitFloat(s) - 1);
    }
  }
  if (p.has_deep) {
    p.d0 = F * D + nd;
    if (p.has_cross)
      for (int l = 0; l < cfg.cross_layers; ++l)
        p.cross.emplace_back(&ps, "cross." + std::to_string(l), p.d0, p.d0, Mix64(seed + 100 + l));
    std::vector<int> sizes = cfg.mlp;
    sizes.push_back(1);
    p.deep = Mlp(&ps, "deep", p.d0, sizes, false, Mix64(seed + 200));
  }
  std::vector<RowStore*> stores;
  for (auto& t : m->tables_) stores.push_back(t.get());
  m->rows_ = StoreAccess(std::move(stores));
  if (p.has_dlrm) {
    p.vecs = F + (nd > 0 ? 1 : 0);
    if (p.vecs < 2)
      return Status::InvalidArgument("dlrm needs at least two interacting vectors (numeric fields count as one); "
                                     "this data has " + std::to_string(F) + " sparse field(s) and " +
                                     std::to_string(nd) + " numeric: use fm or deepfm");
    p.pairs = p.vecs * (p.vecs - 1) / 2;
    if (nd > 0) {
      std::vector<int> sizes = cfg.bottom_mlp;
      sizes.push_back(D);
      p.bottom = Mlp(&ps, "bottom", nd, sizes, true, Mix64(seed + 300));
    }
    std::vector<int> sizes = cfg.top_mlp;
    sizes.push_back(1);
    p.top = Mlp(&ps, "top", (nd > 0 ? D : 0) + p.pairs, sizes, false, Mix64(seed + 400));
  }
  return m;
}

std::unique_ptr<Workspace> Model::NewWorkspace() const { return std::make_unique<Workspace>(); }

Status Model::Reconfigure(const TrainConfig& cfg) {
  EMBARK_RETURN_IF_ERROR(CheckFixedParams(cfg_, cfg));
  for (auto& t : tables_) {
    EMBARK_ASSIGN_OR_RETURN(SparseOptimizerConfig o, TableOptimizer(cfg, t->config().name));
    EMBARK_RETURN_IF_ERROR(t->SetOptimizer(o));
  }
  cfg_ = cfg;  // what a checkpoint of this run records
  return Status::OK();
}

int Model::table_index(const std::string& name) const {
  for (int i = 0; i < num_tables(); ++i)
    if (tables_[i]->config().name == name) return i;
  return -1;
}

void Model::FreezeForInference() {
  frozen_.resize(parts_->PackedSize());
  parts_->Pack(params_.data(), frozen_.data());
}

namespace {

// Maps each feature key to a dense index of unique keys (per call).
void Dedup(const uint64_t* keys, size_t n, Workspace* ws) {
  size_t cap = 16;
  while (cap < 2 * n) cap <<= 1;
  if (ws->dedup_keys.size() < cap) {
    ws->dedup_keys.assign(cap, 0);
    ws->dedup_val.assign(cap, 0);
    ws->dedup_stamp.assign(cap, 0);
    ws->stamp = 0;
  }
  const size_t mask = ws->dedup_keys.size() - 1;
  if (++ws->stamp == 0) {
    std::fill(ws->dedup_stamp.begin(), ws->dedup_stamp.end(), 0);
    ws->stamp = 1;
  }
  ws->ukeys.clear();
  ws->fidx.resize(n);
  for (size_t i = 0; i < n; ++i) {
    uint64_t k = keys[i];
    size_t h = Mix64(k) & mask;
    while (ws->dedup_stamp[h] == ws->stamp && ws->dedup_keys[h] != k) h = (h + 1) & mask;
    if (ws->dedup_stamp[h] != ws->stamp) {
      ws->dedup_stamp[h] = ws->stamp;
      ws->dedup_keys[h] = k;
      ws->dedup_val[h] = static_cast<uint32_t>(ws->ukeys.size());
      ws->ukeys.push_back(k);
    }
    ws->fidx[i] = ws->dedup_val[h];
  }
}

void Zero(std::vector<float>* v, size_t n) { v->assign(n, 0.0f); }

// Samples [begin, end) of a batch as the passes read them.
struct SubBatch {
  int F, nd, B;
  const uint32_t* off;  // [B * F + 1] offsets into the batch's features
  uint32_t p0;          // the first feature of the range
  const float* vals;    // feature values from p0
  const float* dense;   // [B * nd]
  SubBatch(const Batch& batch, const DataSpec& spec, size_t begin, size_t end)
      : F(spec.num_fields),
        nd(spec.num_dense),
        B(static_cast<int>(end - begin)),
        off(batch.offsets.data() + begin * F),
        p0(off[0]),
        vals(batch.values.data() + p0),
        dense(batch.dense.data() + begin * nd) {}
  size_t features() const { return off[static_cast<size_t>(B) * F] - p0; }
};

}  // namespace

namespace {

double Now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

// Adds the seconds from construction (or the last Lap) to *into when it ends.
class PhaseTimer {
 public:
  explicit PhaseTimer(double* into) : into_(into), t_(Now()) {}
  ~PhaseTimer() { *into_ += Now() - t_; }
  void Lap(double* into) {
    const double t = Now();
    *into_ += t - t_;
    into_ = into;
    t_ = t;
  }

 private:
  double* into_;
  double t_;
};

}  // namespace

double Model::TrainFlopsPerSample() const {
  const Parts& p = *parts_;
  const double D = cfg_.embedding_dim, F = spec_.num_fields, nd = spec_.num_dense;
  double macs = static_cast<double>(p.deep.macs() + p.bottom.macs() + p.top.macs());
  for (const auto& c : p.cross) macs += static_cast<double>(c.in()) * c.out();
  if (p.has_dlrm) macs += static_cast<double>(p.pairs) * D;
  if (p.has_fm) macs += (F + nd) * D;
  return 3 * 2 * macs;
}

Status Model::Forward(const Batch& batch, size_t begin, size_t end, bool train, RowAccess* rows, Workspace* ws,
                      float* logits) const {
  PhaseTimer timer(&ws->seconds.lookup);
  if (rows == nullptr) {
    if (train) return Status::InvalidArgument("Model::Forward: training needs a RowAccess");
    rows = const_cast<StoreAccess*>(&rows_);  // read-only: Access::kRead changes nothing
  }
  const Parts& p = *parts_;
  const SubBatch sb(batch, spec_, begin, end);
  const auto& [F, nd, B, off, p0, vals, dense] = sb;
  const int D = cfg_.embedding_dim;
  const float* P = params_.data();

  Dedup(batch.keys.data() + p0, sb.features(), ws);
  const size_t U = ws->ukeys.size();
  ws->d_rows.clear();  // no sparse gradients until Backward
  ws->d_w1.clear();
  if (emb_ >= 0) {
    ws->rows.resize(U * D);
    EMBARK_RETURN_IF_ERROR(rows->Gather(emb_, ws->ukeys.data(), U, ws->rows.data(), train));
  }
  if (wide_ >= 0) {
    ws->w1.resize(U);
    EMBARK_RETURN_IF_ERROR(rows->Gather(wide_, ws->ukeys.data(), U, ws->w1.data(), train));
  }
  timer.Lap(&ws->seconds.forward);
  std::fill(logits, logits + B, 0.0f);

  // Inference weights, in the order Parts::Pack lays them out.
  const float* pk = nullptr;
  if (!train) {
    if (frozen_.empty()) {
      ws->packed.resize(p.PackedSize());
      p.Pack(P, ws->packed.data());
      pk = ws->packed.data();
    } else {
      pk = frozen_.data();
    }
  }

  if (p.has_wide) {
    for (int b = 0; b < B; ++b) {
      float z = P[p.bias];
      for (uint32_t q = off[b * F] - p0; q < off[(b + 1) * F] - p0; ++q) z += vals[q] * ws->w1[ws->fidx[q]];
      for (int i = 0; i < nd; ++i) z += dense[b * nd + i] * P[p.wd + i];
      logits[b] += z;
    }
  }
  if (p.has_fm) {
    ws->fm_sum.resize(static_cast<size_t>(B) * D);
    const float* vd = P + p.vd;
    for (int b = 0; b < B; ++b) {
      float* s = ws->fm_sum.data() + static_cast<size_t>(b) * D;
      std::fill(s, s + D, 0.0f);
      float sq = 0;
      for (uint32_t q = off[b * F] - p0; q < off[(b + 1) * F] - p0; ++q) {
        const float* r = ws->rows.data() + static_cast<size_t>(ws->fidx[q]) * D;
        for (int d = 0; d < D; ++d) {
          float t = vals[q] * r[d];
          s[d] += t;
          sq += t * t;
        }
      }
      for (int i = 0; i < nd; ++i) {
        float x = dense[b * nd + i];
        for (int d = 0; d < D; ++d) {
          float t = x * vd[i * D + d];
          s[d] += t;
          sq += t * t;
        }
      }
      float ss = 0;
      for (int d = 0; d < D; ++d) ss += s[d] * s[d];
      logits[b] += 0.5f * (ss - sq);
    }
  }
  if (!p.has_deep && !p.has_dlrm) return Status::OK();

  // Field embeddings pooled per (sample, field): E[b, f, :] = sum value * row.
  Zero(&ws->E, static_cast<size_t>(B) * F * D);
  for (int bf = 0; bf < B * F; ++bf) {
    float* e = ws->E.data() + static_cast<size_t>(bf) * D;
    for (uint32_t q = off[bf] - p0; q < off[bf + 1] - p0; ++q) {
      const float* r = ws->rows.data() + static_cast<size_t>(ws->fidx[q]) * D;
      for (int d = 0; d < D; ++d) e[d] += vals[q] * r[d];
    }
  }

  if (p.has_deep) {
    const int d0 = p.d0;
    ws->x0.resize(static_cast<size_t>(B) * d0);
    for (int b = 0; b < B; ++b) {
      std::memcpy(ws->x0.data() + static_cast<size_t>(b) * d0, ws->E.data() + static_cast<size_t>(b) * F * D,
                  sizeof(float) * F * D);
      std::memcpy(ws->x0.data() + static_cast<size_t>(b) * d0 + F * D, dense + b * nd, sizeof(float) * nd);
    }
    const float* x = ws->x0.data();
    const size_t L = p.cross.size();
    ws->xs.resize(L + 1);
    ws->us.resize(L);
    for (size_t l = 0; l < L; ++l) {
      auto& u = ws->us[l];
      auto& next = ws->xs[l + 1];
      u.resize(static_cast<size_t>(B) * d0);
      next.resize(u.size());
      p.cross[l].Forward(P, x, B, u.data(), false, pk);
      if (pk) pk += p.cross[l].packed_size();
      for (size_t i = 0; i < u.size(); ++i) next[i] = ws->x0[i] * u[i] + x[i];
      x = next.data();
    }
    const float* out = p.deep.Forward(P, x, B, &ws->deep, pk);
    for (int b = 0; b < B; ++b) logits[b] += out[b];
  }

  if (p.has_dlrm) {
    const int V = p.vecs, lead = nd > 0 ? D : 0, width = lead + p.pairs;
    ws->T.resize(static_cast<size_t>(B) * V * D);
    if (pk) pk += p.deep.packed_size();
    const float* z = nd > 0 ? p.bottom.Forward(P, dense, B, &ws->bottom, pk) : nullptr;
    if (pk) pk += p.bottom.packed_size();
    ws->top_in.resize(static_cast<size_t>(B) * width);
    for (int b = 0; b < B; ++b) {
      float* t = ws->T.data() + static_cast<size_t>(b) * V * D;
      if (nd > 0) std::memcpy(t, z + static_cast<size_t>(b) * D, sizeof(float) * D);
      std::memcpy(t + lead, ws->E.data() + static_cast<size_t>(b) * F * D, sizeof(float) * F * D);
      float* in = ws->top_in.data() + static_cast<size_t>(b) * width;
      if (nd > 0) std::memcpy(in, z + static_cast<size_t>(b) * D, sizeof(float) * D);
      int k = lead;
      for (int i = 0; i < V; ++i)
        for (int j = i + 1; j < V; ++j) {
          float dot = 0;
          for (int d = 0; d < D; ++d) dot += t[i * D + d] * t[j * D + d];
          in[k++] = dot;
        }
    }
    const float* out = p.top.Forward(P, ws->top_in.data(), B, &ws->top, pk);
    for (int b = 0; b < B; ++b) logits[b] += out[b];
  }
  return Status::OK();
}

void Model::Backward(const Batch& batch, size_t begin, size_t end, const float* dl, Workspace* ws, float* g) const {
  PhaseTimer timer(&ws->seconds.backward);
  const Parts& p = *parts_;
  const SubBatch sb(batch, spec_, begin, end);
  const auto& [F, nd, B, off, p0, vals, dense] = sb;
  const int D = cfg_.embedding_dim;
  const float* P = params_.data();
  const size_t U = ws->ukeys.size();

  if (wide_ >= 0) {
    Zero(&ws->d_w1, U);
    for (int b = 0; b < B; ++b) {
      g[p.bias] += dl[b];
      for (int i = 0; i < nd; ++i) g[p.wd + i] += dl[b] * dense[b * nd + i];
      for (uint32_t q = off[b * F] - p0; q < off[(b + 1) * F] - p0; ++q) ws->d_w1[ws->fidx[q]] += dl[b] * vals[q];
    }
  }
  if (emb_ >= 0) Zero(&ws->d_rows, U * D);
  if (p.has_fm) {
    const float* vd = P + p.vd;
    for (int b = 0; b < B; ++b) {
      const float* s = ws->fm_sum.data() + static_cast<size_t>(b) * D;
      for (uint32_t q = off[b * F] - p0; q < off[(b + 1) * F] - p0; ++q) {
        const float* r = ws->rows.data() + static_cast<size_t>(ws->fidx[q]) * D;
        float* dr = ws->d_rows.data() + static_cast<size_t>(ws->fidx[q]) * D;
        const float c = dl[b] * vals[q];
        for (int d = 0; d < D; ++d) dr[d] += c * (s[d] - vals[q] * r[d]);
      }
      for (int i = 0; i < nd; ++i) {
        const float x = dense[b * nd + i];
        for (int d = 0; d < D; ++d) g[p.vd + i * D + d] += dl[b] * x * (s[d] - x * vd[i * D + d]);
      }
    }
  }
  if (!p.has_deep && !p.has_dlrm) return;

  Zero(&ws->dE, static_cast<size_t>(B) * F * D);
  if (p.has_deep) {
    const int d0 = p.d0;
    const size_t L = p.cross.size();
    ws->dtop.assign(dl, dl + B);
    ws->dx.resize(static_cast<size_t>(B) * d0);
    const float* xL = L > 0 ? ws->xs[L].data() : ws->x0.data();
    p.deep.Backward(P, xL, B, &ws->deep, ws->dtop.data(), g, ws->dx.data());
    if (L > 0) {
      Zero(&ws->dx0, ws->dx.size());
      ws->tmp.resize(ws->dx.size());
      std::vector<float>& du = ws->du;
      du.resize(ws->dx.size());
      for (size_t l = L; l-- > 0;) {
        const float* xl = l == 0 ? ws->x0.data() : ws->xs[l].data();
        const auto& u = ws->us[l];
        for (size_t i = 0; i < du.size(); ++i) {
          du[i] = ws->dx[i] * ws->x0[i];
          ws->dx0[i] += ws->dx[i] * u[i];
        }
        p.cross[l].Backward(P, xl, du.data(), B, g, ws->tmp.data());
        for (size_t i = 0; i < du.size(); ++i) ws->dx[i] += ws->tmp[i];
      }
      for (size_t i = 0; i < du.size(); ++i) ws->dx[i] += ws->dx0[i];
    }
    for (int b = 0; b < B; ++b)
      for (int k = 0; k < F * D; ++k)
        ws->dE[static_cast<size_t>(b) * F * D + k] += ws->dx[static_cast<size_t>(b) * d0 + k];
  }
  if (p.has_dlrm) {
    const int V = p.vecs, lead = nd > 0 ? D : 0, width = lead + p.pairs;
    ws->dtop.assign(dl, dl + B);
    ws->dtop_in.resize(static_cast<size_t>(B) * width);
    p.top.Backward(P, ws->top_in.data(), B, &ws->top, ws->dtop.data(), g, ws->dtop_in.data());
    Zero(&ws->dT, static_cast<size_t>(B) * V * D);
    for (int b = 0; b < B; ++b) {
      const float* t = ws->T.data() + static_cast<size_t>(b) * V * D;
      float* dt = ws->dT.data() + static_cast<size_t>(b) * V * D;
      const float* din = ws->dtop_in.data() + static_cast<size_t>(b) * width;
      for (int d = 0; d < lead; ++d) dt[d] += din[d];
      int k = lead;
      for (int i = 0; i < V; ++i)
        for (int j = i + 1; j < V; ++j) {
          const float c = din[k++];
          for (int d = 0; d < D; ++d) {
            dt[i * D + d] += c * t[j * D + d];
            dt[j * D + d] += c * t[i * D + d];
          }
        }
      for (int k2 = 0; k2 < F * D; ++k2) ws->dE[static_cast<size_t>(b) * F * D + k2] += dt[lead + k2];
    }
    if (nd > 0) {
      // The bottom MLP's output gradient is the first vector of dT.
      ws->tmp.resize(static_cast<size_t>(B) * D);
      for (int b = 0; b < B; ++b)
        std::memcpy(ws->tmp.data() + static_cast<size_t>(b) * D, ws->dT.data() + static_cast<size_t>(b) * V * D,
                    sizeof(float) * D);
      p.bottom.Backward(P, dense, B, &ws->bottom, ws->tmp.data(), g, nullptr);
    }
  }
  // Scatter pooled-field gradients back to the rows they came from.
  for (int bf = 0; bf < B * F; ++bf) {
    const float* de = ws->dE.data() + static_cast<size_t>(bf) * D;
    for (uint32_t q = off[bf] - p0; q < off[bf + 1] - p0; ++q) {
      float* dr = ws->d_rows.data() + static_cast<size_t>(ws->fidx[q]) * D;
      for (int d = 0; d < D; ++d) dr[d] += vals[q] * de[d];
    }
  }
}

Status Model::ApplySparse(Workspace* ws, float scale, RowAccess* rows) const {
  PhaseTimer timer(&ws->seconds.update);
  const size_t U = ws->ukeys.size();
  if ((emb_ >= 0 && ws->d_rows.size() != U * static_cast<size_t>(cfg_.embedding_dim)) ||
      (wide_ >= 0 && ws->d_w1.size() != U))
    return Status::InvalidArgument("Model::ApplySparse: the workspace holds no Backward of its last Forward");
  if (scale != 1.0f) {
    for (auto& g : ws->d_rows) g *= scale;
    for (auto& g : ws->d_w1) g *= scale;
  }
  if (emb_ >= 0) EMBARK_RETURN_IF_ERROR(rows->Scatter(emb_, ws->ukeys.data(), U, ws->d_rows.data()));
  if (wide_ >= 0) EMBARK_RETURN_IF_ERROR(rows->Scatter(wide_, ws->ukeys.data(), U, ws->d_w1.data()));
  return Status::OK();
}

Model::SparseGrads Model::LastSparseGrads(const Workspace& ws) const { return {&ws.ukeys, &ws.d_rows, &ws.d_w1}; }

}  // namespace embark
