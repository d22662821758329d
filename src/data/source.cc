#include "data/source.h"

#include <fcntl.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <vector>

namespace embark {
namespace {

class FileReader {
 public:
  FileReader(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
  ~FileReader() { ::close(fd_); }
  Result<size_t> Read(char* buf, size_t n) {
    for (;;) {
      ssize_t r = ::read(fd_, buf, n);
      if (r >= 0) return static_cast<size_t>(r);
      if (errno != EINTR) return Status::IOError("cannot read '" + path_ + "': " + std::strerror(errno));
    }
  }
  const std::string& path() const { return path_; }

 private:
  int fd_;
  std::string path_;
};

class PlainSource : public ByteSource {
 public:
  PlainSource(std::unique_ptr<FileReader> f, std::string head) : f_(std::move(f)), head_(std::move(head)) {}
  Result<size_t> Read(char* buf, size_t n) override {
    if (pos_ < head_.size()) {
      size_t k = std::min(n, head_.size() - pos_);
      std::memcpy(buf, head_.data() + pos_, k);
      pos_ += k;
      return k;
    }
    return f_->Read(buf, n);
  }
  Compression compression() const override { return Compression::kNone; }

 private:
  std::unique_ptr<FileReader> f_;
  std::string head_;
  size_t pos_ = 0;
};

// Shared shape of the two decompressors: compressed input is refilled from
// the file, `head` (the sniffed bytes) first.
class CompressedSource : public ByteSource {
 protected:
  CompressedSource(std::unique_ptr<FileReader> f, std::string head) : f_(std::move(f)), in_(1 << 17) {
    std::memcpy(in_.data(), head.data(), head.size());
    in_len_ = head.size();
  }
  Result<bool> Refill() {  // returns false at end of file
    if (in_pos_ < in_len_) return true;
    auto r = f_->Read(in_.data(), in_.size());
    if (!r.ok()) return r.status();
    in_pos_ = 0;
    in_len_ = r.value();
    return in_len_ > 0;
  }
  std::unique_ptr<FileReader> f_;
  std::vector<char> in_;
  size_t in_pos_ = 0, in_len_ = 0;
};

class GzipSource : public CompressedSource {
 public:
  GzipSource(std::unique_ptr<FileReader> f, std::string head) : CompressedSource(std::move(f), std::move(head)) {
    std::memset(&zs_, 0, sizeof(zs_));
    inflateInit2(&zs_, 15 + 16);
  }
  ~GzipSource() override { inflateEnd(&zs_); }
  Compression compression() const override { return Compression::kGzip; }

  Result<size_t> Read(char* buf, size_t n) override {
    size_t produced = 0;
    while (produced == 0) {
      if (in_pos_ == in_len_) {
        auto more = Refill();
        if (!more.ok()) return more.status();
        if (!more.value()) {
          if (in_member_) return Status::IOError("'" + f_->path() + "': truncated gzip stream (unexpected end of file)");
          return size_t{0};
        }
      }
      zs_.next_in = reinterpret_cast<Bytef*>(in_.data() + in_pos_);
      zs_.avail_in = static_cast<uInt>(in_len_ - in_pos_);
      zs_.next_out = reinterpret_cast<Bytef*>(buf);
      zs_.avail_out = static_cast<uInt>(n);
      int rc = inflate(&zs_, Z_NO_FLUSH);
      in_pos_ = in_len_ - zs_.avail_in;
      produced = n - zs_.avail_out;
      in_member_ = true;
      if (rc == Z_STREAM_END) {
        in_member_ = false;
        inflateReset(&zs_);  // a further gzip member may follow
      } else if (rc != Z_OK && rc != Z_BUF_ERROR) {
        return Status::IOError("'" + f_->path() + "': corrupt gzip data (" + (zs_.msg ? zs_.msg : "inflate error") + ")");
      }
    }
    return produced;
  }

