#include "train/trainer.h"

#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <thread>

#include <nlohmann/json.hpp>

#include "train/progress.h"

namespace embark {
namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); }

}  // namespace

uint64_t PeakRssBytes() {
  struct rusage ru {};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<uint64_t>(ru.ru_maxrss) * 1024;
}

double ProcessCpuSeconds() {
  struct rusage ru {};
  getrusage(RUSAGE_SELF, &ru);
  auto sec = [](const timeval& t) { return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) * 1e-6; };
  return sec(ru.ru_utime) + sec(ru.ru_stime);
}

int DefaultThreads() { return std::max(1u, std::thread::hardware_concurrency()); }

namespace {

// The first error of a parallel section's parts.
Status FirstError(const std::vector<Status>& st) {
  for (const Status& s : st)
    if (!s.ok()) return s;
  return Status::OK();
}

}  // namespace

Status ScoreBatch(const Model& model, const Batch& batch, ThreadPool* pool,
                  const std::vector<std::unique_ptr<Workspace>>& ws, RowAccess* rows, float* out_scores,
                  ScoreOutput out) {
  const size_t n = batch.size();
  const size_t parts = std::min(ws.size(), n);
  std::vector<Status> st(parts);
  pool->ParallelFor(parts, [&](size_t i) {
    auto [b, e] = Range(n, parts, i);
    st[i] = model.Logits(batch, b, e, rows, ws[i].get(), out_scores + b);
    if (out == ScoreOutput::kProbability)
      for (size_t k = b; k < e; ++k) out_scores[k] = model.Probability(out_scores[k]);
  });
  return FirstError(st);
}

std::vector<std::unique_ptr<Workspace>> Workspaces(const Model& model, ThreadPool* pool) {
  std::vector<std::unique_ptr<Workspace>> ws;
  for (int i = 0; i < pool->size(); ++i) ws.push_back(model.NewWorkspace());
  return ws;
}

Status Score(const Model& model, BatchStream* stream, ThreadPool* pool,
             const std::function<void(const float*, const float*, size_t)>& fn, ScoreOutput out) {
  auto ws = Workspaces(model, pool);
  std::vector<float> scores;
  Batch batch;
  for (;;) {
    EMBARK_ASSIGN_OR_RETURN(bool more, stream->Next(&batch));
    if (!more) break;
    scores.resize(batch.size());
    EMBARK_RETURN_IF_ERROR(ScoreBatch(model, batch, pool, ws, nullptr, scores.data(), out));
    fn(scores.data(), batch.labels.data(), batch.size());
  }
  return Status::OK();
}

namespace {

// The stream every validation reads, from files or arrays: input order,
// batches of 4096.
std::unique_ptr<BatchStream> OpenValidation(const EvalData& data, const DataSpec& spec, int64_t max_bad_lines,
                                            int parse_threads) {
  StreamOptions so;
  so.batch_size = 4096;
  if (data.arrays) return std::make_unique<BatchStream>(NewArraySource(data.arrays), so);
  ReadOptions ro;
  ro.max_bad_lines = max_bad_lines;
  ro.parse_threads = parse_threads;
  return OpenStream(data.files, spec, ro, so);
}

}  // namespace

Result<Metrics> EvaluateData(const Model& model, const EvalData& data, ThreadPool* pool, int64_t max_bad_lines,
                             int parse_threads) {
  auto stream = OpenValidation(data, model.spec(), max_bad_lines, parse_threads);
  std::vector<double> probs;
  std::vector<float> labels;
  EMBARK_RETURN_IF_ERROR(Score(model, stream.get(), pool, [&](const float* p, const float* y, size_t n) {
    probs.insert(probs.end(), p, p + n);
    labels.insert(labels.end(), y, y + n);
  }));
  return Evaluate(probs, labels);
}

nlohmann::json HistoryRecord(const TrainerState& state, double seconds, const ObjectiveSums& sums, uint64_t n) {
  nlohmann::json r = {{"step", state.step}, {"samples", state.samples}, {"seconds", seconds}};
  if (n > 0) {
    r["train_loss"] = sums.loss / static_cast<double>(n);
    r["train_calibration"] = sums.labels > 0 ? sums.pred / sums.labels : std::nan("");
  }
  return r;
}

double HistorySeconds(const TrainerState& state) {
  return state.history.empty() ? 0.0 : nlohmann::json::parse(state.history.back()).value("seconds", 0.0);
}

// ---- TrainerImpl -----------------------------------------------------------

struct TrainerImpl::ThreadState {
  std::unique_ptr<Workspace> ws;
  Workspace merge;  // this thread's share of the step's sparse gradients, summed by key
  std::vector<float> grad, out, dout;
  ObjectiveSums sums;
};

TrainerImpl::TrainerImpl(const TrainConfig& cfg, std::unique_ptr<Model> model, int threads)
    : cfg_(cfg), model_(std::move(model)), pool_(threads) {}

TrainerImpl::~TrainerImpl() {
  (void)JoinEviction();
  if (session_) (void)session_->Drain();
}

