// Mini-batch training with the hybrid update rule of Persia: each step's
// batch is split across threads; every thread runs forward and backward on
// its share and pushes its sparse gradients to the embedding rows at once
// (asynchronous), while dense gradients are summed across threads (and
// ranks) and applied in one synchronous optimizer step.
//
// Two layers: a TrainerImpl (the implementation of the public
// embark::Trainer, include/embark/trainer.h) takes one step at a time (Step), scores (Evaluate)
// and saves (Save), and is what every driver stands on; Train() is the
// batch driver behind `embark train`: epochs over files, periodic
// validation, early stopping, the report. A stream-driven loop (online
// training) or a Python caller drives the same TrainerImpl.
#pragma once

#include <algorithm>
#include <atomic>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "checkpoint/checkpoint.h"
#include "embark/trainer.h"
#include "data/arrays.h"
#include "data/pipeline.h"
#include "dist/session.h"
#include "metrics/metrics.h"
#include "nn/dense_optimizer.h"
#include "model/model.h"
#include "model/objective.h"
#include "util/log.h"
#include "util/thread_pool.h"

namespace embark {

// What scoring writes per sample: the click probability (after the model's
// calibration), or the raw logit (to fit a calibration to).
enum class ScoreOutput { kProbability, kLogit };

// Labelled data a trainer scores: files, or a caller's arrays.
// Splits [0, n) into `parts` contiguous ranges: the i-th.
inline std::pair<size_t, size_t> Range(size_t n, size_t parts, size_t i) {
  const size_t base = n / parts, extra = n % parts;
  const size_t begin = i * base + std::min(i, extra);
  return {begin, begin + base + (i < extra ? 1 : 0)};
}

struct EvalData {
  EvalData() = default;
  EvalData(std::vector<std::string> f) : files(std::move(f)) {}  // NOLINT: files are the usual case
  std::vector<std::string> files;
  std::shared_ptr<const ArrayEncoder> arrays;
  bool empty() const { return files.empty() && !arrays; }
};

struct TrainJob {
  TrainConfig cfg;
  DataSpec spec;
  std::vector<std::string> train_files;
  std::vector<std::string> valid_files;
  // Training and validation from a caller's arrays (the API's TrainOptions):
  // used in place of train_files / valid_files when set.
  std::shared_ptr<const ArrayEncoder> train_arrays, valid_arrays;
  std::string out_dir;
  std::string resume_dir;
  bool progress = true;  // show progress on stderr
  // Distributed training when comm has more than one rank (src/dist/): this
  // process trains on its share of the input and owns a shard of every
  // table. Not owned.
  Communicator* comm = nullptr;
  DistOptions dist;
  // Called after each periodic checkpoint (checkpoint_every) with the
  // state it holds; an error ends the run with it, as if killed right after
  // the save (tests resume from there).
  std::function<Status(const TrainerState&)> after_checkpoint;
  // Asked to stop (Trainer::Stop): Fit finishes its step, saves and returns.
  const std::atomic<bool>* stop = nullptr;
  // Called on Fit's thread after every step, and with each history record
  // as it is added (false: stop as `stop` does).
  std::function<void()> on_step;
  std::function<bool(const std::string& record_json)> on_history;
};


// What one Step did.
struct StepStats {
  size_t samples = 0;         // this process's samples
  double global_samples = 0;  // over every rank
  ObjectiveSums sums;         // over this process's samples
};

// Seconds per phase, summed over the steps and averaged over threads.
struct PhaseSeconds {
  double lookup = 0, forward = 0, backward = 0, update = 0, dense_step = 0;
};

class TrainerImpl {
 public:
  // A trainer of `model` with `cfg`'s optimizer and threading settings,
  // continuing from the dense optimizer state `opt` and counters `state`
  // (both empty for a new model). With a communicator of more than one
  // rank it trains this rank's share (src/dist/).
  static Result<std::unique_ptr<TrainerImpl>> Create(const TrainConfig& cfg, std::unique_ptr<Model> model,
                                                 const DenseOptState& opt, const TrainerState& state,
                                                 Communicator* comm = nullptr, const DistOptions& dist = {});
  ~TrainerImpl();

