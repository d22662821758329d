#include "stream/source.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <thread>
#include <vector>

#include "data/source.h"

namespace embark {
namespace {

double NowUnix() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

using Clock = std::chrono::steady_clock;

bool Stopped(const LineSourceOptions& o) { return o.stop != nullptr && o.stop->load(std::memory_order_relaxed); }

// Sleeps up to `s` seconds, in short naps so a stop request is seen soon.
void Nap(double s, const LineSourceOptions& o) {
  const auto until = Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s));
  while (!Stopped(o) && Clock::now() < until)
    std::this_thread::sleep_for(std::min<Clock::duration>(until - Clock::now(), std::chrono::milliseconds(20)));
}

uint64_t Lines(const std::string& text) { return static_cast<uint64_t>(std::count(text.begin(), text.end(), '\n')); }

// Bytes read from a descriptor, handed out as chunks of whole lines with
// their offset and line number.
class LineBuffer {
 public:
  explicit LineBuffer(size_t chunk_bytes) : chunk_bytes_(chunk_bytes) {}
  void Reset(uint64_t offset, uint64_t line) {
    pending_.clear();
    offset_ = offset;
    line_ = line;
  }
  std::string& pending() { return pending_; }
  bool has_line() const { return pending_.find('\n') != std::string::npos; }
  // Moves up to chunk_bytes of whole lines (at least one) into *out; with
  // `flush`, a last line without its newline too (the writer is gone).
  bool Take(StreamChunk* out, bool flush) {
    size_t end = pending_.size() > chunk_bytes_ ? pending_.rfind('\n', chunk_bytes_) : pending_.rfind('\n');
    if (end == std::string::npos) end = pending_.find('\n');
    if (end == std::string::npos) {
      if (!flush || pending_.empty()) return false;
      pending_.push_back('\n');
      end = pending_.size() - 1;
    }
    out->offset = offset_;
    out->first_line = line_;
    out->text.assign(pending_, 0, end + 1);
    pending_.erase(0, end + 1);
    offset_ += out->text.size();
    line_ += Lines(out->text);
    out->read_unix = NowUnix();
    return true;
  }
  uint64_t offset() const { return offset_; }

 private:
  size_t chunk_bytes_;
  std::string pending_;
  uint64_t offset_ = 0, line_ = 1;
};

// The first line of `text` (without its newline), if it is whole.
bool FirstLine(const std::string& text, std::string* line) {
  const size_t nl = text.find('\n');
  if (nl == std::string::npos) return false;
  line->assign(text, 0, nl);
  return true;
}

Status ErrnoError(const std::string& what, const std::string& path) {
  return Status::IOError(what + " '" + path + "': " + std::strerror(errno));
}

// ---- standard input and named pipes -----------------------------------------

class PipeSource : public LineSource {
 public:
  PipeSource(std::string path, const LineSourceOptions& o) : path_(std::move(path)), opt_(o), buf_(o.chunk_bytes) {}
  ~PipeSource() override {
    if (fd_ > 0) ::close(fd_);
  }
  Status Open() {
    if (path_ == "-") {
      fd_ = 0;
      return Status::OK();
    }
    fd_ = ::open(path_.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd_ < 0) return ErrnoError("cannot open", path_);
    return Status::OK();
  }