Result<std::unique_ptr<TrainerImpl>> TrainerImpl::Create(const TrainConfig& cfg, std::unique_ptr<Model> model,
                                                 const DenseOptState& opt_state, const TrainerState& state,
                                                 Communicator* comm, const DistOptions& dist) {
  const int T = cfg.deterministic ? 1 : (cfg.threads > 0 ? cfg.threads : DefaultThreads());
  std::unique_ptr<TrainerImpl> t(new TrainerImpl(cfg, std::move(model), T));
  t->cfg_.threads = T;
  t->state_ = state;
  // An eviction round every 1/8 of the shortest TTL, and every 64 steps
  // under a cap (so a table exceeds its cap by at most ~64 steps' new rows).
  for (int i = 0; i < t->model_->num_tables(); ++i) {
    const RowPolicy& p = t->model_->table(i)->config().policy;
    int64_t every = 0;
    if (p.ttl_steps > 0) every = std::max<int64_t>(1, p.ttl_steps / 8);
    if (p.max_rows > 0) every = every > 0 ? std::min<int64_t>(every, 64) : 64;
    if (every > 0) t->evict_every_ = t->evict_every_ > 0 ? std::min(t->evict_every_, every) : every;
  }
  // The tables take this run's optimizer settings (a resumed model keeps
  // the kinds it was trained with; see ResolveResumeConfig).
  EMBARK_RETURN_IF_ERROR(t->model_->Reconfigure(cfg));
  EMBARK_ASSIGN_OR_RETURN(t->objective_, NewObjective(cfg, t->model_->tower_dim()));
  if (Status st = t->objective_->LoadState(state.objective_state); !st.ok())
    return Status::Corruption("the checkpoint's objective state (objective.bin): " + st.message());
  DenseOptimizerConfig oc;
  EMBARK_ASSIGN_OR_RETURN(oc.kind, ParseDenseOpt(cfg.dense_optimizer));
  EMBARK_ASSIGN_OR_RETURN(oc.decay, ParseLrDecay(cfg.lr_decay));
  oc.lr = cfg.dense_lr;
  oc.weight_decay = cfg.weight_decay;
  oc.warmup_steps = cfg.warmup_steps;
  oc.decay_steps = cfg.decay_steps;
  const size_t P = t->model_->params().size();
  t->opt_ = std::make_unique<DenseOptimizer>(oc, P);
  if (!opt_state.slots.empty() || opt_state.step > 0) {
    if (static_cast<int>(opt_state.slots.size()) != t->opt_->num_slots())
      return Status::InvalidArgument("the checkpoint's dense optimizer state does not match dense_optimizer = " +
                                     cfg.dense_optimizer);
    for (int i = 0; i < t->opt_->num_slots(); ++i) t->opt_->slot(i) = opt_state.slots[i];
    t->opt_->set_step(opt_state.step);
  }
  t->th_.resize(T);
  for (auto& th : t->th_) {
    th.ws = t->model_->NewWorkspace();
    th.grad.assign(P, 0.0f);
  }
  t->grad_sum_.assign(P, 0.0f);
  t->status_.resize(T);
  t->score_ws_ = Workspaces(*t->model_, &t->pool_);
  if (comm != nullptr && comm->size() > 1) t->session_ = std::make_unique<DistSession>(comm, t->model_.get(), dist);
  return t;
}

Result<bool> TrainerImpl::Next(const std::function<Result<bool>(Batch*)>& read, Batch* batch) {
  if (session_) return session_->NextStep(read, batch);
  if (!model_->tiered()) return read(batch);
  // Two batches ahead: their rows come in from disk on the stores'
  // background threads while this one trains.
  constexpr size_t kAhead = 2;
  while (!ahead_done_ && ahead_.size() <= kAhead) {
    Batch b;
    EMBARK_ASSIGN_OR_RETURN(bool more, read(&b));
    if (!more) {
      ahead_done_ = true;
      break;
    }
    for (int t = 0; t < model_->num_tables(); ++t) model_->table(t)->Prefetch(b.keys.data(), b.keys.size());
    ahead_.push_back(std::move(b));
  }
  if (ahead_.empty()) {
    ahead_done_ = false;  // the next epoch reads afresh
    return false;
  }
  std::swap(*batch, ahead_.front());
  ahead_.pop_front();
  return true;
}

Status TrainerImpl::Diverged(int64_t step, double loss, float grad_sum) const {
  char buf[512];
  std::snprintf(buf, sizeof(buf),
                "training diverged at step %lld: the %s is not finite (loss %g); nothing was saved from this step on. "
                "Lower the learning rates (now --dense-lr %g, --sparse-lr %g) or use a learning-rate warmup "
                "(--warmup-steps)",
                static_cast<long long>(step), std::isfinite(loss) ? "dense gradient" : "loss", loss, cfg_.dense_lr,
                cfg_.sparse_lr);
  return Status::InvalidArgument(buf);
}

