// The streaming input pipeline: files are read in chunks by one thread,
// parsed on worker threads, handed back in file order (so a run is
// reproducible), mixed in a shuffle window and cut into mini-batches on a
// background thread. Memory is bounded by the in-flight chunks and the
// window, never by the size of the input.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "data/batch.h"
#include "data/parse.h"
#include "data/spec.h"

namespace embark {

struct ReadOptions {
  int parse_threads = 1;
  size_t chunk_bytes = 1 << 20;
  int64_t max_bad_lines = 0;  // bad lines tolerated before the read fails
  size_t max_in_flight = 8;   // chunks read ahead of the consumer
  // This reader's share of the input, for distributed training: chunks
  // (chunk_bytes of whole lines, counted across all files) go round-robin
  // to shard_count readers and this one parses those numbered shard_index.
  int shard_count = 1;
  int shard_index = 0;
  // Keep, for every blank or skipped bad line, how many samples precede it
  // (TakeSkippedLines): output written one line per input line stays aligned.
  bool record_skips = false;
};

struct BadLineReport {
  int64_t count = 0;
  std::vector<std::string> examples;  // the first few messages
};

// Where a BatchStream's samples come from, in blocks in input order: files
// (DataReader) or a caller's arrays (ArraySource, data/arrays.h).
class SampleSource {
 public:
  virtual ~SampleSource() = default;
  // The next block of samples, in input order; false at the end.
  virtual Result<bool> Next(Batch* block) = 0;
  virtual BadLineReport bad_lines() const { return {}; }
  // Appends to `out` the positions recorded so far (ReadOptions::record_skips)
  // and forgets them: position k means a blank or skipped line came after the
  // first k samples returned by Next (counted over all blocks and files).
  // Every position up to the number of samples returned so far is known.
  virtual void TakeSkippedLines(std::vector<uint64_t>* out) {}
  // Input consumed so far and its whole size (0 when unknown), in bytes or
  // any unit the progress line can show as a fraction.
  virtual uint64_t bytes_read() const { return 0; }
  virtual uint64_t bytes_total() const { return 0; }
};

class DataReader : public SampleSource {
 public:
  DataReader(std::vector<std::string> files, DataSpec spec, ReadOptions opt);
  ~DataReader() override;
  DataReader(const DataReader&) = delete;
  DataReader& operator=(const DataReader&) = delete;

  Result<bool> Next(Batch* block) override;
  BadLineReport bad_lines() const override;
  void TakeSkippedLines(std::vector<uint64_t>* out) override;
  uint64_t bytes_read() const override;
  // Size of the input on disk, or 0 when unknown (compressed input).
  uint64_t bytes_total() const override;

 private:
  struct Work {
    uint64_t seq;
    Chunk chunk;
    std::shared_ptr<const ColumnPlan> plan;
    size_t skip;
  };
  struct Done {
    Batch batch;
    std::vector<BadLine> bad;
    std::vector<uint32_t> skipped;
    Status status;
    bool end = false;
  };
  void ReadLoop();
  void ParseLoop();
  void Publish(uint64_t seq, Done d);

  std::vector<std::string> files_;
  DataSpec spec_;
  ReadOptions opt_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Work> work_;
  std::map<uint64_t, Done> done_;
  uint64_t next_seq_ = 0;  // next block the consumer takes
  uint64_t bytes_ = 0;
  uint64_t total_ = 0;
  bool compressed_ = false;
  bool stop_ = false;
  bool finished_ = false;
  size_t samples_ = 0;
  BadLineReport bad_;
  std::vector<uint64_t> skips_;
  std::thread reader_;
  std::vector<std::thread> parsers_;
};

struct StreamOptions {
  size_t batch_size = 2048;
  size_t shuffle_window = 0;  // samples mixed at once; 0 or 1 keeps input order
  uint64_t seed = 1;
  size_t prefetch = 4;        // batches prepared ahead
  // Samples dropped from the start of the stream's order (after the
  // shuffle, which they still take part in): the batches that follow are
  // those a stream without skip returns after its first `skip` samples. A
  // resumed epoch's cursor (TrainerState::epoch_samples).
  uint64_t skip = 0;
};

// Mini-batches from a SampleSource, prepared on a background thread.
class BatchStream {
 public:
  BatchStream(std::unique_ptr<SampleSource> reader, StreamOptions opt);
  ~BatchStream();
  Result<bool> Next(Batch* batch);
  BadLineReport bad_lines() const { return reader_->bad_lines(); }
  // As DataReader::TakeSkippedLines; positions count the samples in the
  // order this stream returns them, so only with shuffle_window <= 1.
  void TakeSkippedLines(std::vector<uint64_t>* out) { reader_->TakeSkippedLines(out); }
  uint64_t bytes_read() const { return reader_->bytes_read(); }
  uint64_t bytes_total() const { return reader_->bytes_total(); }
  // Seconds the consumer spent waiting for input.
  double wait_seconds() const { return wait_s_; }

 private:
  void Produce();
  Result<bool> Build(Batch* out);

  std::unique_ptr<SampleSource> reader_;
  StreamOptions opt_;
  Batch pool_;
  Batch carry_;  // the block the window is being filled from, and the next sample of it
  size_t carry_pos_ = 0;
  std::vector<uint32_t> order_;
  size_t pos_ = 0;
  uint64_t skip_;  // samples of opt_.skip still to drop
  bool input_done_ = false;
  uint64_t rng_;

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Batch> ready_;
  Status error_;
  bool end_ = false, stop_ = false;
  double wait_s_ = 0;
  std::thread thread_;
};

// Convenience: open `files` for sequential reading (no shuffle).
std::unique_ptr<BatchStream> OpenStream(const std::vector<std::string>& files, const DataSpec& spec,
                                        const ReadOptions& ro, const StreamOptions& so);

}  // namespace embark