  Result<bool> Next(StreamChunk* out, double wait_s) override {
    const auto until = Clock::now() + std::chrono::duration<double>(wait_s);
    for (;;) {
      if (buf_.has_line() && buf_.pending().size() >= opt_.chunk_bytes) break;
      if (Stopped(opt_)) break;
      const double left = std::chrono::duration<double>(until - Clock::now()).count();
      if (closed_) {
        // Standard input ended: the stream stays open and idle until stopped.
        if (left > 0) Nap(left, opt_);
        break;
      }
      pollfd p{fd_, POLLIN, 0};
      // With whole lines waiting, only what is already there is taken.
      const int ms = buf_.has_line() ? 0 : std::clamp(static_cast<int>(left * 1000), 0, 50);
      const int r = ::poll(&p, 1, ms);
      if (r < 0 && errno != EINTR) return ErrnoError("cannot poll", Name());
      if (r > 0) {
        std::string& pend = buf_.pending();
        const size_t old = pend.size();
        pend.resize(old + (1 << 16));
        const ssize_t n = ::read(fd_, pend.data() + old, 1 << 16);
        pend.resize(old + std::max<ssize_t>(n, 0));
        if (n < 0 && errno != EAGAIN && errno != EINTR) return ErrnoError("cannot read", Name());
        if (n == 0) {
          // The writer went: its last line counts even without a newline.
          if (!buf_.pending().empty() && buf_.pending().back() != '\n') buf_.pending().push_back('\n');
          if (path_ == "-") {
            closed_ = true;
            note_ = "standard input ended; the stream stays idle until embark is stopped (SIGTERM or SIGINT)";
          } else {
            // A named pipe: wait for its next writer.
            ::close(fd_);
            fd_ = -1;
            Nap(std::min(opt_.poll_s, std::max(0.0, left)), opt_);
            fd_ = ::open(path_.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
            if (fd_ < 0) return ErrnoError("cannot reopen", path_);
          }
        }
        continue;
      }
      if (buf_.has_line() || left <= 0) break;
    }
    if (!buf_.Take(out, false)) return false;
    out->file = Name();
    out->file_start = first_;
    if (first_) FirstLine(out->text, &header_);
    out->header = header_;
    first_ = false;
    return true;
  }

  nlohmann::json PositionAfter(const StreamChunk& c, uint64_t bytes) const override {
    return {{"source", "pipe"}, {"bytes", c.offset + bytes}};
  }
  Status Seek(const nlohmann::json&, std::string* note) override {
    *note = "a pipe cannot be rewound: reading on from where " + Name() + " is now";
    return Status::OK();
  }
  bool replayable() const override { return false; }
  std::string describe() const override { return path_ == "-" ? "standard input" : "named pipe " + path_; }
  std::string TakeNote() override { return std::exchange(note_, ""); }

 private:
  std::string Name() const { return path_ == "-" ? "<stdin>" : path_; }
  std::string path_;
  LineSourceOptions opt_;
  LineBuffer buf_;
  int fd_ = -1;
  bool closed_ = false, first_ = true;
  std::string header_, note_;
};

// ---- a growing file, followed ------------------------------------------------

class FollowSource : public LineSource {
 public:
  FollowSource(std::string path, const LineSourceOptions& o) : path_(std::move(path)), opt_(o), buf_(o.chunk_bytes) {}
  ~FollowSource() override {
    if (fd_ >= 0) ::close(fd_);
  }
  Status Open(uint64_t offset, uint64_t line) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd_ < 0) return ErrnoError("cannot open", path_);
    struct stat st {};
    if (::fstat(fd_, &st) != 0) return ErrnoError("cannot stat", path_);
    ino_ = st.st_ino;
    pos_ = offset;
    buf_.Reset(offset, line);
    header_.clear();
    return Status::OK();
  }

  Result<bool> Next(StreamChunk* out, double wait_s) override {
    const auto until = Clock::now() + std::chrono::duration<double>(wait_s);
    for (;;) {
      EMBARK_ASSIGN_OR_RETURN(size_t got, ReadMore());
      if (buf_.has_line()) break;
      if (got > 0) continue;
      EMBARK_RETURN_IF_ERROR(CheckReplaced());
      const double left = std::chrono::duration<double>(until - Clock::now()).count();
      if (left <= 0 || Stopped(opt_)) return false;
      Nap(std::min(left, opt_.poll_s), opt_);
    }
    if (header_.empty()) EMBARK_RETURN_IF_ERROR(ReadHeader());
    const bool start = buf_.offset() == 0;
    if (!buf_.Take(out, false)) return false;
    out->file = path_;
    out->file_start = start;
    out->header = header_;
    return true;
  }

  nlohmann::json PositionAfter(const StreamChunk& c, uint64_t bytes) const override {
    return {{"source", "file"},
            {"offset", c.offset + bytes},
            {"line", c.first_line + Lines(c.text.substr(0, bytes))}};
  }
  Status Seek(const nlohmann::json& pos, std::string* note) override {
    uint64_t offset = 0, line = 1;
    try {
      if (pos.at("source").get<std::string>() != "file")
        return Status::InvalidArgument("the checkpoint's stream position is of a " + pos.at("source").get<std::string>() +
                                       " source, not a followed file");
      offset = pos.at("offset").get<uint64_t>();
      line = pos.at("line").get<uint64_t>();
    } catch (const std::exception& e) {
      return Status::InvalidArgument(std::string("unreadable stream position: ") + e.what());
    }
    struct stat st {};
    if (::stat(path_.c_str(), &st) != 0) return ErrnoError("cannot stat", path_);
    if (static_cast<uint64_t>(st.st_size) < offset) {
      *note = path_ + " is shorter (" + std::to_string(st.st_size) + " bytes) than the recorded position (" +
              std::to_string(offset) + "): it was replaced; reading it from its start";
      return Open(0, 1);
    }
    return Open(offset, line);
  }
  bool replayable() const override { return true; }
  std::string describe() const override { return "file " + path_ + " (followed)"; }
  std::string TakeNote() override { return std::exchange(note_, ""); }

 private:
  // Reads what the file has beyond what was read; returns the bytes read.
  Result<size_t> ReadMore() {
    std::string& pend = buf_.pending();
    size_t total = 0;
    while (pend.size() < 2 * opt_.chunk_bytes) {
      const size_t old = pend.size();
      pend.resize(old + (1 << 16));
      const ssize_t n = ::pread(fd_, pend.data() + old, 1 << 16, static_cast<off_t>(pos_));
      if (n < 0) {
        pend.resize(old);
        if (errno == EINTR) continue;
        return ErrnoError("cannot read", path_);
      }
      pend.resize(old + static_cast<size_t>(n));
      pos_ += static_cast<uint64_t>(n);
      total += static_cast<size_t>(n);
      if (n == 0) break;
    }
    return total;
  }
  // At the end of what was written: the file truncated (read again from its
  // start) or replaced by a new one under its name (rotation: the new one
  // from its start, as `tail -F` does).
  Status CheckReplaced() {
    struct stat st {};
    if (::fstat(fd_, &st) == 0 && static_cast<uint64_t>(st.st_size) < pos_) {
      note_ = path_ + " was truncated; reading it from its start";
      return Open(0, 1);
    }
    struct stat now {};
    if (::stat(path_.c_str(), &now) == 0 && now.st_ino != ino_) {
      note_ = path_ + " was replaced by a new file; reading the new one from its start";
      return Open(0, 1);
    }
    return Status::OK();
  }
  Status ReadHeader() {
    std::string head(4096, '\0');
    for (size_t got = 0;;) {
      const ssize_t n = ::pread(fd_, head.data() + got, head.size() - got, static_cast<off_t>(got));
      if (n < 0) return ErrnoError("cannot read", path_);
      got += static_cast<size_t>(n);
      head.resize(std::max(got, head.size()));
      if (head.find('\n') < got || n == 0 || got > (1u << 20)) {
        head.resize(got);
        break;
      }
      head.resize(got * 2);
    }
    if (!FirstLine(head, &header_)) header_ = head;
    return Status::OK();
  }

  std::string path_;
  LineSourceOptions opt_;
  LineBuffer buf_;
  int fd_ = -1;
  ino_t ino_ = 0;
  uint64_t pos_ = 0;  // bytes read from the file so far
  std::string header_, note_;
};

