// Byte sources: a file read as plain text, gzip or zstd, detected from its
// first bytes, and a splitter that hands out chunks of whole lines.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "util/status.h"

namespace embark {

enum class Compression { kNone, kGzip, kZstd };

class ByteSource {
 public:
  virtual ~ByteSource() = default;
  // Reads up to `n` bytes; 0 means a clean end of data. A truncated or
  // corrupt compressed stream is an error, never a silent short read.
  virtual Result<size_t> Read(char* buf, size_t n) = 0;
  virtual Compression compression() const = 0;
};

Result<std::unique_ptr<ByteSource>> OpenSource(const std::string& path);

// A run of complete lines from one file, with the number of its first line.
struct Chunk {
  std::string file;
  uint64_t first_line = 1;
  std::string text;  // whole lines, each ending in '\n'
};

class LineChunker {
 public:
  LineChunker(std::string path, std::unique_ptr<ByteSource> src, size_t chunk_bytes = 1 << 20)
      : path_(std::move(path)), src_(std::move(src)), chunk_bytes_(chunk_bytes) {}
  // Fills `out` with the next chunk; returns false at end of file.
  Result<bool> Next(Chunk* out);

 private:
  std::string path_;
  std::unique_ptr<ByteSource> src_;
  size_t chunk_bytes_;
  std::string carry_;
  uint64_t next_line_ = 1;
  bool eof_ = false;
};

}  // namespace embark