Result<StepStats> TrainerImpl::Step(const Batch& batch, float* outputs) {
  const size_t n = batch.size();  // 0 on a rank whose input ended before the others'
  const size_t parts = std::min(th_.size(), n);
  const float inv_n = n > 0 ? 1.0f / static_cast<float>(n) : 0.0f;
  const int K = model_->outputs();
  RowAccess* rows = session_ ? session_->rows() : model_->rows();
  for (int t = 0; t < model_->num_tables(); ++t) model_->table(t)->SetStep(static_cast<uint32_t>(state_.step));
  const bool separable = objective_->separable();
  const uint64_t* items = nullptr;
  if (objective_->needs_items()) {
    items_.resize(n);
    model_->ItemKeys(batch, 0, n, items_.data());
    items = items_.data();
  }
  // Forward (and, for a separable objective, the loss and backward) on each
  // thread's share; then the shares' sparse gradients, summed by key.
  pool_.ParallelFor(parts, [&](size_t i) {
    ThreadState& t = th_[i];
    auto [b, e] = Range(n, parts, i);
    const size_t m = e - b;
    t.out.resize(m * K);
    t.dout.resize(m * K);
    t.sums = ObjectiveSums{};
    std::fill(t.grad.begin(), t.grad.end(), 0.0f);
    status_[i] = model_->Forward(batch, b, e, true, rows, t.ws.get(), t.out.data());
    if (!status_[i].ok() || !separable) return;
    objective_->Compute(t.out.data(), batch.labels.data() + b, items ? items + b : nullptr, m, K, inv_n,
                        t.dout.data(), &t.sums);
    model_->Backward(batch, b, e, t.dout.data(), t.ws.get(), t.grad.data());
  });
  for (size_t i = 0; i < parts; ++i) EMBARK_RETURN_IF_ERROR(status_[i]);
  if (outputs != nullptr)
    for (size_t i = 0; i < parts; ++i) std::copy(th_[i].out.begin(), th_[i].out.end(), outputs + Range(n, parts, i).first * K);
  if (separable) EMBARK_RETURN_IF_ERROR(ApplySparse(parts, n, rows));
  if (!separable && parts > 0) {
    // The objective couples the batch's samples: it sees every output at
    // once (here gathered in thread order), then each thread runs backward.
    batch_out_.clear();
    for (size_t i = 0; i < parts; ++i) batch_out_.insert(batch_out_.end(), th_[i].out.begin(), th_[i].out.end());
    batch_dout_.resize(batch_out_.size());
    th_[0].sums = ObjectiveSums{};
    objective_->Compute(batch_out_.data(), batch.labels.data(), items, n, K, inv_n, batch_dout_.data(),
                        &th_[0].sums);
    pool_.ParallelFor(parts, [&](size_t i) {
      ThreadState& t = th_[i];
      auto [b, e] = Range(n, parts, i);
      model_->Backward(batch, b, e, batch_dout_.data() + b * K, t.ws.get(), t.grad.data());
    });
    EMBARK_RETURN_IF_ERROR(ApplySparse(parts, n, rows));
  }
  // Synchronous dense step on the gradient summed over threads (and ranks).
  const auto t_step = Clock::now();
  const size_t P = grad_sum_.size();
  if (parts == 0) {
    std::fill(grad_sum_.begin(), grad_sum_.end(), 0.0f);
  } else {
    std::copy(th_[0].grad.begin(), th_[0].grad.end(), grad_sum_.begin());
  }
  for (size_t i = 1; i < parts; ++i) {
    const float* g = th_[i].grad.data();
    for (size_t k = 0; k < P; ++k) grad_sum_[k] += g[k];
  }
  StepStats st;
  st.samples = n;
  st.global_samples = static_cast<double>(n);
  if (session_) EMBARK_RETURN_IF_ERROR(session_->FinishStep(grad_sum_.data(), P, &st.global_samples));
  // Divergence stops training before a non-finite gradient reaches the
  // dense weights (NaN and infinity survive a sum; the loss shows rows).
  float gsum = 0;
  for (size_t k = 0; k < P; ++k) gsum += grad_sum_[k];
  double loss = 0;
  for (size_t i = 0; i < parts; ++i) loss += th_[i].sums.loss;
  if (!std::isfinite(gsum) || !std::isfinite(loss)) return Diverged(state_.step + 1, loss, gsum);
  opt_->Step(model_->params().data(), grad_sum_.data());
  dense_step_seconds_ += Seconds(t_step, Clock::now());
  for (size_t i = 0; i < parts; ++i) {
    st.sums.loss += th_[i].sums.loss;
    st.sums.pred += th_[i].sums.pred;
    st.sums.labels += th_[i].sums.labels;
  }
  ++state_.step;
  state_.samples += static_cast<uint64_t>(st.global_samples);  // over all ranks
  EMBARK_RETURN_IF_ERROR(MaybeEvict());
  return st;
}

Status TrainerImpl::EvictAll(uint32_t now) {
  for (int t = 0; t < model_->num_tables(); ++t) EMBARK_RETURN_IF_ERROR(model_->table(t)->Evict(now));
  return Status::OK();
}

Status TrainerImpl::MaybeEvict() {
  if (evict_every_ == 0 || state_.step % evict_every_ != 0) return Status::OK();
  const uint32_t now = static_cast<uint32_t>(state_.step);
  auto round = [this, now] { return EvictAll(now); };
  // Deterministic: the same rows go at the same steps, every run.
  if (cfg_.deterministic) return round();
  if (evicting_.load(std::memory_order_acquire)) return Status::OK();  // the last round is still running
  EMBARK_RETURN_IF_ERROR(JoinEviction());
  evicting_.store(true, std::memory_order_release);
  evictor_ = std::thread([this, round] {
    evict_status_ = round();
    evicting_.store(false, std::memory_order_release);
  });
  return Status::OK();
}

Status TrainerImpl::JoinEviction() {
  if (evictor_.joinable()) evictor_.join();
  Status st = evict_status_;
  evict_status_ = Status::OK();
  return st;
}

