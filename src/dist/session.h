// One rank's side of distributed training: the model's embedding tables
// hold this rank's shards, and each step's rows are fetched from their
// owners ahead of time on a communication thread and staged for the step's
// threads, which reach them through rows() (a StagedRows) instead of the
// tables.
//
// Step t of every rank, in lockstep (the order of collective operations is
// the same on every rank, so they match):
//   NextStep: queue the row fetch of step t + staleness (keys of a batch read
//             that far ahead), wait for the fetch of step t, stage its rows;
//   (the trainer's threads run forward and backward on the local batch)
//   FinishStep: sum dense gradients over ranks (waited for: dense layers are
//             synchronous), then queue the push of step t's row gradients.
// With staleness 0 the fetch of step t+1 is queued after the push of step t,
// so every step reads fully updated rows (bit-for-bit reproducible for a
// given rank count); with staleness s, step t+s's rows are read before the
// gradients of steps t..t+s-1 reach them, and communication overlaps compute.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <future>
#include <memory>
#include <thread>

#include "data/batch.h"
#include "dist/dense.h"
#include "dist/sparse.h"

namespace embark {

class Model;

struct DistOptions {
  int staleness = 1;
  WireCompression compression = WireCompression::kNone;
};

struct DistStats {
  double wait_seconds = 0;  // the trainer waiting on communication
  uint64_t sparse_bytes = 0, dense_bytes = 0;  // sent to other ranks
};

// Runs tasks one at a time, in order, on its own thread: the only thread
// that talks to the Communicator while training.
class CommQueue {
 public:
  CommQueue();
  ~CommQueue();
  std::shared_future<Status> Submit(std::function<Status()> task);

 private:
  void Loop();
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::packaged_task<Status()>> tasks_;
  bool stop_ = false;
  std::thread thread_;
};

class DistSession {
 public:
  DistSession(Communicator* comm, Model* model, DistOptions opt);
  // Waits for queued communication.
  ~DistSession();

  // The rows of the current step (after NextStep) or of the validation
  // batch being scored (inside ScoreSlices' score callback).
  RowAccess* rows() { return &staged_; }
  Communicator* comm() const { return comm_; }

  // Fills *batch with this rank's batch of the next step (empty when this
  // rank's input ended before the others') with its rows staged; false once
  // every rank is out of input. `next` reads this rank's input.
  Result<bool> NextStep(const std::function<Result<bool>(Batch*)>& next, Batch* batch);

  // After the threads ran the step: grad[0..n) (the gradient of this rank's
  // mean loss over *samples samples) becomes the gradient of the mean loss
  // over all ranks' samples, and *samples their total. Queues the push of
  // the row gradients.
  Status FinishStep(float* grad, size_t n, double* samples);

  // Scores validation batches collectively: every rank passes the same
  // sequence of global batches and scores its slice; returns every rank's
  // probabilities and labels, in rank order, on every rank.
  Status ScoreSlices(const std::function<Result<bool>(Batch*)>& next,
                     const std::function<Status(const Batch&, float*)>& score, std::vector<double>* probs,
                     std::vector<float>* labels);

  // Waits until every queued operation has finished.
  Status Drain();

  DistStats stats() const;

  // Samples [rank * n / size, (rank + 1) * n / size) of `in`.
  static void Slice(const Batch& in, int rank, int size, Batch* out);

 private:
  struct Pending {
    Batch batch;
    bool has = false;
    StepRows rows;
    std::shared_future<Status> fetched;
  };
  Status Wait(const std::shared_future<Status>& f);
  std::vector<uint64_t> UniqueKeys(const Batch& b) const;
  void Stage(StepRows* rows);

  Communicator* comm_;
  Model* model_;
  DistOptions opt_;
  StagedRows staged_;
  std::unique_ptr<SparseExchange> sparse_;
  std::unique_ptr<DenseAllreduce> dense_;
  std::deque<std::shared_ptr<Pending>> pending_;
  std::shared_ptr<Pending> current_;
  bool local_done_ = false;
  std::shared_future<Status> last_;
  double wait_s_ = 0;
  uint64_t dense_bytes_ = 0;
  CommQueue queue_;  // last: destroyed (joined) first
};

// The validation exchange's messages (one per rank: n, n probabilities as
// doubles, n labels) into probs and labels, in rank order; a message that
// does not have that shape is Corruption naming the rank.
Status ReadScores(const std::vector<Bytes>& recv, std::vector<double>* probs, std::vector<float>* labels);

}  // namespace embark
