#include "model/parts.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "util/hash.h"

namespace embark {
namespace {

void Zero(std::vector<float>* v, size_t n) { v->assign(n, 0.0f); }

}  // namespace

// ---- First-order term ----------------------------------------------------

FirstOrderTerm::FirstOrderTerm(ParamSet* ps, int table, int num_dense) : Part(PartKind::kFirstOrder), table_(table) {
  bias_ = ps->Add("first_order.bias", 1);
  wd_ = ps->Add("first_order.dense", num_dense);
}

void FirstOrderTerm::Forward(const Pass& x, const float*, PartScratch*, float* logits) const {
  const float* P = x.P;
  const float* w1 = x.rows(table_);
  const int nd = x.nd;
  for (int b = 0; b < x.B; ++b) {
    float z = P[bias_];
    for (uint32_t q = x.begin(b); q < x.end(b); ++q) z += x.vals[q] * w1[x.fidx[q]];
    for (int i = 0; i < nd; ++i) z += x.dense[b * nd + i] * P[wd_ + i];
    logits[b] += z;
  }
}

void FirstOrderTerm::Backward(const Pass& x, const float* dl, PartScratch*, float* g) const {
  float* dw = x.grads(table_);
  const int nd = x.nd;
  for (int b = 0; b < x.B; ++b) {
    g[bias_] += dl[b];
    for (int i = 0; i < nd; ++i) g[wd_ + i] += dl[b] * x.dense[b * nd + i];
    for (uint32_t q = x.begin(b); q < x.end(b); ++q) dw[x.fidx[q]] += dl[b] * x.vals[q];
  }
}

// ---- FM pairwise term ----------------------------------------------------

namespace {
struct FmScratch : PartScratch {
  FmScratch() : PartScratch(PartKind::kFm) {}
  std::vector<float> sum;  // [B, D]: the sum of every feature's and numeric field's vector
};
}  // namespace

FmTerm::FmTerm(ParamSet* ps, int table, int fields, int dim, int num_dense, float init_scale, uint64_t seed)
    : Part(PartKind::kFm), table_(table), F_(fields), D_(dim), nd_(num_dense) {
  vd_ = ps->Add("fm.dense_factors", static_cast<size_t>(nd_) * D_);
  float* v = ps->data() + vd_;
  uint64_t s = Mix64(seed ^ 0xF00D);
  for (int i = 0; i < nd_ * D_; ++i) {
    s = Mix64(s);
    v[i] = init_scale * (2 * UnitFloat(s) - 1);
  }
}

std::unique_ptr<PartScratch> FmTerm::NewScratch() const { return std::make_unique<FmScratch>(); }

double FmTerm::macs() const { return (static_cast<double>(F_) + nd_) * D_; }

void FmTerm::Forward(const Pass& x, const float*, PartScratch* scratch, float* logits) const {
  auto& st = *static_cast<FmScratch*>(scratch);
  const int B = x.B, D = D_, nd = x.nd;
  const float* rows = x.rows(table_);
  const float* vd = x.P + vd_;
  st.sum.resize(static_cast<size_t>(B) * D);
  for (int b = 0; b < B; ++b) {
    float* s = st.sum.data() + static_cast<size_t>(b) * D;
    std::fill(s, s + D, 0.0f);
    float sq = 0;
    for (uint32_t q = x.begin(b); q < x.end(b); ++q) {
      const float* r = rows + static_cast<size_t>(x.fidx[q]) * D;
      for (int d = 0; d < D; ++d) {
        float t = x.vals[q] * r[d];
        s[d] += t;
        sq += t * t;
      }
    }
    for (int i = 0; i < nd; ++i) {
      float v = x.dense[b * nd + i];
      for (int d = 0; d < D; ++d) {
        float t = v * vd[i * D + d];
        s[d] += t;
        sq += t * t;
      }
    }
    float ss = 0;
    for (int d = 0; d < D; ++d) ss += s[d] * s[d];
    logits[b] += 0.5f * (ss - sq);
  }
}

void FmTerm::Backward(const Pass& x, const float* dl, PartScratch* scratch, float* g) const {
  const auto& st = *static_cast<const FmScratch*>(scratch);
  const int B = x.B, D = D_, nd = x.nd;
  const float* rows = x.rows(table_);
  float* drows = x.grads(table_);
  const float* vd = x.P + vd_;
  for (int b = 0; b < B; ++b) {
    const float* s = st.sum.data() + static_cast<size_t>(b) * D;
    for (uint32_t q = x.begin(b); q < x.end(b); ++q) {
      const float* r = rows + static_cast<size_t>(x.fidx[q]) * D;
      float* dr = drows + static_cast<size_t>(x.fidx[q]) * D;
      const float c = dl[b] * x.vals[q];
      for (int d = 0; d < D; ++d) dr[d] += c * (s[d] - x.vals[q] * r[d]);
    }
    for (int i = 0; i < nd; ++i) {
      const float v = x.dense[b * nd + i];
      for (int d = 0; d < D; ++d) g[vd_ + i * D + d] += dl[b] * v * (s[d] - v * vd[i * D + d]);
    }
  }
}

// ---- Deep tower ----------------------------------------------------------

namespace {
struct DeepScratch : PartScratch {
  DeepScratch() : PartScratch(PartKind::kDeep) {}
  std::vector<float> x0;                   // [B, d0]: pooled fields then numeric values
  std::vector<std::vector<float>> xs, us;  // cross layers: inputs x_1..x_L, and W x_l + b
  Mlp::State deep;
  std::vector<float> dtop, dx, dx0, du, tmp;
};
}  // namespace

DeepTower::DeepTower(ParamSet* ps, int fields, int dim, int num_dense, int cross_layers, const std::vector<int>& mlp,
                     uint64_t seed)
    : Part(PartKind::kDeep), F_(fields), D_(dim), nd_(num_dense), d0_(fields * dim + num_dense) {
  for (int l = 0; l < cross_layers; ++l)
    cross_.emplace_back(ps, "cross." + std::to_string(l), d0_, d0_, Mix64(seed + 100 + l));
  std::vector<int> sizes = mlp;
  sizes.push_back(1);
  deep_ = Mlp(ps, "deep", d0_, sizes, false, Mix64(seed + 200));
}

std::unique_ptr<PartScratch> DeepTower::NewScratch() const { return std::make_unique<DeepScratch>(); }

double DeepTower::macs() const {
  double macs = static_cast<double>(deep_.macs());
  for (const auto& c : cross_) macs += static_cast<double>(c.in()) * c.out();
  return macs;
}

size_t DeepTower::packed_size() const {
  size_t n = deep_.packed_size();
  for (const auto& c : cross_) n += c.packed_size();
  return n;
}

void DeepTower::Pack(const float* P, float* out) const {
  for (const auto& c : cross_) {
    c.Pack(P, out);
    out += c.packed_size();
  }
  deep_.Pack(P, out);
}

void DeepTower::Forward(const Pass& x, const float* pk, PartScratch* scratch, float* logits) const {
  auto& st = *static_cast<DeepScratch*>(scratch);
  const int B = x.B, F = F_, D = D_, nd = nd_, d0 = d0_;
  const float* P = x.P;
  const float* E = x.ws->E.data();
  st.x0.resize(static_cast<size_t>(B) * d0);
  for (int b = 0; b < B; ++b) {
    std::memcpy(st.x0.data() + static_cast<size_t>(b) * d0, E + static_cast<size_t>(b) * F * D,
                sizeof(float) * F * D);
    std::memcpy(st.x0.data() + static_cast<size_t>(b) * d0 + F * D, x.dense + b * nd, sizeof(float) * nd);
  }
  const float* h = st.x0.data();
  const size_t L = cross_.size();
  st.xs.resize(L + 1);
  st.us.resize(L);
  for (size_t l = 0; l < L; ++l) {
    auto& u = st.us[l];
    auto& next = st.xs[l + 1];
    u.resize(static_cast<size_t>(B) * d0);
    next.resize(u.size());
    if (pk) {
      cross_[l].Infer(P, h, B, u.data(), false, pk);
      pk += cross_[l].packed_size();
    } else {
      cross_[l].Forward(&x.ws->gemm, P, h, B, u.data(), false);
    }
    for (size_t i = 0; i < u.size(); ++i) next[i] = st.x0[i] * u[i] + h[i];
    h = next.data();
  }
  const float* out = pk ? deep_.Infer(P, h, B, &st.deep, pk) : deep_.Forward(&x.ws->gemm, P, h, B, &st.deep);
  for (int b = 0; b < B; ++b) logits[b] += out[b];
}

void DeepTower::Backward(const Pass& x, const float* dl, PartScratch* scratch, float* g) const {
  auto& st = *static_cast<DeepScratch*>(scratch);
  const int B = x.B, F = F_, D = D_, d0 = d0_;
  const float* P = x.P;
  const size_t L = cross_.size();
  st.dtop.assign(dl, dl + B);
  st.dx.resize(static_cast<size_t>(B) * d0);
  const float* xL = L > 0 ? st.xs[L].data() : st.x0.data();
  deep_.Backward(&x.ws->gemm, P, xL, B, &st.deep, st.dtop.data(), g, st.dx.data());
  if (L > 0) {
    Zero(&st.dx0, st.dx.size());
    st.tmp.resize(st.dx.size());
    std::vector<float>& du = st.du;
    du.resize(st.dx.size());
    for (size_t l = L; l-- > 0;) {
      const float* xl = l == 0 ? st.x0.data() : st.xs[l].data();
      const auto& u = st.us[l];
      for (size_t i = 0; i < du.size(); ++i) {
        du[i] = st.dx[i] * st.x0[i];
        st.dx0[i] += st.dx[i] * u[i];
      }
      cross_[l].Backward(&x.ws->gemm, P, xl, du.data(), B, g, st.tmp.data());
      for (size_t i = 0; i < du.size(); ++i) st.dx[i] += st.tmp[i];
    }
    for (size_t i = 0; i < du.size(); ++i) st.dx[i] += st.dx0[i];
  }
  float* dE = x.ws->dE.data();
  for (int b = 0; b < B; ++b)
    for (int k = 0; k < F * D; ++k) dE[static_cast<size_t>(b) * F * D + k] += st.dx[static_cast<size_t>(b) * d0 + k];
}

// ---- DLRM dot interaction ------------------------------------------------

namespace {
struct DotScratch : PartScratch {
  DotScratch() : PartScratch(PartKind::kDotInteraction) {}
  std::vector<float> T;       // [B, V, D]: the bottom output (when numeric fields) then the pooled fields
  std::vector<float> top_in;  // [B, lead + pairs]: the bottom output then the dot products
  Mlp::State bottom, top;
  std::vector<float> dtop, dtop_in, dT, tmp;
};
}  // namespace

DotInteraction::DotInteraction(ParamSet* ps, int fields, int dim, int num_dense, const std::vector<int>& bottom_mlp,
                               const std::vector<int>& top_mlp, uint64_t seed)
    : Part(PartKind::kDotInteraction),
      F_(fields),
      D_(dim),
      nd_(num_dense),
      vecs_(Vectors(fields, num_dense)),
      pairs_(vecs_ * (vecs_ - 1) / 2) {
  if (nd_ > 0) {
    std::vector<int> sizes = bottom_mlp;
    sizes.push_back(D_);
    bottom_ = Mlp(ps, "bottom", nd_, sizes, true, Mix64(seed + 300));
  }
  std::vector<int> sizes = top_mlp;
  sizes.push_back(1);
  top_ = Mlp(ps, "top", (nd_ > 0 ? D_ : 0) + pairs_, sizes, false, Mix64(seed + 400));
}

std::unique_ptr<PartScratch> DotInteraction::NewScratch() const { return std::make_unique<DotScratch>(); }

double DotInteraction::macs() const {
  return static_cast<double>(bottom_.macs() + top_.macs()) + static_cast<double>(pairs_) * D_;
}

size_t DotInteraction::packed_size() const { return bottom_.packed_size() + top_.packed_size(); }

void DotInteraction::Pack(const float* P, float* out) const {
  bottom_.Pack(P, out);
  top_.Pack(P, out + bottom_.packed_size());
}

void DotInteraction::Forward(const Pass& x, const float* pk, PartScratch* scratch, float* logits) const {
  auto& st = *static_cast<DotScratch*>(scratch);
  const int B = x.B, F = F_, D = D_, nd = nd_;
  const int V = vecs_, lead = nd > 0 ? D : 0, width = lead + pairs_;
  const float* P = x.P;
  const float* E = x.ws->E.data();
  st.T.resize(static_cast<size_t>(B) * V * D);
  const float* z = nd == 0 ? nullptr
                   : pk   ? bottom_.Infer(P, x.dense, B, &st.bottom, pk)
                          : bottom_.Forward(&x.ws->gemm, P, x.dense, B, &st.bottom);
  if (pk) pk += bottom_.packed_size();
  st.top_in.resize(static_cast<size_t>(B) * width);
  for (int b = 0; b < B; ++b) {
    float* t = st.T.data() + static_cast<size_t>(b) * V * D;
    if (nd > 0) std::memcpy(t, z + static_cast<size_t>(b) * D, sizeof(float) * D);
    std::memcpy(t + lead, E + static_cast<size_t>(b) * F * D, sizeof(float) * F * D);
    float* in = st.top_in.data() + static_cast<size_t>(b) * width;
    if (nd > 0) std::memcpy(in, z + static_cast<size_t>(b) * D, sizeof(float) * D);
    int k = lead;
    for (int i = 0; i < V; ++i)
      for (int j = i + 1; j < V; ++j) {
        float dot = 0;
        for (int d = 0; d < D; ++d) dot += t[i * D + d] * t[j * D + d];
        in[k++] = dot;
      }
  }
  const float* out = pk ? top_.Infer(P, st.top_in.data(), B, &st.top, pk)
                        : top_.Forward(&x.ws->gemm, P, st.top_in.data(), B, &st.top);
  for (int b = 0; b < B; ++b) logits[b] += out[b];
}

void DotInteraction::Backward(const Pass& x, const float* dl, PartScratch* scratch, float* g) const {
  auto& st = *static_cast<DotScratch*>(scratch);
  const int B = x.B, F = F_, D = D_, nd = nd_;
  const int V = vecs_, lead = nd > 0 ? D : 0, width = lead + pairs_;
  const float* P = x.P;
  float* dE = x.ws->dE.data();
  st.dtop.assign(dl, dl + B);
  st.dtop_in.resize(static_cast<size_t>(B) * width);
  top_.Backward(&x.ws->gemm, P, st.top_in.data(), B, &st.top, st.dtop.data(), g, st.dtop_in.data());
  Zero(&st.dT, static_cast<size_t>(B) * V * D);
  for (int b = 0; b < B; ++b) {
    const float* t = st.T.data() + static_cast<size_t>(b) * V * D;
    float* dt = st.dT.data() + static_cast<size_t>(b) * V * D;
    const float* din = st.dtop_in.data() + static_cast<size_t>(b) * width;
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
    for (int k2 = 0; k2 < F * D; ++k2) dE[static_cast<size_t>(b) * F * D + k2] += dt[lead + k2];
  }
  if (nd > 0) {
    // The bottom MLP's output gradient is the first vector of dT.
    st.tmp.resize(static_cast<size_t>(B) * D);
    for (int b = 0; b < B; ++b)
      std::memcpy(st.tmp.data() + static_cast<size_t>(b) * D, st.dT.data() + static_cast<size_t>(b) * V * D,
                  sizeof(float) * D);
    bottom_.Backward(&x.ws->gemm, P, x.dense, B, &st.bottom, st.tmp.data(), g, nullptr);
  }
}

}  // namespace embark

