// Unbounded sources of lines for online training (`embark train --stream`,
// docs/online.md): standard input or a named pipe, a directory watched for
// new files (each consumed once, in name order), and a growing file followed
// like `tail -f`.
//
// A LineSource hands out runs of whole lines and says, as a JSON object,
// where the stream stands after any line it handed out; the trainer records
// that position with each checkpoint and gives it back to Seek on restart.
// This interface is where a message queue (Kafka, Pulsar) plugs in: its
// position is the partition offsets, Seek commits or rewinds them, and
// replayable() is true while the broker retains what was read.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "util/status.h"

namespace embark {

struct StreamChunk {
  std::string file;         // where the lines come from ("-": standard input)
  uint64_t offset = 0;      // byte offset of text's first line in that file (uncompressed)
  uint64_t first_line = 1;  // its line number
  // The file's first line (a CSV header), on every chunk of the file; and
  // whether `text` starts at the file's start (so holds that line too).
  std::string header;
  bool file_start = false;
  std::string text;         // whole lines, each ending in '\n'
  double read_unix = 0;     // wall-clock time the lines were read
};

class LineSource {
 public:
  virtual ~LineSource() = default;
  // Waits up to wait_s for lines: true with *out filled, false when none
  // came in time (the stream is idle). An error is for good: a file that
  // cannot be read, a corrupt compressed file.
  virtual Result<bool> Next(StreamChunk* out, double wait_s) = 0;
  // The position after the first `bytes` bytes (whole lines) of `chunk`.
  virtual nlohmann::json PositionAfter(const StreamChunk& chunk, uint64_t bytes) const = 0;
  // Before the first Next: continue after `pos` (from PositionAfter of a
  // source of the same kind). *note says what could not be honoured (a
  // file shorter than the position: read from its start).
  virtual Status Seek(const nlohmann::json& pos, std::string* note) = 0;
  // Whether lines after a recorded position can be read again after a
  // restart (false for a pipe: what was read from it is gone).
  virtual bool replayable() const = 0;
  virtual std::string describe() const = 0;
  // What the source has to say since it was last asked (a followed file
  // truncated, standard input closed), once; empty for nothing.
  virtual std::string TakeNote() { return ""; }
};

struct LineSourceOptions {
  size_t chunk_bytes = 1 << 20;  // at most this much text per chunk (longer lines excepted)
  double poll_s = 0.1;           // how often a directory or a followed file is checked
  // Set from a signal handler or another thread: Next returns false at once.
  const std::atomic<bool>* stop = nullptr;
};

// The source at `path`: "-" is standard input; a FIFO is read as a pipe
// (reopened when its writer goes, for the next one); a directory is watched;
// a regular file is followed. Pipes and followed files carry plain text;
// files in a watched directory may be gzip or zstd. A directory's files are
// taken in name order once they appear, skipping names that start with '.'
// or end in ".tmp" (write there, then rename into place); a file whose name
// sorts before one already consumed is never read.
Result<std::unique_ptr<LineSource>> OpenLineSource(const std::string& path, const LineSourceOptions& opt = {});

}  // namespace embark