Status TrainerImpl::ApplySparse(size_t parts, size_t n, RowAccess* rows) {
  if (parts == 0) return Status::OK();
  if (parts == 1) return model_->ApplySparse(th_[0].ws.get(), static_cast<float>(n), rows);
  // Several shares are summed by key first, so that how a batch is split
  // does not change how many updates a row gets; each thread then applies
  // the keys of its own store shards.
  merge_ws_.resize(parts);
  for (size_t i = 0; i < parts; ++i) merge_ws_[i] = th_[i].ws.get();
  pool_.ParallelFor(parts, [&](size_t i) {
    status_[i] = model_->ApplySparseMerged(merge_ws_, i, parts, static_cast<float>(n), rows, &th_[i].merge);
  });
  for (size_t i = 0; i < parts; ++i) EMBARK_RETURN_IF_ERROR(status_[i]);
  return Status::OK();
}

Status TrainerImpl::ScoreData(const EvalData& data, ScoreOutput out, std::vector<double>* scores,
                              std::vector<float>* labels) {
  if (data.arrays && session_) return Status::InvalidArgument("a distributed trainer validates on files, not arrays");
  auto stream = OpenValidation(data, model_->spec(), cfg_.max_bad_lines, cfg_.parse_threads);
  if (!session_)
    return Score(
        *model_, stream.get(), &pool_,
        [&](const float* p, const float* y, size_t n) {
          scores->insert(scores->end(), p, p + n);
          labels->insert(labels->end(), y, y + n);
        },
        out);
  return session_->ScoreSlices(
      [&](Batch* b) { return stream->Next(b); },
      [&](const Batch& b, float* s) { return ScoreBatch(*model_, b, &pool_, score_ws_, session_->rows(), s, out); },
      scores, labels);
}

Result<Metrics> TrainerImpl::Evaluate(const EvalData& data, std::vector<ReliabilityBucket>* reliability) {
  std::vector<double> probs;
  std::vector<float> labels;
  EMBARK_RETURN_IF_ERROR(ScoreData(data, ScoreOutput::kProbability, &probs, &labels));
  if (reliability) *reliability = Reliability(probs, labels);
  return embark::Evaluate(probs, labels);
}

Result<Metrics> TrainerImpl::Calibrate(const EvalData& data, Metrics* raw, Status* fit,
                                       std::vector<ReliabilityBucket>* reliability) {
  std::vector<double> logits;
  std::vector<float> labels;
  EMBARK_RETURN_IF_ERROR(ScoreData(data, ScoreOutput::kLogit, &logits, &labels));
  // The probabilities every scorer gives (Model::Probability), from the
  // same logits before and after the fit: one pass over the files.
  std::vector<double> probs(logits.size());
  auto metrics = [&] {
    for (size_t i = 0; i < logits.size(); ++i) probs[i] = model_->Probability(static_cast<float>(logits[i]));
    if (reliability) *reliability = Reliability(probs, labels);
    return embark::Evaluate(probs, labels);
  };
  model_->set_calibration(PlattScaling{});
  *raw = metrics();
  auto c = FitPlatt(logits, labels);
  *fit = c.status();
  if (!c.ok()) return *raw;
  model_->set_calibration(c.value());
  return metrics();
}

Status TrainerImpl::Predict(const Batch& batch, float* probs) {
  if (session_) return Status::InvalidArgument("Predict scores on one process; a distributed trainer evaluates files");
  return ScoreBatch(*model_, batch, &pool_, score_ws_, nullptr, probs);
}

Status TrainerImpl::Save(const std::string& dir, double best_auc) {
  // The checkpoint's collective calls run on this thread: let the
  // communication thread (and an eviction round) finish first.
  EMBARK_RETURN_IF_ERROR(Drain());
  // A checkpoint holds the rows the policy keeps as of now (at most
  // max_rows), not those created since the last round.
  if (evict_every_ > 0) EMBARK_RETURN_IF_ERROR(EvictAll(static_cast<uint32_t>(state_.step)));
  const DenseOptState os = DenseState();
  TrainerState s = state_;
  s.best_auc = std::isfinite(best_auc) ? best_auc : 0;
  s.objective_state = objective_->SaveState();
  return SaveCheckpoint(dir, *model_, os, s, session_ ? session_->comm() : nullptr);
}

DenseOptState TrainerImpl::DenseState() const {
  DenseOptState os;
  os.step = opt_->step();
  for (int i = 0; i < opt_->num_slots(); ++i) os.slots.push_back(opt_->slot(i));
  return os;
}

Status TrainerImpl::Drain() {
  EMBARK_RETURN_IF_ERROR(JoinEviction());
  return session_ ? session_->Drain() : Status::OK();
}

PhaseSeconds TrainerImpl::phase_seconds() const {
  PhaseSeconds p;
  const double T = static_cast<double>(th_.size());
  for (const auto& t : th_) {
    p.lookup += t.ws->seconds.lookup / T;
    p.forward += t.ws->seconds.forward / T;
    p.backward += t.ws->seconds.backward / T;
    p.update += (t.ws->seconds.update + t.merge.seconds.update) / T;
  }
  p.dense_step = dense_step_seconds_;
  return p;
}

DistStats TrainerImpl::dist_stats() const { return session_ ? session_->stats() : DistStats{}; }

// ---- The batch driver ------------------------------------------------------

