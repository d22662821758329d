// Mini-batch training with the hybrid update rule of Persia on one machine:
// each step's batch is split across threads; every thread runs forward and
// backward on its share and pushes its sparse gradients to the embedding
// tables at once (asynchronous), while dense gradients are summed across
// threads and applied in one synchronous optimizer step.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "checkpoint/checkpoint.h"
#include "data/pipeline.h"
#include "dist/session.h"
#include "metrics/metrics.h"
#include "model/model.h"
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
