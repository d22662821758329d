// Mini-batches from an unbounded LineSource, each with the stream position
// after its last sample, prepared on a background thread. A batch is full
// (batch_size samples) or, when lines come slowly, goes out once its first
// sample has waited max_delay_s: freshness is bounded by that, not by the
// rate of the stream.
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "data/batch.h"
#include "data/pipeline.h"
#include "data/spec.h"
#include "stream/source.h"

namespace embark {

struct StreamBatch {
  Batch batch;
  nlohmann::json position;  // where the stream stands after the batch's last sample
  double newest_unix = 0;   // wall-clock time the newest of its lines was read
};

struct StreamReaderOptions {
  size_t batch_size = 2048;
  double max_delay_s = 1.0;   // a partial batch goes out once its first sample has waited this long
  int64_t max_bad_lines = 0;  // over the life of the stream; one more ends it with the examples
  size_t queue = 4;           // batches prepared ahead
};

class StreamReader {
 public:
  // Starts reading `src` (already positioned by Seek) on a thread of its own.
  StreamReader(std::unique_ptr<LineSource> src, DataSpec spec, StreamReaderOptions opt);
  ~StreamReader();
  StreamReader(const StreamReader&) = delete;
  StreamReader& operator=(const StreamReader&) = delete;

  // Waits up to wait_s for the next batch: true with *out, false when none
  // is ready. An error (a file that cannot be read, too many bad lines)
  // ends the stream.
  Result<bool> Next(StreamBatch* out, double wait_s);
  // Stops the reading thread at once (what it was building is dropped).
  void Stop();
  // Stops reading the source but hands out what was read: the batch being
  // built goes out as it is, and Next returns every queued batch before
  // false. A clean stop trains these, so that it loses nothing of a pipe.
  void Finish();
  BadLineReport bad_lines() const;
  // What the source said since the last call (LineSource::TakeNote).
  std::vector<std::string> TakeNotes();

 private:
  void Loop();
  // Queues `cur_` (with `pos`), waiting for room; false when stopping.
  bool Emit(nlohmann::json pos);
  void Fail(Status st);

  std::unique_ptr<LineSource> src_;
  DataSpec spec_;
  StreamReaderOptions opt_;
  std::atomic<bool> stop_{false}, finish_{false};

  // The reading thread's own.
  Batch cur_;
  double cur_first_ = 0, cur_newest_ = 0;  // steady seconds of its first sample; wall time of its newest
  std::string plan_file_;
  std::shared_ptr<const ColumnPlan> plan_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<StreamBatch> ready_;
  Status error_;
  BadLineReport bad_;
  std::vector<std::string> notes_;
  bool done_ = false;
  std::thread thread_;
};

}  // namespace embark
