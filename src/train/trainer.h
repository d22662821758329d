// Mini-batch training with the hybrid update rule of Persia: each step's
// batch is split across threads; every thread runs forward and backward on
// its share and pushes its sparse gradients to the embedding rows at once
// (asynchronous), while dense gradients are summed across threads (and
// ranks) and applied in one synchronous optimizer step.
//
// Two layers: a Trainer takes one step at a time (Step), scores (Evaluate)
// and saves (Save), and is what every driver stands on; Train() is the
// batch driver behind `embark train`: epochs over files, periodic
// validation, early stopping, the report. A stream-driven loop (online
// training) or a Python caller drives the same Trainer.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "checkpoint/checkpoint.h"
#include "data/pipeline.h"
#include "dist/session.h"
#include "metrics/metrics.h"
#include "nn/dense_optimizer.h"
#include "model/model.h"
#include "model/objective.h"
#include "util/log.h"
#include "util/thread_pool.h"

namespace embark {

struct TrainJob {
  TrainConfig cfg;
  DataSpec spec;
  std::vector<std::string> train_files;
  std::vector<std::string> valid_files;
  std::string out_dir;
  std::string resume_dir;
  bool progress = true;  // show progress on stderr
  // Distributed training when comm has more than one rank (src/dist/): this
  // process trains on its share of the input and owns a shard of every
  // table. Not owned.
  Communicator* comm = nullptr;
  DistOptions dist;
};

struct TrainReport {
  uint64_t samples = 0;
  int64_t steps = 0;
  int epochs_done = 0;
  double train_seconds = 0;    // time in the step loop
  double samples_per_sec = 0;  // training loop only (input overlapped)
  double input_wait_seconds = 0;
  double final_loss = 0;       // mean training loss over the last epoch
  double train_calibration = 0;  // mean prediction / CTR over the last epoch, before each update
  bool has_valid = false;
  Metrics valid;               // of the model written to out_dir
  double best_auc = 0;
  bool stopped_early = false;
  int64_t bad_lines = 0;
  std::vector<std::string> bad_examples;
  uint64_t peak_rss_bytes = 0;
  size_t embedding_rows = 0;
  size_t embedding_bytes = 0;    // held by the embedding tables (rows, keys, index)
  size_t embedding_ideal_bytes = 0;  // rows x (dim + optimizer state) x 4
  double flops_per_sample = 0;   // dense part, forward + backward (Model::TrainFlopsPerSample)
  // Seconds per phase, averaged over the training threads (each works on
  // its share of every batch); dense_step is the summing of the threads'
  // gradients and the optimizer step, on one thread.
  double lookup_seconds = 0, forward_seconds = 0, backward_seconds = 0, update_seconds = 0, dense_step_seconds = 0;
  int threads = 1;
  // Distributed runs: ranks, and this rank's time waiting on communication
  // and bytes sent to other ranks for rows (sparse) and dense gradients.
  int ranks = 1;
  double comm_wait_seconds = 0;
  uint64_t sparse_bytes = 0, dense_bytes = 0;
  uint64_t global_samples = 0;  // samples over all ranks
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

class Trainer {
 public:
  // A trainer of `model` with `cfg`'s optimizer and threading settings,
  // continuing from the dense optimizer state `opt` and counters `state`
  // (both empty for a new model). With a communicator of more than one
  // rank it trains this rank's share (src/dist/).
  static Result<std::unique_ptr<Trainer>> Create(const TrainConfig& cfg, std::unique_ptr<Model> model,
                                                 const DenseOptState& opt, const TrainerState& state,
                                                 Communicator* comm = nullptr, const DistOptions& dist = {});
  ~Trainer();

  // The next batch of this process from `read` into *batch; distributed,
  // also fetches its rows from their owners (ahead of time) and returns an
  // empty batch on a rank whose input ended before the others'. False once
  // the input (every rank's) is over.
  Result<bool> Next(const std::function<Result<bool>(Batch*)>& read, Batch* batch);

  // One step on `batch` (distributed: the batch Next returned): each
  // thread's share runs forward, objective, backward and sparse update;
  // then one dense optimizer step on the gradient combined over threads
  // and ranks. Allocates nothing in steady state (same batch sizes).
  Result<StepStats> Step(const Batch& batch);

  // Exact metrics on `files` (collective when distributed: every rank
  // passes the same files).
  Result<Metrics> Evaluate(const std::vector<std::string>& files);

  // Writes a checkpoint of the model, the optimizer state and the counters
  // (collective when distributed). best_auc goes into the counters.
  Status Save(const std::string& dir, double best_auc);

  // Waits for outstanding communication (distributed); before reading the
  // tables from outside the trainer.
  Status Drain();

  Model& model() { return *model_; }
  const TrainerState& state() const { return state_; }
  TrainerState& state() { return state_; }
  int threads() const { return pool_.size(); }
  PhaseSeconds phase_seconds() const;
  DistStats dist_stats() const;

 private:
  Trainer(const TrainConfig& cfg, std::unique_ptr<Model> model, int threads);
  struct ThreadState;

  TrainConfig cfg_;
  std::unique_ptr<Model> model_;
  std::unique_ptr<Objective> objective_;
  std::unique_ptr<DenseOptimizer> opt_;
  TrainerState state_;
  ThreadPool pool_;
  std::vector<ThreadState> th_;
  std::vector<float> grad_sum_;
  std::vector<float> batch_out_, batch_dout_;  // a non-separable objective's whole batch
  std::vector<Status> status_;  // per thread, reused every step
  std::vector<std::unique_ptr<Workspace>> score_ws_;
  std::unique_ptr<DistSession> session_;
  double dense_step_seconds_ = 0;
};

// Trains `job` from its start (or its resume checkpoint) to the end of its
// epochs or an early stop, writing the checkpoint to job.out_dir.
Result<TrainReport> Train(const TrainJob& job, const Logger& log);

// Scores every sample of `stream` in input order: fn(probabilities, labels, n).
Status Score(const Model& model, BatchStream* stream, ThreadPool* pool,
             const std::function<void(const float*, const float*, size_t)>& fn);

// Reads `files` and returns exact metrics of `model` on them.
Result<Metrics> EvaluateFiles(const Model& model, const std::vector<std::string>& files, ThreadPool* pool,
                              int64_t max_bad_lines, int parse_threads);

uint64_t PeakRssBytes();
int DefaultThreads();

}  // namespace embark
