#include "stream/reader.h"

#include <algorithm>
#include <chrono>

#include "data/parse.h"

namespace embark {
namespace {

double Steady() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

}  // namespace

StreamReader::StreamReader(std::unique_ptr<LineSource> src, DataSpec spec, StreamReaderOptions opt)
    : src_(std::move(src)),
      spec_(std::move(spec)),
      opt_(opt) {
  opt_.batch_size = std::max<size_t>(1, opt_.batch_size);
  opt_.queue = std::max<size_t>(1, opt_.queue);
  cur_.Reset(spec_.num_dense, spec_.num_fields);
  thread_ = std::thread([this] { Loop(); });
}

StreamReader::~StreamReader() {
  Stop();
  thread_.join();
}

void StreamReader::Stop() {
  stop_.store(true);
  cv_.notify_all();
}

void StreamReader::Finish() {
  finish_.store(true);
  cv_.notify_all();
}

void StreamReader::Fail(Status st) {
  std::lock_guard<std::mutex> lk(mu_);
  error_ = std::move(st);
  done_ = true;
  cv_.notify_all();
}

bool StreamReader::Emit(nlohmann::json pos) {
  StreamBatch b;
  b.batch = std::move(cur_);
  b.position = std::move(pos);
  b.newest_unix = cur_newest_;
  cur_ = Batch();
  cur_.Reset(spec_.num_dense, spec_.num_fields);
  cur_first_ = cur_newest_ = 0;
  std::unique_lock<std::mutex> lk(mu_);
  cv_.wait(lk, [&] { return stop_.load() || finish_.load() || ready_.size() < opt_.queue; });
  if (stop_.load()) return false;
  ready_.push_back(std::move(b));
  cv_.notify_all();
  return true;
}

void StreamReader::Loop() {
  nlohmann::json pos;  // after the last sample in cur_
  StreamChunk c;
  Batch parsed;
  std::vector<BadLine> bad;
  std::vector<uint32_t> skipped;
  std::vector<uint64_t> ends;  // per parsed sample: bytes of c.text up to the end of its line
  while (!stop_.load()) {
    if (finish_.load()) {
      if (cur_.size() > 0) Emit(std::move(pos));
      std::lock_guard<std::mutex> lk(mu_);
      done_ = true;
      cv_.notify_all();
      return;
    }
    // A partial batch waits for more lines only until its first sample has
    // waited max_delay_s.
    double wait = 0.2;
    if (cur_.size() > 0) {
      wait = std::min(wait, cur_first_ + opt_.max_delay_s - Steady());
      if (wait <= 0) {
        if (!Emit(std::move(pos))) return;
        continue;
      }
    }
    auto got = src_->Next(&c, wait);
    if (std::string note = src_->TakeNote(); !note.empty()) {
      std::lock_guard<std::mutex> lk(mu_);
      notes_.push_back(std::move(note));
    }
    if (!got.ok()) return Fail(got.status());
    if (!got.value()) continue;

    size_t skip = 0;
    if (spec_.format == Format::kCsv) {
      if (plan_file_ != c.file || !plan_) {
        auto p = MakeColumnPlan(spec_, c.header, c.file);
        if (!p.ok()) return Fail(p.status());
        plan_ = std::make_shared<const ColumnPlan>(std::move(p).value());
        plan_file_ = c.file;
      }
      skip = c.file_start && spec_.csv.header ? 1 : 0;
    }
    parsed.Reset(spec_.num_dense, spec_.num_fields);
    bad.clear();
    skipped.clear();
    Chunk chunk{c.file, c.first_line, std::move(c.text)};
    ParseChunk(chunk, spec_, plan_.get(), skip, &parsed, &bad, &skipped);
    c.text = std::move(chunk.text);
    if (!bad.empty()) {
      std::lock_guard<std::mutex> lk(mu_);
      for (const BadLine& b : bad) {
        if (bad_.examples.size() < 5) bad_.examples.push_back(b.message);
        ++bad_.count;
      }
      if (bad_.count > opt_.max_bad_lines) {
        std::string msg = std::to_string(bad_.count) + " bad line(s) in the stream, more than max_bad_lines (" +
                          std::to_string(opt_.max_bad_lines) + "); first: " + bad_.examples.front();
        error_ = Status::ParseError(msg);
        done_ = true;
        cv_.notify_all();
        return;
      }
    }
    // Each sample's line end: lines in order, the skipped header first,
    // then a line is blank or bad when the next skipped entry says so.
    ends.clear();
    size_t at = 0, k = 0;
    uint32_t samples = 0;
    while (at < c.text.size()) {
      const size_t nl = c.text.find('\n', at);
      const size_t end = nl == std::string::npos ? c.text.size() : nl + 1;
      at = end;
      if (skip > 0) {
        --skip;
        continue;
      }
      if (k < skipped.size() && skipped[k] == samples) {
        ++k;
        continue;
      }
      ends.push_back(end);
      ++samples;
    }
    if (ends.size() != parsed.size()) {
      return Fail(Status::IOError("stream reader: " + std::to_string(parsed.size()) + " samples parsed from " +
                                   c.file + " but " + std::to_string(ends.size()) + " sample lines counted"));
    }
    for (size_t i = 0; i < parsed.size(); ++i) {
      if (cur_.size() == 0) cur_first_ = Steady();
      cur_.AppendFrom(parsed, i);
      cur_newest_ = c.read_unix;
      if (cur_.size() == opt_.batch_size) {
        if (!Emit(src_->PositionAfter(c, ends[i]))) return;
        // Finishing: the rest of this chunk goes into the batch being built.
      }
    }
    if (cur_.size() > 0 && !ends.empty()) pos = src_->PositionAfter(c, ends.back());
  }
}

Result<bool> StreamReader::Next(StreamBatch* out, double wait_s) {
  std::unique_lock<std::mutex> lk(mu_);
  cv_.wait_for(lk, std::chrono::duration<double>(std::max(0.0, wait_s)),
               [&] { return !ready_.empty() || done_ || stop_.load(); });
  if (stop_.load() && !finish_.load()) return false;
  if (!ready_.empty()) {
    *out = std::move(ready_.front());
    ready_.pop_front();
    cv_.notify_all();
    return true;
  }
  if (done_ && !error_.ok()) return error_;
  return false;
}

BadLineReport StreamReader::bad_lines() const {
  std::lock_guard<std::mutex> lk(mu_);
  return bad_;
}

std::vector<std::string> StreamReader::TakeNotes() {
  std::lock_guard<std::mutex> lk(mu_);
  return std::exchange(notes_, {});
}

}  // namespace embark
