#include "train/trainer.h"

#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <thread>

#include "nn/dense_optimizer.h"
#include "train/progress.h"

namespace embark {
namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); }

// Splits [0, n) into `parts` contiguous ranges.
std::pair<size_t, size_t> Range(size_t n, size_t parts, size_t i) {
  size_t base = n / parts, extra = n % parts;
  size_t begin = i * base + std::min(i, extra);
  return {begin, begin + base + (i < extra ? 1 : 0)};
}

struct ThreadState {
  std::unique_ptr<Workspace> ws;
  std::vector<float> grad, logits, dl;
  double loss = 0, pred = 0, clicks = 0;
};

}  // namespace

uint64_t PeakRssBytes() {
  struct rusage ru {};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<uint64_t>(ru.ru_maxrss) * 1024;
}

int DefaultThreads() { return std::max(1u, std::thread::hardware_concurrency()); }

namespace {

// Click probabilities of every sample of `batch` into probs, across the pool.
void ScoreBatch(const Model& model, const Batch& batch, ThreadPool* pool,
                const std::vector<std::unique_ptr<Workspace>>& ws, float* probs) {
  const size_t n = batch.size();
  const size_t parts = std::min(ws.size(), n);
  pool->ParallelFor(parts, [&](size_t i) {
    auto [b, e] = Range(n, parts, i);
    model.Forward(batch, b, e, false, ws[i].get(), probs + b);
    for (size_t k = b; k < e; ++k) probs[k] = Sigmoid(probs[k]);
  });
}

std::vector<std::unique_ptr<Workspace>> Workspaces(const Model& model, ThreadPool* pool) {
  std::vector<std::unique_ptr<Workspace>> ws;
  for (int i = 0; i < pool->size(); ++i) ws.push_back(model.NewWorkspace());
  return ws;
}

}  // namespace

Status Score(const Model& model, BatchStream* stream, ThreadPool* pool,
             const std::function<void(const float*, const float*, size_t)>& fn) {
  auto ws = Workspaces(model, pool);
  std::vector<float> probs;
  Batch batch;
  for (;;) {
    EMBARK_ASSIGN_OR_RETURN(bool more, stream->Next(&batch));
    if (!more) break;
    probs.resize(batch.size());
    ScoreBatch(model, batch, pool, ws, probs.data());
    fn(probs.data(), batch.labels.data(), batch.size());
  }
  return Status::OK();
}

namespace {

// The stream every validation reads: input order, batches of 4096.
std::unique_ptr<BatchStream> OpenValidation(const std::vector<std::string>& files, const DataSpec& spec,
                                            int64_t max_bad_lines, int parse_threads) {
  ReadOptions ro;
  ro.max_bad_lines = max_bad_lines;
  ro.parse_threads = parse_threads;
  StreamOptions so;
  so.batch_size = 4096;
  return OpenStream(files, spec, ro, so);
}

}  // namespace

Result<Metrics> EvaluateFiles(const Model& model, const std::vector<std::string>& files, ThreadPool* pool,
                              int64_t max_bad_lines, int parse_threads) {
  auto stream = OpenValidation(files, model.spec(), max_bad_lines, parse_threads);
  std::vector<double> probs;
  std::vector<float> labels;
  EMBARK_RETURN_IF_ERROR(Score(model, stream.get(), pool, [&](const float* p, const float* y, size_t n) {
    probs.insert(probs.end(), p, p + n);
    labels.insert(labels.end(), y, y + n);
  }));
  return Evaluate(probs, labels);
}