  // Trains on `objective` from the next step on (binary cross-entropy
  // until then); a retrieval family brings its own.
  void SetObjective(std::unique_ptr<Objective> objective) { objective_ = std::move(objective); }
  const Objective& objective() const { return *objective_; }

  // The next batch of this process from `read` into *batch; distributed,
  // also fetches its rows from their owners (ahead of time) and returns an
  // empty batch on a rank whose input ended before the others'. False once
  // the input (every rank's) is over.
  Result<bool> Next(const std::function<Result<bool>(Batch*)>& read, Batch* batch);

  // One step on `batch` (distributed: the batch Next returned): each
  // thread's share runs forward, objective and backward; the sparse
  // gradients are summed by key over the threads (and, distributed, over
  // the ranks) and each row updated once, after every thread has read its
  // rows; then one dense optimizer step on the gradient combined over
  // threads and ranks. So the split changes only the order of float sums. Allocates nothing in steady state (same batch sizes). A
  // loss or dense gradient that is not finite ends training with an error
  // naming the step, before the dense weights take it.
  // With `outputs`, also writes there the model's outputs (logits) for the
  // batch as the step's forward pass computed them, before any update: the
  // scores of progressive validation (batch.size() * outputs() floats).
  Result<StepStats> Step(const Batch& batch, float* outputs = nullptr);

  // Exact metrics on `data` (collective when distributed: every rank
  // passes the same files); with `reliability`, also the reliability
  // diagram's buckets of its predictions.
  Result<Metrics> Evaluate(const EvalData& data, std::vector<ReliabilityBucket>* reliability = nullptr);

  // Click probabilities of the current model for `batch` (single process):
  // rows read-only, dense layers as in Evaluate.
  Status Predict(const Batch& batch, float* probs);

  // Scores `files` (held-out data) once, fits the model's Platt scaling
  // (Model::Probability) to its raw logits and keeps it in the model.
  // Returns the metrics on those files with the scaling in place, and in
  // *raw those before it. When the data cannot support a fit, the model
  // keeps plain sigmoid, *fit says why and both metrics are the raw ones.
  Result<Metrics> Calibrate(const EvalData& data, Metrics* raw, Status* fit,
                            std::vector<ReliabilityBucket>* reliability = nullptr);

  // Writes a checkpoint of the model, the optimizer state and the counters
  // (collective when distributed). best_auc goes into the counters.
  Status Save(const std::string& dir, double best_auc);

  // Waits for outstanding communication (distributed) and for a running
  // eviction round; before reading the tables from outside the trainer.
  Status Drain();

  // The dense optimizer's state as a checkpoint holds it.
  DenseOptState DenseState() const;
  Model& model() { return *model_; }
  const TrainerState& state() const { return state_; }
  TrainerState& state() { return state_; }
  int threads() const { return pool_.size(); }
  PhaseSeconds phase_seconds() const;
  DistStats dist_stats() const;

 private:
  TrainerImpl(const TrainConfig& cfg, std::unique_ptr<Model> model, int threads);
  Status Diverged(int64_t step, double loss, float grad_sum) const;
  // After every thread's Backward of a batch of n split in `parts`: the
  // sparse gradients summed by key and applied once per row (one share:
  // Model::ApplySparse; several: Model::ApplySparseMerged on every thread).
  Status ApplySparse(size_t parts, size_t n, RowAccess* rows);
  // Scores (probabilities under the model's calibration, or logits) and
  // labels of `data`, in input order.
  Status ScoreData(const EvalData& data, ScoreOutput out, std::vector<double>* scores, std::vector<float>* labels);
  struct ThreadState;
  // Rows dropped by the tables' RowPolicy (TTL, cap): every evict_every_
  // steps an eviction round runs Evict on every table, on a thread of its
  // own (a step never waits; a round starts only after the previous one has
  // finished), or on the training thread in deterministic runs.
  Status MaybeEvict();
  Status EvictAll(uint32_t now);  // one round, on this thread
  Status JoinEviction();  // waits for a round in flight; its error, if any