// ---- Two towers ------------------------------------------------------------

namespace embark {
namespace {
struct TowerScratch : PartScratch {
  TowerScratch() : PartScratch(PartKind::kTwoTower) {}
  struct Side {
    std::vector<float> x;      // [B, in]: the tower's pooled fields then its numeric values
    Mlp::State mlp;
    std::vector<float> h;      // [B, T]: the MLP's output
    std::vector<float> norm;   // [B]: its L2 norm (when normalised)
    std::vector<float> dh, dx;
  } side[2];
};
// Below this norm a vector is not scaled up (an empty tower's output).
constexpr float kMinNorm = 1e-6f;
}  // namespace

TwoTowers::TwoTowers(ParamSet* ps, const Fields& fields, int dim, const std::vector<int>& mlp, int out,
                     bool normalize, uint64_t seed)
    : Part(PartKind::kTwoTower), fields_(fields), D_(dim), T_(out), normalize_(normalize) {
  std::vector<int> sizes = mlp;
  sizes.push_back(out);
  for (int s = 0; s < 2; ++s) {
    Tower& t = towers_[s];
    t.fields = s == 0 ? fields.user_fields : fields.item_fields;
    t.dense = s == 0 ? fields.user_dense : fields.item_dense;
    t.in = static_cast<int>(t.fields.size()) * dim + static_cast<int>(t.dense.size());
    t.mlp = Mlp(ps, s == 0 ? "user" : "item", t.in, sizes, false, Mix64(seed + 500 + s));
  }
}

std::unique_ptr<PartScratch> TwoTowers::NewScratch() const { return std::make_unique<TowerScratch>(); }

double TwoTowers::macs() const {
  return static_cast<double>(towers_[0].mlp.macs() + towers_[1].mlp.macs()) + T_;
}

size_t TwoTowers::packed_size() const { return towers_[0].mlp.packed_size() + towers_[1].mlp.packed_size(); }

void TwoTowers::Pack(const float* P, float* out) const {
  towers_[0].mlp.Pack(P, out);
  towers_[1].mlp.Pack(P, out + towers_[0].mlp.packed_size());
}

void TwoTowers::Forward(const Pass& x, const float* pk, PartScratch* scratch, float* out) const {
  auto& st = *static_cast<TowerScratch*>(scratch);
  const int B = x.B, F = x.F, D = D_, T = T_, nd = x.nd;
  const float* E = x.ws->E.data();
  for (int s = 0; s < 2; ++s) {
    const Tower& t = towers_[s];
    auto& sd = st.side[s];
    const int in = t.in;
    sd.x.resize(static_cast<size_t>(B) * in);
    for (int b = 0; b < B; ++b) {
      float* xb = sd.x.data() + static_cast<size_t>(b) * in;
      for (int f : t.fields) {
        std::memcpy(xb, E + (static_cast<size_t>(b) * F + f) * D, sizeof(float) * D);
        xb += D;
      }
      for (int d : t.dense) *xb++ = x.dense[static_cast<size_t>(b) * nd + d];
    }
    const float* h = pk ? t.mlp.Infer(x.P, sd.x.data(), B, &sd.mlp, pk) : t.mlp.Forward(&x.ws->gemm, x.P, sd.x.data(), B, &sd.mlp);
    if (pk) pk += t.mlp.packed_size();
    sd.h.assign(h, h + static_cast<size_t>(B) * T);
    sd.norm.assign(B, 1.0f);
    for (int b = 0; b < B; ++b) {
      const float* hb = sd.h.data() + static_cast<size_t>(b) * T;
      float* ob = out + static_cast<size_t>(b) * 2 * T + s * T;
      float scale = 1.0f;
      if (normalize_) {
        float ss = 0;
        for (int k = 0; k < T; ++k) ss += hb[k] * hb[k];
        sd.norm[b] = std::max(std::sqrt(ss), kMinNorm);
        scale = 1.0f / sd.norm[b];
      }
      for (int k = 0; k < T; ++k) ob[k] += hb[k] * scale;
    }
  }
}

void TwoTowers::Backward(const Pass& x, const float* dout, PartScratch* scratch, float* g) const {
  auto& st = *static_cast<TowerScratch*>(scratch);
  const int B = x.B, F = x.F, D = D_, T = T_;
  float* dE = x.ws->dE.data();
  for (int s = 0; s < 2; ++s) {
    const Tower& t = towers_[s];
    auto& sd = st.side[s];
    sd.dh.resize(static_cast<size_t>(B) * T);
    for (int b = 0; b < B; ++b) {
      const float* go = dout + static_cast<size_t>(b) * 2 * T + s * T;
      float* dh = sd.dh.data() + static_cast<size_t>(b) * T;
      if (!normalize_) {
        std::memcpy(dh, go, sizeof(float) * T);
        continue;
      }
      // y = h / |h|: dh = (g - (y . g) y) / |h|.
      const float* hb = sd.h.data() + static_cast<size_t>(b) * T;
      const float inv = 1.0f / sd.norm[b];
      float yg = 0;
      for (int k = 0; k < T; ++k) yg += hb[k] * inv * go[k];
      for (int k = 0; k < T; ++k) dh[k] = (go[k] - yg * hb[k] * inv) * inv;
    }
    sd.dx.resize(static_cast<size_t>(B) * t.in);
    t.mlp.Backward(&x.ws->gemm, x.P, sd.x.data(), B, &sd.mlp, sd.dh.data(), g, sd.dx.data());
    for (int b = 0; b < B; ++b) {
      const float* dx = sd.dx.data() + static_cast<size_t>(b) * t.in;
      for (int f : t.fields) {
        float* de = dE + (static_cast<size_t>(b) * F + f) * D;
        for (int d = 0; d < D; ++d) de[d] += dx[d];
        dx += D;
      }
    }
  }
}

}  // namespace embark