Result<std::unique_ptr<TrainerImpl>> OpenTrainer(const TrainJob& job, const Logger& log) {
  const TrainConfig& cfg = job.cfg;
  EMBARK_RETURN_IF_ERROR(ValidateConfig(cfg));
  if (cfg.row_precision == "int8")
    return Status::InvalidArgument(
        "row_precision int8 is for serving copies made by 'embark export'; train with fp32 or fp16 rows");
  Communicator* comm = job.comm != nullptr && job.comm->size() > 1 ? job.comm : nullptr;
  const int rank = comm ? comm->rank() : 0, ranks = comm ? comm->size() : 1;
  // Every rank must save at the same step (the save is collective), and
  // their clocks do not agree on when 30 s have passed.
  if (comm && cfg.checkpoint_every.seconds > 0)
    return Status::InvalidArgument("--checkpoint-every " + IntervalStr(cfg.checkpoint_every) +
                                   ": under MPI give it in steps (every rank saves at the same step)");
  std::unique_ptr<Model> model;
  DenseOptState opt_state;
  TrainerState ts;
  if (!job.resume_dir.empty()) {
    const StorageOptions storage = StorageOptions::FromConfig(cfg, rank, ranks);
    EMBARK_ASSIGN_OR_RETURN(auto ck, LoadCheckpoint(job.resume_dir, rank, ranks, Env::Posix(), &storage));
    // job.cfg follows the resume rule (ResolveResumeConfig): what the
    // checkpoint fixes must be the loaded model's; the rest is job.cfg's,
    // which TrainerImpl::Create hands to the model (Model::Reconfigure).
    if (ck.model->config().row_precision == "int8")
      return Status::InvalidArgument("--resume: '" + job.resume_dir +
                                     "' is an int8 serving copy (embark export) and holds no optimizer state: "
                                     "training cannot resume from it");
    EMBARK_RETURN_IF_ERROR(CheckFixedParams(ck.model->config(), cfg));
    model = std::move(ck.model);
    opt_state = std::move(ck.opt);
    ts = ck.state;
    const std::string into =
        ts.epoch_samples > 0 ? " and " + std::to_string(ts.epoch_samples) + " sample(s) of the next" : "";
    log.Log(LogLevel::kInfo, "resuming from %s after %d epoch(s)%s, step %lld", job.resume_dir.c_str(), ts.epochs_done,
            into.c_str(), static_cast<long long>(ts.step));
    if (ck.deltas_applied > 0)
      log.Log(LogLevel::kInfo, "applied %llu delta checkpoint(s) after its snapshot, up to delta %llu",
              static_cast<unsigned long long>(ck.deltas_applied), static_cast<unsigned long long>(ts.delta_seq));
    if (!ck.delta_error.ok())
      log.Log(LogLevel::kWarn, "resuming without the deltas from the first refused one on: %s",
              ck.delta_error.message().c_str());
  } else {
    const StorageOptions storage = StorageOptions::FromConfig(cfg, rank, ranks);
    EMBARK_ASSIGN_OR_RETURN(model, Model::Create(cfg, job.spec, &storage));
  }
  return TrainerImpl::Create(cfg, std::move(model), opt_state, ts, comm, job.dist);
}

namespace {

// The tables' row counters for the progress line: rows admitted, evicted and
// expired when a policy is active, and the hit rate of a store with a disk
// tier; empty otherwise.
std::string TableProgress(const Model& m) {
  StoreStats sum;
  bool policy = false;
  for (int i = 0; i < m.num_tables(); ++i) {
    const RowPolicy& p = m.table(i)->config().policy;
    policy = policy || !p.admits_all() || p.drops();
    sum += m.table(i)->stats();
  }
  std::string out;
  char buf[160];
  if (policy) {
    std::snprintf(buf, sizeof(buf), ", rows %zu (admitted %llu, evicted %llu, expired %llu)", sum.rows,
                  static_cast<unsigned long long>(sum.admitted), static_cast<unsigned long long>(sum.evicted),
                  static_cast<unsigned long long>(sum.expired));
    out += buf;
  }
  if (sum.hits + sum.misses > 0) {
    std::snprintf(buf, sizeof(buf), ", hit rate %.3f", static_cast<double>(sum.hits) / (sum.hits + sum.misses));
    out += buf;
  }
  return out;
}

}  // namespace

void AddTableFigures(const Model& m, TrainReport* rep) {
  StoreStats sum;
  for (int i = 0; i < m.num_tables(); ++i) {
    const RowStore* t = m.table(i);
    const StoreStats st = t->stats();
    rep->embedding_rows = std::max(rep->embedding_rows, st.rows);
    rep->embedding_ideal_bytes += st.rows * sizeof(float) * t->row_width();
    sum += st;
  }
  rep->embedding_bytes = sum.memory_bytes;
  rep->rows_admitted = sum.admitted;
  rep->rows_rejected = sum.rejected;
  rep->rows_evicted = sum.evicted;
  rep->rows_expired = sum.expired;
  rep->cache_hits = sum.hits;
  rep->cache_misses = sum.misses;
  rep->disk_read_bytes = sum.disk_read_bytes;
  rep->disk_write_bytes = sum.disk_write_bytes;
  rep->stall_seconds = sum.stall_seconds;
  rep->table_ram_bytes = sum.memory_bytes;
  rep->table_disk_bytes = sum.disk_bytes;
}