 private:
  z_stream zs_;
  bool in_member_ = false;
};

class ZstdSource : public CompressedSource {
 public:
  ZstdSource(std::unique_ptr<FileReader> f, std::string head)
      : CompressedSource(std::move(f), std::move(head)), ds_(ZSTD_createDStream()) {
    ZSTD_initDStream(ds_);
  }
  ~ZstdSource() override { ZSTD_freeDStream(ds_); }
  Compression compression() const override { return Compression::kZstd; }

  Result<size_t> Read(char* buf, size_t n) override {
    ZSTD_outBuffer out{buf, n, 0};
    while (out.pos == 0) {
      if (in_pos_ == in_len_) {
        auto more = Refill();
        if (!more.ok()) return more.status();
        if (!more.value()) {
          if (last_hint_ != 0) return Status::IOError("'" + f_->path() + "': truncated zstd stream (unexpected end of file)");
          return size_t{0};
        }
      }
      ZSTD_inBuffer in{in_.data(), in_len_, in_pos_};
      size_t rc = ZSTD_decompressStream(ds_, &out, &in);
      in_pos_ = in.pos;
      if (ZSTD_isError(rc))
        return Status::IOError("'" + f_->path() + "': corrupt zstd data (" + ZSTD_getErrorName(rc) + ")");
      last_hint_ = rc;
    }
    return out.pos;
  }

 private:
  ZSTD_DStream* ds_;
  size_t last_hint_ = 0;
};

}  // namespace

Result<std::unique_ptr<ByteSource>> OpenSource(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Status::IOError("cannot open '" + path + "': " + std::strerror(errno));
  auto file = std::make_unique<FileReader>(fd, path);
  std::string head(4, '\0');
  size_t got = 0;
  while (got < head.size()) {
    auto r = file->Read(head.data() + got, head.size() - got);
    if (!r.ok()) return r.status();
    if (r.value() == 0) break;
    got += r.value();
  }
  head.resize(got);
  const auto* u = reinterpret_cast<const unsigned char*>(head.data());
  if (got >= 2 && u[0] == 0x1f && u[1] == 0x8b)
    return std::unique_ptr<ByteSource>(new GzipSource(std::move(file), head));
  if (got >= 4 && u[0] == 0x28 && u[1] == 0xb5 && u[2] == 0x2f && u[3] == 0xfd)
    return std::unique_ptr<ByteSource>(new ZstdSource(std::move(file), head));
  return std::unique_ptr<ByteSource>(new PlainSource(std::move(file), head));
}

Result<bool> LineChunker::Next(Chunk* out) {
  out->file = path_;
  out->first_line = next_line_;
  out->text.swap(carry_);
  carry_.clear();
  const size_t step = std::clamp<size_t>(chunk_bytes_, 1, 1 << 16);
  while (!eof_ && out->text.size() < chunk_bytes_) {
    size_t old = out->text.size();
    out->text.resize(old + step);
    auto r = src_->Read(out->text.data() + old, step);
    if (!r.ok()) return r.status();
    out->text.resize(old + r.value());
    if (r.value() == 0) eof_ = true;
  }
  if (out->text.empty()) return false;
  if (!eof_) {
    size_t nl = out->text.rfind('\n');
    if (nl == std::string::npos) {
      // A single line longer than the chunk: keep reading until it ends.
      for (;;) {
        size_t old = out->text.size();
        out->text.resize(old + (1 << 16));
        auto r = src_->Read(out->text.data() + old, 1 << 16);
        if (!r.ok()) return r.status();
        out->text.resize(old + r.value());
        if (r.value() == 0) { eof_ = true; break; }
        nl = out->text.find('\n', old);
        if (nl != std::string::npos) break;
        if (out->text.size() > (64u << 20))
          return Status::ParseError(path_ + ":" + std::to_string(next_line_) + ": line longer than 64 MiB (binary data?)");
      }
    }
    if (nl != std::string::npos) {
      carry_.assign(out->text, nl + 1, std::string::npos);
      out->text.resize(nl + 1);
    }
  }
  if (out->text.back() != '\n') out->text.push_back('\n');
  next_line_ += static_cast<uint64_t>(std::count(out->text.begin(), out->text.end(), '\n'));
  return true;
}

}  // namespace embark