  TrainConfig cfg_;
  std::unique_ptr<Model> model_;
  std::unique_ptr<Objective> objective_;
  std::unique_ptr<DenseOptimizer> opt_;
  TrainerState state_;
  ThreadPool pool_;
  std::vector<ThreadState> th_;
  std::vector<float> grad_sum_;
  std::vector<float> batch_out_, batch_dout_;  // a non-separable objective's whole batch
  std::vector<uint64_t> items_;                // each sample's item, for an objective that reads them
  std::vector<Status> status_;  // per thread, reused every step
  std::vector<const Workspace*> merge_ws_;  // every thread's workspace, for ApplySparseMerged
  std::vector<std::unique_ptr<Workspace>> score_ws_;
  std::unique_ptr<DistSession> session_;
  // Batches read ahead, whose rows the tables are prefetching (single
  // process, tables with a disk tier).
  std::deque<Batch> ahead_;
  bool ahead_done_ = false;
  double dense_step_seconds_ = 0;
  int64_t evict_every_ = 0;  // 0: no table drops rows
  std::thread evictor_;
  std::atomic<bool> evicting_{false};
  Status evict_status_;
};

// The trainer of `job`: a new model, or its resume checkpoint loaded
// (this rank's shard) and checked against job.cfg (CheckFixedParams).
Result<std::unique_ptr<TrainerImpl>> OpenTrainer(const TrainJob& job, const Logger& log);

// The batch driver over `trainer` (opened for `job`): epochs, validation,
// early stopping, the checkpoint in job.out_dir, the report.
Result<TrainReport> Fit(TrainerImpl* trainer, const TrainJob& job, const Logger& log);

// The end-of-run figures of `m`'s tables into *rep: rows (of the largest
// table), bytes, admission and eviction counters, cache and disk figures.
void AddTableFigures(const Model& m, TrainReport* rep);

// OpenTrainer then Fit: trains `job` from its start (or its resume checkpoint) to the end of its
// epochs or an early stop, writing the checkpoint to job.out_dir.
Result<TrainReport> Train(const TrainJob& job, const Logger& log);

// Scores every sample of `stream` in input order: fn(scores, labels, n).
Status Score(const Model& model, BatchStream* stream, ThreadPool* pool,
             const std::function<void(const float*, const float*, size_t)>& fn,
             ScoreOutput out = ScoreOutput::kProbability);

// Click probabilities (Model::Probability), or with kLogit the logits, of
// every sample of `batch` into out_scores, split across the pool with one
// workspace per thread (null rows: the model's own stores, read-only).
Status ScoreBatch(const Model& model, const Batch& batch, ThreadPool* pool,
                  const std::vector<std::unique_ptr<Workspace>>& ws, RowAccess* rows, float* out_scores,
                  ScoreOutput out = ScoreOutput::kProbability);
// One workspace per thread of the pool.
std::vector<std::unique_ptr<Workspace>> Workspaces(const Model& model, ThreadPool* pool);

// A record of the run's history (docs/report.md) with what every record
// holds: step, samples, `seconds` of training, and the training loss and
// calibration of the `n` samples summed in `sums` (left out when n is 0).
// The batch driver adds the epoch and validation metrics, the online driver
// its progressive window.
nlohmann::json HistoryRecord(const TrainerState& state, double seconds, const ObjectiveSums& sums, uint64_t n);
// The training seconds the history has recorded so far: a resumed run's
// records go on from there.
double HistorySeconds(const TrainerState& state);

// Reads `data` (files or arrays) and returns exact metrics of `model` on it.
Result<Metrics> EvaluateData(const Model& model, const EvalData& data, ThreadPool* pool, int64_t max_bad_lines,
                             int parse_threads);

uint64_t PeakRssBytes();
// User + system CPU seconds of the whole process (all threads).
double ProcessCpuSeconds();
int DefaultThreads();

}  // namespace embark