Result<TrainReport> Fit(TrainerImpl* trainer, const TrainJob& job, const Logger& log) {
  const TrainConfig& cfg = job.cfg;
  Communicator* comm = job.comm != nullptr && job.comm->size() > 1 ? job.comm : nullptr;
  const int rank = comm ? comm->rank() : 0, ranks = comm ? comm->size() : 1;
  // Deterministic distributed runs give every rank a slice of each global
  // batch (so N ranks train the model 1 rank would); otherwise each rank
  // reads its own share of the input's chunks.
  const bool slice = comm && cfg.deterministic;
  Model& m = trainer->model();
  const DataSpec& spec = m.spec();

  TrainReport rep;
  rep.threads = trainer->threads();
  rep.ranks = ranks;
  Metrics best_metrics;
  double best_auc = trainer->state().best_auc;
  int bad_evals = 0;
  bool saved_best = false;
  Progress progress(job.progress, log);
  progress.set_detail([&m] { return TableProgress(m); });

  // CPU time of validation passes and checkpoint saves, taken out of
  // rep.cpu_seconds: aside(fn) runs fn and counts its time here.
  double aside_cpu = 0;
  auto aside = [&](auto&& fn) {
    const double cpu0 = ProcessCpuSeconds();
    auto r = fn();
    aside_cpu += ProcessCpuSeconds() - cpu0;
    return r;
  };
  // What the report gives of each saved model's calibration: the scaling
  // saved with it and its metrics before it.
  struct Fitted {
    bool on = false;
    PlattScaling platt;
    Metrics raw;
  } fitted, best_fitted;
  bool warned_calibration = false;
  EvalData valid(job.valid_files);
  valid.arrays = job.valid_arrays;
  TrainerState& state = trainer->state();
  // The history (TrainerState::history): a record per validation, or per
  // epoch end without validation data, with the training loss since the
  // record before. An on_history that returns false stops the run.
  ObjectiveSums hist_sums;
  uint64_t hist_n = 0;
  bool stop_asked = false;
  const double seconds0 = HistorySeconds(state);
  auto record = [&](int epoch, const Metrics* vm) {
    nlohmann::json r = HistoryRecord(state, seconds0 + rep.train_seconds, hist_sums, hist_n);
    r["epoch"] = epoch;
    if (vm)
      r["valid"] = {{"count", vm->count}, {"auc", vm->auc},   {"logloss", vm->logloss},         {"ne", vm->ne},
                    {"ctr", vm->ctr},     {"mean_pred", vm->mean_pred}, {"calibration", vm->calibration}};
    hist_sums = ObjectiveSums{};
    hist_n = 0;
    // NaN (an AUC with one class absent) has no JSON form: null.
    state.history.push_back(r.dump());
    if (job.on_history && !job.on_history(state.history.back())) stop_asked = true;
  };
  int epoch_now = 1;  // 1-based, for the history
  // Validation; returns true when training should stop early.
  // The step of the last validation: an epoch that ends on a multiple of
  // eval_every is validated once (a second look at the same model would
  // count against early stopping and repeat the history's record).
  int64_t validated_step = -1;
  auto validate = [&]() -> Result<bool> {
    if (valid.empty() || state.step == validated_step) return false;
    validated_step = state.step;
    fitted = Fitted{};
    // With calibrate = platt, the scaling is refitted to the model as it is
    // now (the checkpoint saved next carries it) in the same pass.
    const bool platt = cfg.calibrate == "platt";
    Status fit;
    std::vector<ReliabilityBucket> buckets;
    auto evaluated = aside([&] {
      return platt ? trainer->Calibrate(valid, &fitted.raw, &fit, &buckets) : trainer->Evaluate(valid, &buckets);
    });
    fitted.on = platt && evaluated.ok() && fit.ok();
    fitted.platt = trainer->model().calibration();
    if (!fit.ok() && !warned_calibration) {
      progress.Clear();
      log.Log(LogLevel::kWarn, "no calibration: %s", fit.message().c_str());
      warned_calibration = true;
    }
    EMBARK_ASSIGN_OR_RETURN(Metrics vm, std::move(evaluated));
    progress.Clear();
    if (fitted.on)
      log.Log(LogLevel::kInfo,
              "calibration fitted on the validation data: p = sigmoid(%.4f * logit %+.4f); before it, calibration "
              "%.4f, logloss %.6f",
              fitted.platt.a, fitted.platt.b, fitted.raw.calibration, fitted.raw.logloss);
    log.Log(LogLevel::kInfo, "validation after step %lld: auc %.6f logloss %.6f ne %.4f calibration %.4f",
            static_cast<long long>(trainer->state().step), vm.auc, vm.logloss, vm.ne, vm.calibration);
    rep.has_valid = true;
    rep.valid = vm;
    nlohmann::json rel = nlohmann::json::array();
    for (const ReliabilityBucket& b : buckets)
      rel.push_back({{"count", b.count}, {"mean_pred", b.mean_pred}, {"ctr", b.ctr}});
    state.reliability = nlohmann::json{{"step", state.step}, {"buckets", rel}}.dump();
    record(epoch_now, &vm);
    if (cfg.early_stop_patience <= 0) return false;
    if (vm.auc > best_auc + 1e-6) {
      best_auc = vm.auc;
      best_metrics = vm;
      best_fitted = fitted;
      bad_evals = 0;
      EMBARK_RETURN_IF_ERROR(aside([&] { return trainer->Save(job.out_dir, best_auc); }));
      saved_best = true;
      return false;
    }
    return ++bad_evals >= cfg.early_stop_patience;
  };

  ObjectiveSums epoch_sums;
  uint64_t loss_n = 0;
  bool warned_loss = false;
  // A mean loss many times that of always predicting the base rate is a run
  // diverging, not learning (non-finite values stop it; this warns sooner).
  auto check_loss = [&] {
    if (warned_loss || loss_n < 4096) return;
    const double mean = epoch_sums.loss / static_cast<double>(loss_n);
    const double base = trainer->objective().ChanceLoss(epoch_sums.labels / static_cast<double>(loss_n),
                                                        static_cast<size_t>(cfg.batch_size));
    if (mean <= 10 * base + 1) return;
    warned_loss = true;
    progress.Clear();
    log.Log(LogLevel::kWarn,
            "at step %lld the mean training loss is %.4g, %.0f times that of a model that knows nothing "
            "(%.4g): the run is diverging; try learning rates 10x lower (now --dense-lr %g, --sparse-lr %g, "
            "--first-order-lr %g)",
            static_cast<long long>(trainer->state().step), mean, mean / base, base, cfg.dense_lr, cfg.sparse_lr,
            cfg.first_order_lr);
  };
  // The mid-epoch cursor (TrainerState::epoch_samples): the samples of the
  // current epoch trained so far, in the order every reader of the epoch
  // sees (its shuffle depends only on seed and epoch). A resumed epoch
  // skips that many. Ranks reading their own chunks (MPI without
  // --deterministic) do not share one order: there the cursor is not kept
  // and a resumed epoch starts over.
  const bool cursor = !comm || slice;
  if (!cursor && state.epoch_samples > 0) {
    log.Log(LogLevel::kWarn,
            "the checkpoint was written %llu samples into epoch %d, but under MPI without --deterministic each rank "
            "reads its own share of the input: epoch %d starts over",
            static_cast<unsigned long long>(state.epoch_samples), state.epochs_done + 1, state.epochs_done + 1);
    state.epoch_samples = 0;
  }
  Cadence checkpoints(cfg.checkpoint_every, Clock::now());
  Batch batch;
  const double loop_cpu0 = ProcessCpuSeconds();
  for (int epoch = trainer->state().epochs_done; epoch < cfg.epochs && !rep.stopped_early && !rep.stopped; ++epoch) {
    epoch_now = epoch + 1;
    ReadOptions ro;
    ro.max_bad_lines = cfg.max_bad_lines;
    ro.parse_threads = cfg.parse_threads;
    StreamOptions so;
    so.batch_size = static_cast<size_t>(cfg.batch_size);
    so.shuffle_window = static_cast<size_t>(cfg.shuffle_window);
    so.seed = cfg.seed * 1000003ULL + static_cast<uint64_t>(epoch);
    // Samples of this epoch trained before a resume: global samples, which
    // a single process and every rank of a sliced run read in one order.
    const uint64_t skip = state.epoch_samples;
    so.skip = skip;
    if (skip > 0)
      log.Log(LogLevel::kInfo, "resuming epoch %d at sample %llu: skipping the samples already trained on", epoch + 1,
              static_cast<unsigned long long>(skip));
    if (comm && !slice) {
      // batch_size is the global batch (as one process would train it):
      // each rank reads its own chunks in batches of its share.
      ro.shard_count = ranks;
      ro.shard_index = rank;
      so.batch_size = std::max<size_t>(1, (static_cast<size_t>(cfg.batch_size) + ranks - 1) / ranks);
    }
    auto stream = job.train_arrays ? std::make_unique<BatchStream>(NewArraySource(job.train_arrays), so)
                                   : OpenStream(job.train_files, spec, ro, so);
    Batch global;
    // This rank's input: its share of the chunks, or its slice of each batch.
    auto read = [&](Batch* b) -> Result<bool> {
      if (!slice) return stream->Next(b);
      EMBARK_ASSIGN_OR_RETURN(bool more, stream->Next(&global));
      if (more) DistSession::Slice(global, rank, ranks, b);
      return more;
    };
    epoch_sums = ObjectiveSums{};
    loss_n = 0;
    progress.StartEpoch(epoch + 1, cfg.epochs, skip);
    int64_t epoch_steps = 0;
    for (;;) {
      // Distributed steps count the wait for their rows as step time.
      auto t0 = Clock::now();
      EMBARK_ASSIGN_OR_RETURN(bool more, trainer->Next(read, &batch));
      if (!comm) t0 = Clock::now();
      if (!more) break;
      EMBARK_ASSIGN_OR_RETURN(StepStats st, trainer->Step(batch));
      ++epoch_steps;
      if (cursor) state.epoch_samples += static_cast<uint64_t>(st.global_samples);
      epoch_sums.loss += st.sums.loss;
      epoch_sums.pred += st.sums.pred;
      epoch_sums.labels += st.sums.labels;
      loss_n += st.samples;
      hist_sums.loss += st.sums.loss;
      hist_sums.pred += st.sums.pred;
      hist_sums.labels += st.sums.labels;
      hist_n += st.samples;
      rep.global_samples += static_cast<uint64_t>(st.global_samples);
      rep.samples += st.samples;
      rep.train_seconds += Seconds(t0, Clock::now());
      progress.Update(rep.samples, rep.train_seconds, epoch_sums.loss / std::max<uint64_t>(1, loss_n),
                      stream->bytes_read(), stream->bytes_total());
      if (trainer->state().step % 16 == 0) check_loss();
      if (checkpoints.Due(state.step, Clock::now())) {
        progress.Clear();
        EMBARK_RETURN_IF_ERROR(aside([&] { return trainer->Save(job.out_dir, best_auc); }));
        log.Log(LogLevel::kInfo, "checkpoint at step %lld (epoch %d, sample %llu) written to %s",
                static_cast<long long>(state.step), epoch + 1, static_cast<unsigned long long>(state.epoch_samples),
                job.out_dir.c_str());
        if (job.after_checkpoint) EMBARK_RETURN_IF_ERROR(job.after_checkpoint(state));
      }
      if (cfg.eval_every > 0 && trainer->state().step % cfg.eval_every == 0) {
        EMBARK_ASSIGN_OR_RETURN(bool stop, validate());
        if (stop) {
          rep.stopped_early = true;
          break;
        }
      }
      if (job.on_step) job.on_step();
      if (stop_asked || (job.stop && job.stop->load(std::memory_order_relaxed))) {
        // Asked to stop: the checkpoint below keeps the cursor, so a resume
        // goes on from this sample.
        rep.stopped = true;
        progress.Clear();
        if (hist_n > 0) record(epoch + 1, nullptr);
        log.Log(LogLevel::kInfo, "stopped at step %lld (epoch %d, sample %llu)", static_cast<long long>(state.step),
                epoch + 1, static_cast<unsigned long long>(state.epoch_samples));
        break;
      }
    }
    auto bad = stream->bad_lines();
    rep.bad_lines += bad.count;
    for (auto& e : bad.examples)
      if (rep.bad_examples.size() < 5) rep.bad_examples.push_back(e);
    rep.input_wait_seconds += stream->wait_seconds();
    check_loss();
    progress.Clear();
    if (rep.stopped_early || rep.stopped) break;
    if (skip > 0 && epoch_steps == 0)
      log.Log(LogLevel::kInfo, "epoch %d: no samples left past the resumed cursor (%llu samples)", epoch + 1,
              static_cast<unsigned long long>(skip));
    state.epochs_done = epoch + 1;
    state.epoch_samples = 0;
    log.Log(LogLevel::kInfo, "epoch %d done: %llu samples, mean loss %.6f", epoch + 1,
            static_cast<unsigned long long>(trainer->state().samples), loss_n ? epoch_sums.loss / loss_n : 0.0);
    if (valid.empty()) record(epoch + 1, nullptr);
    EMBARK_ASSIGN_OR_RETURN(bool stop, validate());
    if (stop) rep.stopped_early = true;
    if (stop_asked) rep.stopped = true;
  }
  rep.cpu_seconds = std::max(0.0, ProcessCpuSeconds() - loop_cpu0 - aside_cpu);
  rep.final_loss = loss_n ? epoch_sums.loss / loss_n : 0.0;
  rep.train_calibration = epoch_sums.labels > 0 ? epoch_sums.pred / epoch_sums.labels : 0.0;
  if (saved_best && (rep.stopped_early || rep.valid.auc <= best_auc)) {
    // The checkpoint in out_dir holds the best model, saved right after the
    // validation that measured best_metrics; report those figures.
    if (rep.stopped_early)
      log.Log(LogLevel::kInfo, "early stop: keeping the best model (validation auc %.6f) in %s", best_auc,
              job.out_dir.c_str());
    rep.valid = best_metrics;
    fitted = best_fitted;
  } else {
    EMBARK_RETURN_IF_ERROR(trainer->Save(job.out_dir, best_auc));
  }
  EMBARK_RETURN_IF_ERROR(trainer->Drain());
  rep.calibrated = fitted.on;
  rep.platt_a = fitted.platt.a;
  rep.platt_b = fitted.platt.b;
  rep.valid_uncalibrated = fitted.raw;
  rep.epochs_done = trainer->state().epochs_done;
  rep.steps = trainer->state().step;
  rep.best_auc = best_auc;
  rep.samples_per_sec = rep.train_seconds > 0 ? rep.samples / rep.train_seconds : 0;
  rep.peak_rss_bytes = PeakRssBytes();
  AddTableFigures(m, &rep);
  rep.flops_per_sample = m.TrainFlopsPerSample();
  const DistStats ds = trainer->dist_stats();
  rep.comm_wait_seconds = ds.wait_seconds;
  rep.sparse_bytes = ds.sparse_bytes;
  rep.dense_bytes = ds.dense_bytes;
  const PhaseSeconds ps = trainer->phase_seconds();
  rep.lookup_seconds = ps.lookup;
  rep.forward_seconds = ps.forward;
  rep.backward_seconds = ps.backward;
  rep.update_seconds = ps.update;
  rep.dense_step_seconds = ps.dense_step;
  return rep;
}

Result<TrainReport> Train(const TrainJob& job, const Logger& log) {
  EMBARK_ASSIGN_OR_RETURN(auto trainer, OpenTrainer(job, log));
  return Fit(trainer.get(), job, log);
}

}  // namespace embark