// ---- a directory of files ----------------------------------------------------

bool Eligible(const std::string& name) {
  return !name.empty() && name[0] != '.' && !(name.size() >= 4 && name.compare(name.size() - 4, 4, ".tmp") == 0);
}

class DirSource : public LineSource {
 public:
  DirSource(std::string dir, const LineSourceOptions& o) : dir_(std::move(dir)), opt_(o) {}

  Result<bool> Next(StreamChunk* out, double wait_s) override {
    const auto until = Clock::now() + std::chrono::duration<double>(wait_s);
    for (;;) {
      if (chunker_) {
        Chunk c;
        EMBARK_ASSIGN_OR_RETURN(bool more, chunker_->Next(&c));
        if (more) {
          if (skip_ > 0) {
            // Resuming inside this file: drop whole lines up to the position.
            const uint64_t drop = std::min<uint64_t>(skip_, c.text.size());
            if (offset_ == 0) FirstLine(c.text, &header_);
            c.text.erase(0, drop);
            skip_ -= drop;
            offset_ += drop;
            if (c.text.empty()) continue;
          }
          if (offset_ == 0) FirstLine(c.text, &header_);
          out->file = dir_ + "/" + current_;
          out->file_start = offset_ == 0;
          out->offset = offset_;
          out->first_line = next_line_;
          out->header = header_;
          out->text = std::move(c.text);
          out->read_unix = NowUnix();
          offset_ += out->text.size();
          next_line_ += Lines(out->text);
          return true;
        }
        chunker_.reset();  // this file is done; done_ names it
      }
      EMBARK_ASSIGN_OR_RETURN(bool opened, OpenNext());
      if (opened) continue;
      const double left = std::chrono::duration<double>(until - Clock::now()).count();
      if (left <= 0 || Stopped(opt_)) return false;
      Nap(std::min(left, opt_.poll_s), opt_);
    }
  }

