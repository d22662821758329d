// Training: a Trainer holds a model (new, or resumed from a checkpoint) with
// its optimizers and threads. Step(batch) is the unit every driver stands
// on; Fit() is the batch driver behind `embark train` (epochs over the
// training files, validation every eval_every steps and after each epoch,
// early stopping, the checkpoint). Under mpirun/srun each process is one
// rank of a distributed job (docs/distributed.md) and every collective call
// (Step, Evaluate, Save, Fit) must be made by every rank.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "embark/arrays.h"
#include "embark/batch.h"
#include "embark/checkpoint.h"
#include "embark/metrics.h"
#include "embark/options.h"
#include "embark/reader.h"
#include "embark/status.h"

namespace embark {

// What one Step did, over this process's samples.
struct StepResult {
  size_t samples = 0;
  double loss = 0;  // summed over the samples (binary cross-entropy)
  double sum_predictions = 0, sum_labels = 0;
  int64_t step = 0;  // steps taken so far, this one included
};

// What Fit did (`embark train --json` prints it).
struct TrainReport {
  uint64_t samples = 0;
  int64_t steps = 0;
  int epochs_done = 0;
  double train_seconds = 0;    // time in the step loop
  double samples_per_sec = 0;  // training loop only (input overlapped)
  // Process CPU time (user + system, every thread: trainers and parsers)
  // over the training loop, less what validation and checkpoint saves used.
  double cpu_seconds = 0;
  double input_wait_seconds = 0;
  double final_loss = 0;         // mean training loss over the last epoch
  double train_calibration = 0;  // mean prediction / CTR over the last epoch, before each update
  bool has_valid = false;
  Metrics valid;  // of the model written to out_dir (after its calibration, when fitted)
  // With calibrate = platt: the Platt scaling fitted on the validation data
  // (p = sigmoid(a * logit + b)) and the same model's metrics before it.
  bool calibrated = false;
  double platt_a = 1, platt_b = 0;
  Metrics valid_uncalibrated;
  double best_auc = 0;
  bool stopped_early = false;
  bool stopped = false;  // by Stop() or TrainOptions::on_history, mid-epoch (the checkpoint keeps the cursor)
  int64_t bad_lines = 0;
  std::vector<std::string> bad_examples;
  uint64_t peak_rss_bytes = 0;
  size_t embedding_rows = 0;
  size_t embedding_bytes = 0;        // held by the embedding tables (rows, keys, index)
  size_t embedding_ideal_bytes = 0;  // rows x (dim + optimizer state) x 4
  // Summed over the tables: rows created by training (admitted), training
  // reads refused a row by admit_min_count / admit_probability (rejected),
  // rows dropped over max_rows (evicted) and past row_ttl (expired).
  uint64_t rows_admitted = 0, rows_rejected = 0, rows_evicted = 0, rows_expired = 0;
  // A store with a disk tier (0 for the in-memory store): row lookups
  // answered from RAM (hits) and from disk (misses), bytes read from and
  // written to disk, time training waited on the disk, and the tables'
  // bytes in RAM and on disk at the end.
  uint64_t cache_hits = 0, cache_misses = 0;
  uint64_t disk_read_bytes = 0, disk_write_bytes = 0;
  double stall_seconds = 0;
  size_t table_ram_bytes = 0, table_disk_bytes = 0;
  double flops_per_sample = 0;       // dense part, forward + backward
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

class Trainer {
 public:
  // Resolves the options (defaults < config_file < values set; with
  // resume_from, the checkpoint's config and the resume rule), then builds
  // the model (its data spec from the first training file or the schema)
  // or loads the checkpoint. Launched under mpirun/srun, joins the job; an
  // error after joining it (a rank's checkpoint shard unreadable) ends every
  // rank, since the others would wait for this one forever.
  static Result<std::unique_ptr<Trainer>> Open(const TrainOptions& options);
  ~Trainer();
  Trainer(const Trainer&) = delete;
  Trainer& operator=(const Trainer&) = delete;

  // Trains to the end of the configured epochs or an early stop, writing
  // the checkpoint to options.out_dir (with early stopping, the best one).
  // With options.stream, trains online until Stop().
  Result<TrainReport> Fit();
  // Asks a running Fit to finish its step, write its checkpoint and return
  // (batch training: with the report's `stopped` set, and the epoch's cursor
  // in the checkpoint; a Stop before Fit starts stops that Fit after its
  // first step, and none after it). Safe from any thread and from a signal
  // handler.
  void Stop();

  // A reader of `files` with this model's data spec.
  Result<std::unique_ptr<BatchReader>> Read(const std::vector<std::string>& files,
                                            const ReadSettings& settings = {}) const;

  // One step on `batch` (single process; distributed runs train with Fit):
  // each thread's share runs forward, loss, backward and sparse update,
  // then one dense optimizer step on the combined gradient.
  Result<StepResult> Step(const Batch& batch);

  // Rows [begin, end) of `data` as samples of this model's data spec
  // (embark/arrays.h), appended to *batch after resetting it; labels are
  // taken when data.labels is set. An error names the row and column.
  Status Encode(const ArrayData& data, size_t begin, size_t end, Batch* batch) const;

  // Exact metrics of the current model on `files`, or on labelled arrays.
  Result<Metrics> Evaluate(const std::vector<std::string>& files);
  Result<Metrics> Evaluate(const ArrayData& data);
  // Click probabilities of the current model for every sample of `batch`
  // (batch.size() values into `out`); nothing is trained or created.
  Status Predict(const Batch& batch, float* out);

  // Writes a checkpoint of the model, optimizer state and counters to `dir`
  // (atomically: the previous checkpoint there survives any failure).
  Status Save(const std::string& dir);

  // The model as a checkpoint would describe it now.
  CheckpointInfo info() const;
  // The run's history so far, as the checkpoint's history.json holds it
  // (docs/report.md): resumed runs carry their checkpoint's records.
  std::string History() const;
  int rank() const;   // 0 outside a distributed job
  int ranks() const;  // 1 outside a distributed job
  // Ends every rank of a distributed job (after an error on one rank the
  // others would wait for it); exits the process outside one.
  [[noreturn]] void AbortJob(int code);

 private:
  struct Rep;
  explicit Trainer(std::unique_ptr<Rep> rep);
  std::unique_ptr<Rep> rep_;
};

}  // namespace embark
