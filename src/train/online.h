// Online training (`embark train --stream`, docs/online.md): the stream
// driver over a TrainerImpl. It reads an unbounded LineSource in
// mini-batches, scores each batch before training on it (progressive
// validation, over a sliding window), and writes into the output directory
// a delta checkpoint every delta_every and a full snapshot every
// snapshot_every. It runs until asked to stop; then it finishes the step,
// writes a snapshot and returns.
//
// What a crash loses: the training since the last delta. A restart loads
// the snapshot and its deltas and continues the stream at the position the
// last delta recorded, so a replayable source (a directory, a followed file)
// trains each sample into the restored model exactly once; a pipe cannot be
// re-read, so what it carried after that position is lost.
#pragma once

#include <atomic>
#include <functional>
#include <string>

#include "train/trainer.h"
#include "util/log.h"

namespace embark {

struct StreamJob {
  // "-" (standard input), a named pipe, a directory or a regular file.
  std::string source;
  // Set (from a signal handler or another thread) to stop at the next step.
  const std::atomic<bool>* stop = nullptr;
  // Called with one JSON object per report interval (train --stream --json).
  std::function<void(const std::string&)> on_report;
};

// Runs the stream through `trainer` (opened for `job`; single process)
// until stream.stop is set or the source fails. The report covers the run.
Result<TrainReport> FitStream(TrainerImpl* trainer, const TrainJob& job, const StreamJob& stream, const Logger& log);

}  // namespace embark