  nlohmann::json PositionAfter(const StreamChunk& c, uint64_t bytes) const override {
    const std::string name = c.file.substr(c.file.rfind('/') + 1);
    return {{"source", "directory"},
            {"file", name},
            {"offset", c.offset + bytes},
            {"line", c.first_line + Lines(c.text.substr(0, bytes))}};
  }
  Status Seek(const nlohmann::json& pos, std::string* note) override {
    try {
      if (pos.at("source").get<std::string>() != "directory")
        return Status::InvalidArgument("the checkpoint's stream position is of a " + pos.at("source").get<std::string>() +
                                       " source, not a directory");
      resume_file_ = pos.at("file").get<std::string>();
      if (resume_file_.empty() || resume_file_.find('/') != std::string::npos || resume_file_ == "." ||
          resume_file_ == "..")
        return Status::InvalidArgument("the stream position names '" + resume_file_ + "', not a file of " + dir_);
      resume_offset_ = pos.at("offset").get<uint64_t>();
      resume_line_ = pos.at("line").get<uint64_t>();
    } catch (const std::exception& e) {
      return Status::InvalidArgument(std::string("unreadable stream position: ") + e.what());
    }
    // Files before the recorded one were consumed; the recorded one goes on
    // at its offset.
    done_ = resume_file_;
    resumed_ = false;
    std::error_code ec;
    if (!std::filesystem::exists(dir_ + "/" + resume_file_, ec)) {
      *note = "the file being read at the checkpoint, " + resume_file_ + ", is gone; going on with the files after it";
      resumed_ = true;
    }
    return Status::OK();
  }
  bool replayable() const override { return true; }
  std::string describe() const override { return "directory " + dir_ + " (watched)"; }
  std::string TakeNote() override { return std::exchange(note_, ""); }

 private:
  // Opens the next file to read: the recorded one (resuming), else the
  // first eligible name after the last one read. False when there is none.
  Result<bool> OpenNext() {
    std::string next;
    if (!resumed_ && !resume_file_.empty()) {
      next = resume_file_;
      resumed_ = true;
      skip_ = resume_offset_;
      next_line_ = resume_line_;
    } else {
      std::error_code ec;
      std::filesystem::directory_iterator it(dir_, ec);
      if (ec) return Status::IOError("cannot list directory '" + dir_ + "': " + ec.message());
      for (const auto& e : it) {
        const std::string name = e.path().filename().string();
        if (!Eligible(name) || name <= done_ || (!next.empty() && name >= next)) continue;
        if (!e.is_regular_file(ec)) continue;
        next = name;
      }
      if (next.empty()) return false;
      skip_ = 0;
      next_line_ = 1;
    }
    offset_ = 0;
    header_.clear();
    done_ = next;
    current_ = next;
    const std::string path = dir_ + "/" + next;
    auto src = OpenSource(path);
    if (!src.ok()) {
      std::error_code ec;
      if (!std::filesystem::exists(path, ec)) {
        note_ = path + " disappeared before it was read; skipped";
        return true;  // try the next one
      }
      return src.status();
    }
    chunker_ = std::make_unique<LineChunker>(path, std::move(src).value(), opt_.chunk_bytes);
    if (skip_ > 0) next_line_ = resume_line_;
    return true;
  }

  std::string dir_;
  LineSourceOptions opt_;
  std::unique_ptr<LineChunker> chunker_;
  std::string current_, done_;  // the file being read; the last name taken
  std::string header_, note_;
  uint64_t offset_ = 0, skip_ = 0, next_line_ = 1;
  std::string resume_file_;
  uint64_t resume_offset_ = 0, resume_line_ = 1;
  bool resumed_ = true;
};

}  // namespace

Result<std::unique_ptr<LineSource>> OpenLineSource(const std::string& path, const LineSourceOptions& opt) {
  if (path == "-") {
    auto s = std::make_unique<PipeSource>(path, opt);
    EMBARK_RETURN_IF_ERROR(s->Open());
    return std::unique_ptr<LineSource>(std::move(s));
  }
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return ErrnoError("cannot read the stream source", path);
  if (S_ISFIFO(st.st_mode)) {
    auto s = std::make_unique<PipeSource>(path, opt);
    EMBARK_RETURN_IF_ERROR(s->Open());
    return std::unique_ptr<LineSource>(std::move(s));
  }
  if (S_ISDIR(st.st_mode)) return std::unique_ptr<LineSource>(std::make_unique<DirSource>(path, opt));
  if (S_ISREG(st.st_mode)) {
    auto s = std::make_unique<FollowSource>(path, opt);
    EMBARK_RETURN_IF_ERROR(s->Open(0, 1));
    return std::unique_ptr<LineSource>(std::move(s));
  }
  return Status::InvalidArgument("'" + path + "' is not a pipe, a directory or a regular file: cannot stream from it");
}

}  // namespace embark
