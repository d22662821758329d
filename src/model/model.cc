#include "model/model.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>

#include "model/families/families.h"
#include "model/parts.h"
#include "tier/tiered_store.h"
#include "util/hash.h"

namespace embark {

Model::Model(const TrainConfig& cfg, const DataSpec& spec) : cfg_(cfg), spec_(spec) {}
Model::~Model() = default;

RowPrecision PrecisionOf(const TrainConfig& cfg) {
  return cfg.row_precision == "fp16"   ? RowPrecision::kFp16
         : cfg.row_precision == "int8" ? RowPrecision::kInt8
                                       : RowPrecision::kFp32;
}

StorageOptions StorageOptions::FromConfig(const TrainConfig& cfg, int rank, int ranks) {
  StorageOptions s;
  s.memory_budget = cfg.memory_budget;
  s.dir = cfg.table_dir;
  if (ranks > 1 && !s.dir.empty()) s.dir += "/rank-" + std::to_string(rank);
  s.policy.admit_min_count = static_cast<uint32_t>(cfg.admit_min_count);
  s.policy.admit_probability = cfg.admit_probability;
  s.policy.max_rows = static_cast<uint64_t>(cfg.max_rows);
  s.policy.ttl_steps = static_cast<uint32_t>(cfg.row_ttl);
  s.precision = PrecisionOf(cfg);
  return s;
}

Result<std::unique_ptr<Model>> Model::Create(const TrainConfig& cfg, const DataSpec& spec,
                                             const StorageOptions* storage_opt) {
  const StorageOptions storage = storage_opt ? *storage_opt : StorageOptions::FromConfig(cfg);
  const Family* family = FindFamily(cfg.model);
  if (family == nullptr)
    return Status::InvalidArgument("unknown model '" + cfg.model + "' (known: " + FamilyNames() + ")");
  std::unique_ptr<Model> m(new Model(cfg, spec));
  FamilyBuilder b(cfg, spec, &m->params_);
  // Training holds the dense weights about 2 + optimizer slots + threads
  // times over (gradients per thread and their sum): past half of this
  // machine's memory in weights alone, say so instead of failing to allocate.
  const uint64_t phys = static_cast<uint64_t>(::sysconf(_SC_PHYS_PAGES)) * static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
  const uint64_t limit = std::max<uint64_t>(phys / 2 / sizeof(float) / 4, 1u << 20);
  m->params_.set_limit(static_cast<size_t>(limit));
  try {
    EMBARK_RETURN_IF_ERROR(family->build(&b));
  } catch (const ParamLimitExceeded& e) {
    return Status::InvalidArgument(
        "model '" + cfg.model + "' would need " + std::to_string(e.requested) + " dense parameters (" +
        std::to_string(e.requested * sizeof(float) * 4 >> 20) + " MiB with gradients and optimizer state); this machine's " +
        std::to_string(phys >> 20) + " MiB allow at most " + std::to_string(limit) +
        ": use smaller layers (--mlp, --bottom-mlp, --top-mlp, --cross-layers) or a smaller --embedding-dim");
  }
  m->params_.set_limit(SIZE_MAX);

  std::vector<RowStore*> stores;
  std::vector<TableConfig> tcs;
  for (const TableDecl& t : b.tables()) {
    TableConfig tc;
    tc.name = t.name;
    tc.dim = t.dim;
    tc.init_scale = t.init_scale;
    tc.seed = cfg.seed;
    EMBARK_ASSIGN_OR_RETURN(tc.opt, t.optimizer(cfg));
    tc.policy = storage.policy;
    tc.precision = storage.precision;
    tcs.push_back(tc);
    m->table_optimizers_.push_back(t.optimizer);
  }
  // A budget is split between the tables by the RAM a cached row costs.
  double row_bytes = 0;
  for (const TableConfig& tc : tcs) row_bytes += tc.row_width() * sizeof(float) + kTierBytesPerCachedRow;
  for (const TableConfig& tc : tcs) {
    if (storage.memory_budget > 0) {
      if (tc.precision != RowPrecision::kFp32)
        return Status::InvalidArgument(
            std::string("row precision ") + (tc.precision == RowPrecision::kFp16 ? "fp16" : "int8") +
            " with a memory budget is not supported: the tiered store keeps fp32 rows (use one or the other)");
      if (storage.dir.empty())
        return Status::InvalidArgument("a memory budget keeps rows beyond it on disk: give a table directory");
      TierOptions to;
      to.memory_budget = static_cast<uint64_t>(static_cast<double>(storage.memory_budget) *
                                               (tc.row_width() * sizeof(float) + kTierBytesPerCachedRow) / row_bytes);
      to.dir = storage.dir + "/" + tc.name;
      EMBARK_ASSIGN_OR_RETURN(auto store, NewTieredStore(tc, to));
      m->tables_.push_back(std::move(store));
      m->tiered_ = true;
    } else {
      m->tables_.push_back(NewMemoryStore(tc));
    }
    stores.push_back(m->tables_.back().get());
  }
  m->rows_ = StoreAccess(std::move(stores));
  EMBARK_RETURN_IF_ERROR(m->AdoptParts(&b));
  return m;
}

Status Model::AdoptParts(FamilyBuilder* b) {
  parts_ = std::move(b->parts());
  bool pools = false;
  for (auto& p : parts_) {
    p->set_packed_offset(packed_size_);
    packed_size_ += p->packed_size();
    pools = pools || p->reads_pooled();
  }
  const int pooled = b->pooled();
  if (pools && (pooled < 0 || pooled >= num_tables()))
    return Status::InvalidArgument("model '" + cfg_.model + "': a part reads pooled embeddings, but no table is pooled");
  if (pools) pooled_ = pooled;
  outputs_ = b->outputs();
  tower_dim_ = b->tower_dim();
  item_id_field_ = b->item_id_field();
  return Status::OK();
}

Result<std::unique_ptr<Model>> Model::ShareTables() const {
  const Family* family = FindFamily(cfg_.model);
  if (family == nullptr) return Status::InvalidArgument("unknown model '" + cfg_.model + "'");
  std::unique_ptr<Model> m(new Model(cfg_, spec_));
  // The family builds the same parts and parameter layout again (the
  // config is this model's, so it fits); the tables are this model's.
  FamilyBuilder b(cfg_, spec_, &m->params_);
  EMBARK_RETURN_IF_ERROR(family->build(&b));
  if (m->params_.size() != params_.size() || b.tables().size() != tables_.size())
    return Status::InvalidArgument("Model::ShareTables: model '" + cfg_.model + "' built a different shape");
  std::copy(params_.data(), params_.data() + params_.size(), m->params_.data());
  m->tables_ = tables_;
  m->tiered_ = tiered_;
  m->table_optimizers_ = table_optimizers_;
  std::vector<RowStore*> stores;
  for (const auto& t : tables_) stores.push_back(t.get());
  m->rows_ = StoreAccess(std::move(stores));
  EMBARK_RETURN_IF_ERROR(m->AdoptParts(&b));
  m->calibration_ = calibration_;
  return m;
}

std::unique_ptr<Workspace> Model::NewWorkspace() const {
  auto ws = std::make_unique<Workspace>();
  Prepare(ws.get());
  return ws;
}

void Model::Prepare(Workspace* ws) const {
  if (ws->parts.size() != parts_.size()) ws->parts.resize(parts_.size());
  for (size_t i = 0; i < parts_.size(); ++i)
    if (ws->parts[i] == nullptr || ws->parts[i]->kind != parts_[i]->kind()) ws->parts[i] = parts_[i]->NewScratch();
  if (ws->tables.size() != tables_.size()) ws->tables.resize(tables_.size());
  // A setting of the run (Reconfigure may change it), not of the model's parts.
  ws->gemm.set_precision(cfg_.dense_precision == "bf16" ? DensePrecision::kBf16 : DensePrecision::kFp32);
}

Status Model::Reconfigure(const TrainConfig& cfg) {
  EMBARK_RETURN_IF_ERROR(CheckFixedParams(cfg_, cfg));
  // A resume loads rows into stores of the precision it asks for
  // (StorageOptions); a model whose stores hold another precision moves its
  // rows over.
  bool moves = false;
  for (const auto& t : tables_) moves = moves || (!tiered_ && t->config().precision != PrecisionOf(cfg));
  if (moves) {
    // fp32 <-> fp16 on --resume: the rows move into stores of the new
    // precision (fp16 rounds to nearest). int8 rows are only made by export.
    if (cfg.row_precision == "int8" || cfg_.row_precision == "int8")
      return Status::InvalidArgument("row_precision: int8 rows are for serving copies (embark export); cannot change " +
                                     cfg_.row_precision + " rows to " + cfg.row_precision);
    std::vector<RowStore*> stores;
    for (auto& t : tables_) {
      TableConfig tc = t->config();
      tc.precision = cfg.row_precision == "fp16" ? RowPrecision::kFp16 : RowPrecision::kFp32;
      std::unique_ptr<RowStore> moved = NewMemoryStore(tc);
      auto it = t->NewIterator();
      RowBatch b;
      for (;;) {
        EMBARK_ASSIGN_OR_RETURN(bool more, it->Next(&b));
        if (!more) break;
        EMBARK_RETURN_IF_ERROR(moved->Put(b.keys.data(), b.size(), b.rows.data(), b.meta.data()));
      }
      t = std::move(moved);
      stores.push_back(t.get());
    }
    rows_ = StoreAccess(std::move(stores));
  }
  for (size_t i = 0; i < tables_.size(); ++i) {
    EMBARK_ASSIGN_OR_RETURN(SparseOptimizerConfig o, table_optimizers_[i](cfg));
    EMBARK_RETURN_IF_ERROR(tables_[i]->SetOptimizer(o));
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
  frozen_.resize(packed_size_);
  for (const auto& p : parts_) p->Pack(params_.data(), frozen_.data() + p->packed_offset());
}

double Model::TrainFlopsPerSample() const {
  double macs = 0;
  for (const auto& p : parts_) macs += p->macs();
  return 3 * 2 * macs;
}

namespace {

// Unique keys in a workspace's open-addressing table (dedup_*): Begin
// readies it for up to n keys, Insert returns a key's index in ws->ukeys.
void DedupBegin(size_t n, Workspace* ws) {
  size_t cap = 16;
  while (cap < 2 * n) cap <<= 1;
  if (ws->dedup_keys.size() < cap) {
    ws->dedup_keys.assign(cap, 0);
    ws->dedup_val.assign(cap, 0);
    ws->dedup_stamp.assign(cap, 0);
    ws->stamp = 0;
  }
  if (++ws->stamp == 0) {
    std::fill(ws->dedup_stamp.begin(), ws->dedup_stamp.end(), 0);
    ws->stamp = 1;
  }
  ws->ukeys.clear();
}

inline uint32_t DedupInsert(uint64_t k, uint64_t h, Workspace* ws) {
  const size_t mask = ws->dedup_keys.size() - 1;
  h &= mask;
  while (ws->dedup_stamp[h] == ws->stamp && ws->dedup_keys[h] != k) h = (h + 1) & mask;
  if (ws->dedup_stamp[h] != ws->stamp) {
    ws->dedup_stamp[h] = ws->stamp;
    ws->dedup_keys[h] = k;
    ws->dedup_val[h] = static_cast<uint32_t>(ws->ukeys.size());
    ws->ukeys.push_back(k);
  }
  return ws->dedup_val[h];
}

// Maps each feature key to a dense index of unique keys (per call).
void Dedup(const uint64_t* keys, size_t n, Workspace* ws) {
  DedupBegin(n, ws);
  ws->fidx.resize(n);
  for (size_t i = 0; i < n; ++i) ws->fidx[i] = DedupInsert(keys[i], Mix64(keys[i]), ws);
}

// Samples [begin, end) of a batch as the parts read them (fidx once the
// keys are deduplicated).
Pass MakePass(const Batch& batch, const DataSpec& spec, size_t begin, size_t end, const float* params,
              Workspace* ws) {
  Pass x;
  x.F = spec.num_fields;
  x.nd = spec.num_dense;
  x.B = static_cast<int>(end - begin);
  x.off = batch.offsets.data() + begin * x.F;
  x.p0 = x.off[0];
  x.vals = batch.values.data() + x.p0;
  x.dense = batch.dense.data() + begin * x.nd;
  x.fidx = ws->fidx.data();
  x.P = params;
  x.ws = ws;
  return x;
}

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

Status Model::Forward(const Batch& batch, size_t begin, size_t end, bool train, RowAccess* rows, Workspace* ws,
                      float* logits) const {
  PhaseTimer timer(&ws->seconds.lookup);
  if (rows == nullptr) {
    if (train) return Status::InvalidArgument("Model::Forward: training needs a RowAccess");
    rows = const_cast<StoreAccess*>(&rows_);  // read-only: Access::kRead changes nothing
  }
  Prepare(ws);
  Pass x = MakePass(batch, spec_, begin, end, params_.data(), ws);
  const int F = x.F, B = x.B;
  Dedup(batch.keys.data() + x.p0, x.off[static_cast<size_t>(B) * F] - x.p0, ws);
  x.fidx = ws->fidx.data();
  const size_t U = ws->ukeys.size();
  for (int t = 0; t < num_tables(); ++t) {
    Workspace::TableRows& tr = ws->tables[t];
    tr.grads.clear();  // no sparse gradients until Backward
    tr.rows.resize(U * tables_[t]->dim());
    EMBARK_RETURN_IF_ERROR(rows->Gather(t, ws->ukeys.data(), U, tr.rows.data(), train));
  }
  timer.Lap(&ws->seconds.forward);
  std::fill(logits, logits + static_cast<size_t>(B) * outputs_, 0.0f);

  // Inference weights: each part's at its own offset.
  const float* pk = nullptr;
  if (!train) {
    if (frozen_.empty() && packed_size_ > 0) {
      ws->packed.resize(packed_size_);
      for (const auto& p : parts_) p->Pack(params_.data(), ws->packed.data() + p->packed_offset());
      pk = ws->packed.data();
    } else {
      pk = frozen_.data();
    }
  }

  if (pooled_ >= 0) {
    // Field embeddings pooled per (sample, field): E[b, f, :] = sum value * row.
    const int D = tables_[pooled_]->dim();
    const float* r0 = ws->tables[pooled_].rows.data();
    ws->E.assign(static_cast<size_t>(B) * F * D, 0.0f);
    for (int bf = 0; bf < B * F; ++bf) {
      float* e = ws->E.data() + static_cast<size_t>(bf) * D;
      for (uint32_t q = x.off[bf] - x.p0; q < x.off[bf + 1] - x.p0; ++q) {
        const float* r = r0 + static_cast<size_t>(ws->fidx[q]) * D;
        for (int d = 0; d < D; ++d) e[d] += x.vals[q] * r[d];
      }
    }
  }
  for (size_t i = 0; i < parts_.size(); ++i)
    parts_[i]->Forward(x, pk ? pk + parts_[i]->packed_offset() : nullptr, ws->parts[i].get(), logits);
  return Status::OK();
}

Status Model::Logits(const Batch& batch, size_t begin, size_t end, RowAccess* rows, Workspace* ws,
                     float* logits) const {
  if (outputs_ == 1) return Forward(batch, begin, end, false, rows, ws, logits);
  ws->outputs.resize((end - begin) * static_cast<size_t>(outputs_));
  EMBARK_RETURN_IF_ERROR(Forward(batch, begin, end, false, rows, ws, ws->outputs.data()));
  for (size_t i = 0; i < end - begin; ++i) logits[i] = Logit(ws->outputs.data() + i * outputs_);
  return Status::OK();
}

void Model::ItemKeys(const Batch& batch, size_t begin, size_t end, uint64_t* keys) const {
  const size_t F = static_cast<size_t>(spec_.num_fields);
  for (size_t i = begin; i < end; ++i) {
    if (item_id_field_ < 0) {
      keys[i - begin] = 0;
      continue;
    }
    const size_t at = i * F + static_cast<size_t>(item_id_field_);
    keys[i - begin] = batch.offsets[at] < batch.offsets[at + 1] ? batch.keys[batch.offsets[at]] : 0;
  }
}

void Model::Backward(const Batch& batch, size_t begin, size_t end, const float* dl, Workspace* ws, float* g) const {
  PhaseTimer timer(&ws->seconds.backward);
  const Pass x = MakePass(batch, spec_, begin, end, params_.data(), ws);
  const int F = x.F, B = x.B;
  const size_t U = ws->ukeys.size();
  for (int t = 0; t < num_tables(); ++t) ws->tables[t].grads.assign(U * tables_[t]->dim(), 0.0f);
  const int D = pooled_ >= 0 ? tables_[pooled_]->dim() : 0;
  if (pooled_ >= 0) ws->dE.assign(static_cast<size_t>(B) * F * D, 0.0f);
  for (size_t i = 0; i < parts_.size(); ++i) parts_[i]->Backward(x, dl, ws->parts[i].get(), g);
  if (pooled_ >= 0) {
    // Scatter pooled-field gradients back to the rows they came from.
    float* d0 = ws->tables[pooled_].grads.data();
    for (int bf = 0; bf < B * F; ++bf) {
      const float* de = ws->dE.data() + static_cast<size_t>(bf) * D;
      for (uint32_t q = x.off[bf] - x.p0; q < x.off[bf + 1] - x.p0; ++q) {
        float* dr = d0 + static_cast<size_t>(ws->fidx[q]) * D;
        for (int d = 0; d < D; ++d) dr[d] += x.vals[q] * de[d];
      }
    }
  }
}

bool Model::HoldsBackward(const Workspace& ws) const {
  bool ready = ws.tables.size() == tables_.size();
  for (int t = 0; ready && t < num_tables(); ++t) ready = ws.tables[t].grads.size() == ws.ukeys.size() * tables_[t]->dim();
  return ready;
}

Status Model::SendSparse(Workspace* ws, float scale, RowAccess* rows) const {
  for (int t = 0; t < num_tables(); ++t) {
    std::vector<float>& grads = ws->tables[t].grads;
    if (scale != 1.0f)
      for (auto& g : grads) g *= scale;
    EMBARK_RETURN_IF_ERROR(rows->Scatter(t, ws->ukeys.data(), ws->ukeys.size(), grads.data()));
  }
  return Status::OK();
}

Status Model::ApplySparse(Workspace* ws, float scale, RowAccess* rows) const {
  PhaseTimer timer(&ws->seconds.update);
  if (!HoldsBackward(*ws))
    return Status::InvalidArgument("Model::ApplySparse: the workspace holds no Backward of its last Forward");
  return SendSparse(ws, scale, rows);
}

Status Model::ApplySparseMerged(const std::vector<const Workspace*>& ws, size_t part, size_t parts, float scale,
                                RowAccess* rows, Workspace* merge) const {
  PhaseTimer timer(&merge->seconds.update);
  size_t total = 0;
  for (const Workspace* w : ws) {
    if (!HoldsBackward(*w))
      return Status::InvalidArgument("Model::ApplySparseMerged: a workspace holds no Backward of its last Forward");
    total += w->ukeys.size();
  }
  // This part's keys: those whose hash (the row stores shard by its low
  // bits too) is part modulo parts.
  DedupBegin(total, merge);
  if (merge->tables.size() != tables_.size()) merge->tables.resize(tables_.size());
  for (int t = 0; t < num_tables(); ++t) merge->tables[t].grads.clear();
  for (const Workspace* w : ws) {
    const size_t U = w->ukeys.size();
    for (size_t u = 0; u < U; ++u) {
      const uint64_t k = w->ukeys[u], h = Mix64(k);
      if ((h & 63) % parts != part) continue;
      const size_t before = merge->ukeys.size();
      const uint32_t j = DedupInsert(k, h, merge);
      for (int t = 0; t < num_tables(); ++t) {
        const size_t D = static_cast<size_t>(tables_[t]->dim());
        std::vector<float>& g = merge->tables[t].grads;
        const float* src = w->tables[t].grads.data() + u * D;
        if (merge->ukeys.size() != before) {
          g.insert(g.end(), src, src + D);
        } else {
          float* dst = g.data() + j * D;
          for (size_t d = 0; d < D; ++d) dst[d] += src[d];
        }
      }
    }
  }
  if (merge->ukeys.empty()) return Status::OK();
  return SendSparse(merge, scale, rows);
}

}  // namespace embark