Result<TrainReport> Train(const TrainJob& job, const Logger& log) {
  TrainConfig cfg = job.cfg;
  EMBARK_RETURN_IF_ERROR(ValidateConfig(cfg));
  if (cfg.deterministic) cfg.threads = 1;
  const int T = cfg.threads > 0 ? cfg.threads : DefaultThreads();
  Communicator* comm = job.comm != nullptr && job.comm->size() > 1 ? job.comm : nullptr;
  const int rank = comm ? comm->rank() : 0, ranks = comm ? comm->size() : 1;
  // Deterministic distributed runs give every rank a slice of each global
  // batch (so N ranks train the model 1 rank would); otherwise each rank
  // reads its own share of the input's chunks.
  const bool slice = comm && cfg.deterministic;

  std::unique_ptr<Model> model;
  DenseOptState opt_state;
  TrainerState ts;
  if (!job.resume_dir.empty()) {
    EMBARK_ASSIGN_OR_RETURN(auto ck, LoadCheckpoint(job.resume_dir, rank, ranks));
    // job.cfg follows the resume rule (ResolveResumeConfig): what the
    // checkpoint fixes must be the loaded model's; the rest is job.cfg's.
    EMBARK_RETURN_IF_ERROR(CheckFixedParams(ck.model->config(), cfg));
    // Still to apply here: the sparse settings that may change to the loaded
    // tables, through RowStore::SetOptimizer. Until then they keep the
    // checkpoint's, and a change is at least not silent.
    for (const char* name : {"sparse_lr", "wide_lr", "sparse_l2", "ftrl_l1", "adagrad_init"})
      if (FindParam(name)->get(cfg) != FindParam(name)->get(ck.model->config()))
        log.Log(LogLevel::kWarn, "%s: the loaded embedding tables keep the checkpoint's %s", name,
                FindParam(name)->get(ck.model->config()).c_str());
    model = std::move(ck.model);
    opt_state = std::move(ck.opt);
    ts = ck.state;
    log.Log(LogLevel::kInfo, "resuming from %s after %d epoch(s), step %lld", job.resume_dir.c_str(), ts.epochs_done,
            static_cast<long long>(ts.step));
  } else {
    EMBARK_ASSIGN_OR_RETURN(model, Model::Create(cfg, job.spec));
  }
  const DataSpec& spec = model->spec();

  DenseOptimizerConfig oc;
  EMBARK_ASSIGN_OR_RETURN(oc.kind, ParseDenseOpt(cfg.dense_optimizer));
  EMBARK_ASSIGN_OR_RETURN(oc.decay, ParseLrDecay(cfg.lr_decay));
  oc.lr = cfg.dense_lr;
  oc.weight_decay = cfg.weight_decay;
  oc.warmup_steps = cfg.warmup_steps;
  oc.decay_steps = cfg.decay_steps;
  const size_t P = model->params().size();
  DenseOptimizer opt(oc, P);
  if (!opt_state.slots.empty() || opt_state.step > 0) {
    if (static_cast<int>(opt_state.slots.size()) != opt.num_slots())
      return Status::InvalidArgument("the checkpoint's dense optimizer state does not match dense_optimizer = " +
                                     cfg.dense_optimizer);
    for (int i = 0; i < opt.num_slots(); ++i) opt.slot(i) = opt_state.slots[i];
    opt.set_step(opt_state.step);
  }

  ThreadPool pool(T);
  std::vector<ThreadState> th(T);
  for (auto& t : th) {
    t.ws = model->NewWorkspace();
    t.grad.assign(P, 0.0f);
  }
  std::vector<float> grad_sum(P);
  std::unique_ptr<DistSession> session;
  if (comm) session = std::make_unique<DistSession>(comm, model.get(), job.dist);

  TrainReport rep;
  rep.threads = T;
  rep.ranks = ranks;
  Metrics best_metrics;
  double best_auc = ts.best_auc;
  int bad_evals = 0;
  bool saved_best = false;
  Progress progress(job.progress, log);

  auto save = [&]() -> Status {
    // The checkpoint's collective calls run on this thread: let the
    // communication thread finish first.
    if (session) EMBARK_RETURN_IF_ERROR(session->Drain());
    DenseOptState os;
    os.step = opt.step();
    for (int i = 0; i < opt.num_slots(); ++i) os.slots.push_back(opt.slot(i));
    TrainerState s = ts;
    s.best_auc = std::isfinite(best_auc) ? best_auc : 0;
    return SaveCheckpoint(job.out_dir, *model, os, s, comm);
  };
  // Validation metrics of the current model (collective when distributed).
  auto evaluate = [&]() -> Result<Metrics> {
    if (!comm) return EvaluateFiles(*model, job.valid_files, &pool, cfg.max_bad_lines, cfg.parse_threads);
    auto stream = OpenValidation(job.valid_files, spec, cfg.max_bad_lines, cfg.parse_threads);
    auto ws = Workspaces(*model, &pool);
    std::vector<double> probs;
    std::vector<float> labels;
    EMBARK_RETURN_IF_ERROR(session->ScoreSlices([&](Batch* b) { return stream->Next(b); },
                                                [&](const Batch& b, float* out) { ScoreBatch(*model, b, &pool, ws, out); },
                                                &probs, &labels));
    return Evaluate(probs, labels);
  };
  // Validation; returns true when training should stop early.
  auto validate = [&]() -> Result<bool> {
    if (job.valid_files.empty()) return false;
    EMBARK_ASSIGN_OR_RETURN(Metrics m, evaluate());
    progress.Clear();
    log.Log(LogLevel::kInfo, "validation after step %lld: auc %.6f logloss %.6f ne %.4f calibration %.4f",
            static_cast<long long>(ts.step), m.auc, m.logloss, m.ne, m.calibration);
    rep.has_valid = true;
    rep.valid = m;
    if (cfg.early_stop_patience <= 0) return false;
    if (m.auc > best_auc + 1e-6) {
      best_auc = m.auc;
      best_metrics = m;
      bad_evals = 0;
      EMBARK_RETURN_IF_ERROR(save());
      saved_best = true;
      return false;
    }
    return ++bad_evals >= cfg.early_stop_patience;
  };

  double loss_sum = 0, pred_sum = 0, label_sum = 0;
  uint64_t loss_n = 0;
  Batch batch;
  for (int epoch = ts.epochs_done; epoch < cfg.epochs && !rep.stopped_early; ++epoch) {
    ReadOptions ro;
    ro.max_bad_lines = cfg.max_bad_lines;
    ro.parse_threads = cfg.parse_threads;
    StreamOptions so;
    so.batch_size = static_cast<size_t>(cfg.batch_size);
    so.shuffle_window = static_cast<size_t>(cfg.shuffle_window);
    so.seed = cfg.seed * 1000003ULL + static_cast<uint64_t>(epoch);
    if (comm && !slice) {
      // batch_size is the global batch (as one process would train it):
      // each rank reads its own chunks in batches of its share.
      ro.shard_count = ranks;
      ro.shard_index = rank;
      so.batch_size = std::max<size_t>(1, (static_cast<size_t>(cfg.batch_size) + ranks - 1) / ranks);
    }
    auto stream = OpenStream(job.train_files, spec, ro, so);
    Batch global;
    // This rank's input: its share of the chunks, or its slice of each batch.
    auto read = [&](Batch* b) -> Result<bool> {
      if (!slice) return stream->Next(b);
      EMBARK_ASSIGN_OR_RETURN(bool more, stream->Next(&global));
      if (more) DistSession::Slice(global, rank, ranks, b);
      return more;
    };
    loss_sum = pred_sum = label_sum = 0;
    loss_n = 0;
    progress.StartEpoch(epoch + 1, cfg.epochs);
    for (;;) {
      bool more = false;
      // Distributed steps count the wait for their rows as step time.
      auto t0 = Clock::now();
      if (session) {
        EMBARK_ASSIGN_OR_RETURN(more, session->NextStep(read, &batch));
      } else {
        EMBARK_ASSIGN_OR_RETURN(more, stream->Next(&batch));
        t0 = Clock::now();
      }
      if (!more) break;
      const size_t n = batch.size();  // 0 on a rank whose input ended before the others'
      const size_t parts = std::min(static_cast<size_t>(T), n);
      const float inv_n = n > 0 ? 1.0f / static_cast<float>(n) : 0.0f;
      pool.ParallelFor(parts, [&](size_t i) {
        ThreadState& t = th[i];
        auto [b, e] = Range(n, parts, i);
        const size_t m = e - b;
        t.logits.resize(m);
        t.dl.resize(m);
        std::fill(t.grad.begin(), t.grad.end(), 0.0f);
        model->Forward(batch, b, e, true, t.ws.get(), t.logits.data());
        double loss = 0, pred = 0, clicks = 0;
        for (size_t k = 0; k < m; ++k) {
          const float z = t.logits[k], y = batch.labels[b + k];
          // log(1 + e^-|z|) + max(z, 0) - z*y: stable binary cross-entropy on logits.
          loss += std::log1p(std::exp(-std::fabs(z))) + std::max(z, 0.0f) - z * y;
          const float p = Sigmoid(z);
          pred += p;
          clicks += y;
          t.dl[k] = (p - y) * inv_n;
        }
        t.loss = loss;
        t.pred = pred;
        t.clicks = clicks;
        model->Backward(batch, b, e, t.dl.data(), t.ws.get(), t.grad.data());
        model->ApplySparse(t.ws.get(), static_cast<float>(n));
      });
      // Synchronous dense step on the gradient summed over threads.
      const auto t_step = Clock::now();
      if (parts == 0) {
        std::fill(grad_sum.begin(), grad_sum.end(), 0.0f);
      } else {
        std::copy(th[0].grad.begin(), th[0].grad.end(), grad_sum.begin());
      }
      for (size_t i = 1; i < parts; ++i) {
        const float* g = th[i].grad.data();
        for (size_t k = 0; k < P; ++k) grad_sum[k] += g[k];
      }
      double samples = static_cast<double>(n);
      if (session) EMBARK_RETURN_IF_ERROR(session->FinishStep(grad_sum.data(), P, &samples));
      rep.global_samples += static_cast<uint64_t>(samples);
      opt.Step(model->params().data(), grad_sum.data());
      rep.dense_step_seconds += Seconds(t_step, Clock::now());
      for (size_t i = 0; i < parts; ++i) {
        loss_sum += th[i].loss;
        pred_sum += th[i].pred;
        label_sum += th[i].clicks;
      }
      loss_n += n;
      ++ts.step;
      ts.samples += static_cast<uint64_t>(samples);  // over all ranks
      rep.samples += n;
      rep.train_seconds += Seconds(t0, Clock::now());
      progress.Update(rep.samples, rep.train_seconds, loss_sum / std::max<uint64_t>(1, loss_n),
                      stream->bytes_read(), stream->bytes_total());
      if (cfg.eval_every > 0 && ts.step % cfg.eval_every == 0) {
        EMBARK_ASSIGN_OR_RETURN(bool stop, validate());
        if (stop) {
          rep.stopped_early = true;
          break;
        }
      }
    }
    auto bad = stream->bad_lines();
    rep.bad_lines += bad.count;
    for (auto& e : bad.examples)
      if (rep.bad_examples.size() < 5) rep.bad_examples.push_back(e);
    rep.input_wait_seconds += stream->wait_seconds();
    progress.Clear();
    if (rep.stopped_early) break;
    ts.epochs_done = epoch + 1;
    log.Log(LogLevel::kInfo, "epoch %d done: %llu samples, mean loss %.6f", epoch + 1,
            static_cast<unsigned long long>(ts.samples), loss_n ? loss_sum / loss_n : 0.0);
    EMBARK_ASSIGN_OR_RETURN(bool stop, validate());
    if (stop) rep.stopped_early = true;
  }
  rep.final_loss = loss_n ? loss_sum / loss_n : 0.0;
  rep.train_calibration = label_sum > 0 ? pred_sum / label_sum : 0.0;
  if (saved_best && (rep.stopped_early || rep.valid.auc <= best_auc)) {
    // The checkpoint in out_dir holds the best model, saved right after the
    // validation that measured best_metrics; report those figures.
    if (rep.stopped_early)
      log.Log(LogLevel::kInfo, "early stop: keeping the best model (validation auc %.6f) in %s", best_auc,
              job.out_dir.c_str());
    rep.valid = best_metrics;
  } else {
    EMBARK_RETURN_IF_ERROR(save());
  }
  rep.epochs_done = ts.epochs_done;
  rep.steps = ts.step;
  rep.best_auc = best_auc;
  rep.samples_per_sec = rep.train_seconds > 0 ? rep.samples / rep.train_seconds : 0;
  rep.peak_rss_bytes = PeakRssBytes();
  rep.embedding_rows = model->embeddings() ? model->embeddings()->size() : model->wide()->size();
  for (const EmbeddingTable* t : {model->embeddings(), model->wide()}) {
    if (t == nullptr) continue;
    rep.embedding_bytes += t->memory_bytes();
    rep.embedding_ideal_bytes += t->size() * sizeof(float) * t->row_width();
  }
  rep.flops_per_sample = model->TrainFlopsPerSample();
  if (session) {
    EMBARK_RETURN_IF_ERROR(session->Drain());
    const DistStats ds = session->stats();
    rep.comm_wait_seconds = ds.wait_seconds;
    rep.sparse_bytes = ds.sparse_bytes;
    rep.dense_bytes = ds.dense_bytes;
    session.reset();
  }
  for (const auto& t : th) {
    rep.lookup_seconds += t.ws->seconds.lookup / T;
    rep.forward_seconds += t.ws->seconds.forward / T;
    rep.backward_seconds += t.ws->seconds.backward / T;
    rep.update_seconds += t.ws->seconds.update / T;
  }
  return rep;
}

}  // namespace embark
