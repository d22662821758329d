// Table files of a checkpoint (docs/checkpoint.md): format version 2 is
// written and read block by block, each block checksummed, so saving or
// loading a table holds one block in memory, never the file. Version 1
// files (one checksum for the whole file) are read by ReadTableFileV1.
// int8 table files (serving copies, checkpoint version 3) have the same
// blocks with each row's weights as int8 plus an fp32 scale and bias, and
// no optimizer state.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <xxhash.h>

#include "embedding/row_store.h"
#include "util/env.h"
#include "util/fs.h"
#include "util/status.h"

namespace embark {

constexpr uint32_t kTableBlockRows = 4096;
// Loading refuses files whose blocks claim more rows than this.
constexpr uint32_t kMaxTableBlockRows = 1u << 20;

// Streams a version 2 table file to `path` (through fs::AtomicFile), and
// keeps its size and XXH64 for the manifest.
class TableFileWriter {
 public:
  static Result<std::unique_ptr<TableFileWriter>> Create(Env* env, const std::string& path, int dim, int row_width,
                                                         uint32_t block_rows = kTableBlockRows);
  // An int8 table file: rows given to Add are still row_width floats; their
  // weights are quantized (QuantizeInt8) and their state dropped.
  static Result<std::unique_ptr<TableFileWriter>> CreateInt8(Env* env, const std::string& path, int dim,
                                                             int row_width, uint32_t block_rows = kTableBlockRows);
  ~TableFileWriter();
  // n rows (keys[n], rows[n * row_width], meta[n] or null for zeros), as
  // one or more blocks of at most block_rows rows.
  Status Add(const uint64_t* keys, size_t n, const float* rows, const RowMeta* meta);
  // The end block, then sync, close and rename into place.
  Status Finish();
  uint64_t bytes() const { return bytes_; }
  uint64_t checksum() const { return XXH64_digest(state_); }

 private:
  static Result<std::unique_ptr<TableFileWriter>> Open(Env* env, const std::string& path, int dim, int row_width,
                                                       uint32_t block_rows, bool int8);
  TableFileWriter(std::unique_ptr<fs::AtomicFile> file, int dim, int row_width, uint32_t block_rows, bool int8);
  Status Emit(uint32_t rows, uint32_t kind, std::string_view payload_head, const uint64_t* keys, const float* rows_data,
              const RowMeta* meta);

  std::unique_ptr<fs::AtomicFile> file_;
  int dim_, row_width_;
  uint32_t block_rows_;
  bool int8_;
  uint64_t rows_ = 0, bytes_ = 0;
  XXH64_state_t* state_;
  std::string buf_;
};

// Reads a version 2 table file block by block; every block's checksum is
// verified before its bytes are parsed, from the same buffer.
class TableFileReader {
 public:
  // Opens `path` and checks its header: magic, and a row shape equal to
  // dim / row_width (the model's), else Corruption naming both. An int8
  // file (magic EMBTABQ8) is read too: its rows come out as row_width
  // floats, the weights dequantized and the state zero.
  static Result<std::unique_ptr<TableFileReader>> Open(Env* env, const std::string& path, int dim, int row_width);
  ~TableFileReader();
  // The next block into *out; false once the end block has been read (then
  // the row total and the file's end are checked too).
  Result<bool> Next(RowBatch* out);
  // XXH64 of every byte read so far (after the end: of the whole file).
  uint64_t checksum() const { return XXH64_digest(state_); }
  uint64_t bytes() const { return bytes_; }
  bool int8() const { return int8_; }

 private:
  TableFileReader(std::unique_ptr<SequentialFile> file, std::string path, int dim, int row_width, uint32_t block_rows);
  Status ReadExact(size_t n, char* buf);

  std::unique_ptr<SequentialFile> file_;
  std::string path_;
  int dim_, row_width_;
  uint32_t block_rows_;
  bool int8_ = false;
  uint64_t rows_ = 0, bytes_ = 0;
  bool done_ = false;
  XXH64_state_t* state_;
  std::string buf_;
};

// A version 1 table file already read and verified whole (`data`): calls
// fn for each row (key, row_width floats); checks shape and size.
Status ReadTableFileV1(std::string_view data, const std::string& path, int dim, int row_width,
                       const std::function<void(uint64_t, const float*)>& fn);

}  // namespace embark
