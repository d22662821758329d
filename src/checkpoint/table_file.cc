#include "checkpoint/table_file.h"

#include <cstring>

#include "embedding/row_codec.h"

namespace embark {
namespace {

constexpr char kMagicV1[8] = {'E', 'M', 'B', 'T', 'A', 'B', 'L', '1'};
constexpr char kMagicV2[8] = {'E', 'M', 'B', 'T', 'A', 'B', 'L', '2'};
constexpr char kMagicQ8[8] = {'E', 'M', 'B', 'T', 'A', 'B', 'Q', '8'};
constexpr size_t kFileHeader = 32;   // magic, u32 dim, u32 row_width, u32 block_rows, u32 meta bytes, u64 xxh64
constexpr size_t kBlockHeader = 16;  // u32 rows, u32 kind, u64 payload bytes
constexpr uint32_t kMetaBytes = 8;   // per row: RowMeta, u32 last step then u32 count
static_assert(sizeof(RowMeta) == kMetaBytes, "RowMeta is stored as its bytes");
constexpr uint32_t kRowsBlock = 0, kEndBlock = 1;

template <typename T>
void Put(std::string* s, const T& v) {
  s->append(reinterpret_cast<const char*>(&v), sizeof(T));
}
template <typename T>
T Get(const char* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

uint64_t RowBytes(int row_width) { return 8 + 4 * static_cast<uint64_t>(row_width) + kMetaBytes; }
// An int8 row in a file: f32 scale, f32 bias, dim int8.
uint64_t Int8RowBytes(int dim) { return 8 + static_cast<uint64_t>(dim); }
// A row of a rows block: key, the row, metadata.
uint64_t RecordBytes(bool int8, int dim, int row_width) {
  return int8 ? 8 + Int8RowBytes(dim) + kMetaBytes : RowBytes(row_width);
}

std::string Shape(uint64_t dim, uint64_t width) { return std::to_string(dim) + "/" + std::to_string(width); }

}  // namespace

// ---- writing -----------------------------------------------------------------

TableFileWriter::TableFileWriter(std::unique_ptr<fs::AtomicFile> file, int dim, int row_width, uint32_t block_rows,
                                 bool int8)
    : file_(std::move(file)),
      dim_(dim),
      row_width_(row_width),
      block_rows_(block_rows),
      int8_(int8),
      state_(XXH64_createState()) {
  XXH64_reset(state_, 0);
}

TableFileWriter::~TableFileWriter() { XXH64_freeState(state_); }

Result<std::unique_ptr<TableFileWriter>> TableFileWriter::Create(Env* env, const std::string& path, int dim,
                                                                 int row_width, uint32_t block_rows) {
  return Open(env, path, dim, row_width, block_rows, false);
}

Result<std::unique_ptr<TableFileWriter>> TableFileWriter::CreateInt8(Env* env, const std::string& path, int dim,
                                                                     int row_width, uint32_t block_rows) {
  return Open(env, path, dim, row_width, block_rows, true);
}

Result<std::unique_ptr<TableFileWriter>> TableFileWriter::Open(Env* env, const std::string& path, int dim,
                                                               int row_width, uint32_t block_rows, bool int8) {
  EMBARK_ASSIGN_OR_RETURN(std::unique_ptr<fs::AtomicFile> f, fs::AtomicFile::Create(path, env));
  std::unique_ptr<TableFileWriter> w(new TableFileWriter(std::move(f), dim, row_width, block_rows, int8));
  std::string h(int8 ? kMagicQ8 : kMagicV2, 8);
  Put<uint32_t>(&h, static_cast<uint32_t>(dim));
  // The bytes of a stored row for int8 (scale, bias, dim int8), else the floats.
  Put<uint32_t>(&h, static_cast<uint32_t>(int8 ? Int8RowBytes(dim) : row_width));
  Put<uint32_t>(&h, block_rows);
  Put<uint32_t>(&h, kMetaBytes);
  Put<uint64_t>(&h, XXH64(h.data(), h.size(), 0));
  EMBARK_RETURN_IF_ERROR(w->file_->Append(h));
  XXH64_update(w->state_, h.data(), h.size());
  w->bytes_ += h.size();
  return w;
}

Status TableFileWriter::Emit(uint32_t rows, uint32_t kind, std::string_view payload_head, const uint64_t* keys,
                             const float* rows_data, const RowMeta* meta) {
  const uint64_t payload = payload_head.size() + rows * RecordBytes(int8_, dim_, row_width_);
  buf_.clear();
  Put<uint32_t>(&buf_, rows);
  Put<uint32_t>(&buf_, kind);
  Put<uint64_t>(&buf_, payload);
  buf_.append(payload_head);
  if (rows > 0) {
    buf_.append(reinterpret_cast<const char*>(keys), rows * sizeof(uint64_t));
    if (int8_) {
      const size_t at = buf_.size(), rb = Int8RowBytes(dim_);
      buf_.resize(at + rows * rb);
      for (uint32_t i = 0; i < rows; ++i) {
        char* r = buf_.data() + at + i * rb;
        float sb[2];
        QuantizeInt8(rows_data + static_cast<size_t>(i) * row_width_, dim_, reinterpret_cast<int8_t*>(r + 8), &sb[0],
                     &sb[1]);
        std::memcpy(r, sb, 8);
      }
    } else {
      buf_.append(reinterpret_cast<const char*>(rows_data), static_cast<size_t>(rows) * row_width_ * sizeof(float));
    }
    if (meta != nullptr)
      buf_.append(reinterpret_cast<const char*>(meta), rows * kMetaBytes);
    else
      buf_.append(rows * kMetaBytes, '\0');
  }
  Put<uint64_t>(&buf_, XXH64(buf_.data(), buf_.size(), 0));
  EMBARK_RETURN_IF_ERROR(file_->Append(buf_));
  XXH64_update(state_, buf_.data(), buf_.size());
  bytes_ += buf_.size();
  return Status::OK();
}

Status TableFileWriter::Add(const uint64_t* keys, size_t n, const float* rows, const RowMeta* meta) {
  // No checkpoint holds a weight or optimizer state that is not finite.
  for (size_t i = 0; i < n; ++i) {
    float sum = 0;
    for (int k = 0; k < row_width_; ++k) sum += rows[i * row_width_ + k] * 0.0f;
    if (sum != 0.0f)
      return Status::InvalidArgument(file_->path() + ": the row of key " + std::to_string(keys[i]) +
                                     " is not finite; refusing to write a model that is not finite");
  }
  for (size_t i = 0; i < n;) {
    const uint32_t take = static_cast<uint32_t>(std::min<size_t>(n - i, block_rows_));
    EMBARK_RETURN_IF_ERROR(Emit(take, kRowsBlock, {}, keys + i, rows + i * row_width_,
                                meta != nullptr ? meta + i : nullptr));
    rows_ += take;
    i += take;
  }
  return Status::OK();
}

Status TableFileWriter::Finish() {
  std::string total;
  Put<uint64_t>(&total, rows_);
  EMBARK_RETURN_IF_ERROR(Emit(0, kEndBlock, total, nullptr, nullptr, nullptr));
  return file_->Commit();
}

// ---- reading -----------------------------------------------------------------

TableFileReader::TableFileReader(std::unique_ptr<SequentialFile> file, std::string path, int dim, int row_width,
                                 uint32_t block_rows)
    : file_(std::move(file)),
      path_(std::move(path)),
      dim_(dim),
      row_width_(row_width),
      block_rows_(block_rows),
      state_(XXH64_createState()) {
  XXH64_reset(state_, 0);
}

TableFileReader::~TableFileReader() { XXH64_freeState(state_); }

Status TableFileReader::ReadExact(size_t n, char* buf) {
  EMBARK_ASSIGN_OR_RETURN(size_t got, file_->Read(n, buf));
  if (got != n) return Status::Corruption(path_ + ": truncated (ends inside a block)");
  XXH64_update(state_, buf, n);
  bytes_ += n;
  return Status::OK();
}

Result<std::unique_ptr<TableFileReader>> TableFileReader::Open(Env* env, const std::string& path, int dim,
                                                               int row_width) {
  EMBARK_ASSIGN_OR_RETURN(std::unique_ptr<SequentialFile> f, env->NewSequentialFile(path));
  std::unique_ptr<TableFileReader> r(new TableFileReader(std::move(f), path, dim, row_width, 0));
  char h[kFileHeader];
  EMBARK_RETURN_IF_ERROR(r->ReadExact(sizeof(h), h));
  r->int8_ = std::memcmp(h, kMagicQ8, 8) == 0;
  if (std::memcmp(h, kMagicV2, 8) != 0 && !r->int8_)
    return Status::Corruption(path + ": not an embark table file (version 2 or int8)");
  if (Get<uint64_t>(h + 24) != XXH64(h, 24, 0)) return Status::Corruption(path + ": header checksum mismatch (file is corrupted)");
  const uint32_t fdim = Get<uint32_t>(h + 8), fwidth = Get<uint32_t>(h + 12);
  r->block_rows_ = Get<uint32_t>(h + 16);
  const uint64_t want_width = r->int8_ ? Int8RowBytes(dim) : static_cast<uint64_t>(row_width);
  if (fdim != static_cast<uint32_t>(dim) || fwidth != want_width)
    return Status::Corruption(path + ": row shape " + Shape(fdim, fwidth) + " does not match the model's " +
                              Shape(dim, want_width) + (r->int8_ ? " (int8 rows: dim / bytes per row)" : ""));
  if (Get<uint32_t>(h + 20) != kMetaBytes || r->block_rows_ == 0 || r->block_rows_ > kMaxTableBlockRows)
    return Status::Corruption(path + ": bad header (block of " + std::to_string(r->block_rows_) + " rows, " +
                              std::to_string(Get<uint32_t>(h + 20)) + " metadata bytes per row)");
  return r;
}

Result<bool> TableFileReader::Next(RowBatch* out) {
  out->clear();
  if (done_) return false;
  const std::string where = path_ + ": block at byte " + std::to_string(bytes_);
  buf_.resize(kBlockHeader);
  EMBARK_RETURN_IF_ERROR(ReadExact(kBlockHeader, buf_.data()));
  const uint32_t rows = Get<uint32_t>(buf_.data()), kind = Get<uint32_t>(buf_.data() + 4);
  const uint64_t payload = Get<uint64_t>(buf_.data() + 8);
  const bool is_end = kind == kEndBlock && rows == 0 && payload == 8;
  const bool is_rows = kind == kRowsBlock && rows > 0 && rows <= block_rows_ && payload == rows * RecordBytes(int8_, dim_, row_width_);
  if (!is_end && !is_rows)
    return Status::Corruption(where + ": bad block header (" + std::to_string(rows) + " rows, " +
                              std::to_string(payload) + " bytes)");
  // Verify the block (header, payload) against its checksum, then parse that buffer.
  buf_.resize(kBlockHeader + payload + 8);
  EMBARK_RETURN_IF_ERROR(ReadExact(payload + 8, buf_.data() + kBlockHeader));
  if (Get<uint64_t>(buf_.data() + kBlockHeader + payload) != XXH64(buf_.data(), kBlockHeader + payload, 0))
    return Status::Corruption(path_ + ": checksum mismatch in the block at byte " +
                              std::to_string(bytes_ - buf_.size()) + " (file is corrupted)");
  const char* p = buf_.data() + kBlockHeader;
  if (is_end) {
    done_ = true;
    const uint64_t total = Get<uint64_t>(p);
    if (total != rows_)
      return Status::Corruption(path_ + ": " + std::to_string(rows_) + " rows read, the file says " +
                                std::to_string(total));
    char extra;
    EMBARK_ASSIGN_OR_RETURN(size_t more, file_->Read(1, &extra));
    if (more != 0) return Status::Corruption(path_ + ": data after the end block");
    return false;
  }
  out->keys.resize(rows);
  out->rows.resize(static_cast<size_t>(rows) * row_width_);
  out->meta.resize(rows);
  std::memcpy(out->keys.data(), p, rows * sizeof(uint64_t));
  p += rows * sizeof(uint64_t);
  if (int8_) {
    const size_t rb = Int8RowBytes(dim_);
    for (uint32_t i = 0; i < rows; ++i, p += rb) {
      float sb[2];
      std::memcpy(sb, p, 8);
      float* o = out->rows.data() + static_cast<size_t>(i) * row_width_;
      for (int j = 0; j < dim_; ++j) o[j] = DequantizeInt8(static_cast<int8_t>(p[8 + j]), sb[0], sb[1]);
      std::fill(o + dim_, o + row_width_, 0.0f);
    }
  } else {
    std::memcpy(out->rows.data(), p, out->rows.size() * sizeof(float));
    p += out->rows.size() * sizeof(float);
  }
  std::memcpy(out->meta.data(), p, rows * kMetaBytes);
  rows_ += rows;
  return true;
}

// ---- version 1 -----------------------------------------------------------------

Status ReadTableFileV1(std::string_view data, const std::string& path, int dim, int row_width,
                       const std::function<void(uint64_t, const float*)>& fn) {
  const size_t head = 8 + 4 + 4 + 8;
  if (data.size() < head) return Status::Corruption(path + ": truncated");
  if (std::memcmp(data.data(), kMagicV1, 8) != 0) return Status::Corruption(path + ": not an embark table file");
  const uint32_t fdim = Get<uint32_t>(data.data() + 8), fwidth = Get<uint32_t>(data.data() + 12);
  const uint64_t rows = Get<uint64_t>(data.data() + 16);
  if (fdim != static_cast<uint32_t>(dim) || fwidth != static_cast<uint32_t>(row_width))
    return Status::Corruption(path + ": row shape " + Shape(fdim, fwidth) + " does not match the model's " +
                              Shape(dim, row_width));
  const size_t rec = 8 + 4 * static_cast<size_t>(fwidth);
  const size_t body = data.size() - head;
  if (body % rec != 0 || rows != body / rec) return Status::Corruption(path + ": row count does not match the file size");
  std::vector<float> row(fwidth);
  const char* p = data.data() + head;
  for (uint64_t i = 0; i < rows; ++i, p += rec) {
    std::memcpy(row.data(), p + 8, 4 * static_cast<size_t>(fwidth));
    fn(Get<uint64_t>(p), row.data());
  }
  return Status::OK();
}

}  // namespace embark
