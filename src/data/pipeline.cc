#include "data/pipeline.h"

#include <algorithm>
#include <chrono>
#include <filesystem>

#include "util/hash.h"

namespace embark {

DataReader::DataReader(std::vector<std::string> files, DataSpec spec, ReadOptions opt)
    : files_(std::move(files)), spec_(std::move(spec)), opt_(opt) {
  std::error_code ec;
  for (const auto& f : files_) total_ += std::filesystem::file_size(f, ec) * (ec ? 0 : 1);
  reader_ = std::thread([this] { ReadLoop(); });
  for (int i = 0; i < std::max(1, opt_.parse_threads); ++i) parsers_.emplace_back([this] { ParseLoop(); });
}

DataReader::~DataReader() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  reader_.join();
  for (auto& t : parsers_) t.join();
}

void DataReader::Publish(uint64_t seq, Done d) {
  std::lock_guard<std::mutex> lk(mu_);
  done_.emplace(seq, std::move(d));
  cv_.notify_all();
}

void DataReader::ReadLoop() {
  uint64_t seq = 0, chunk_no = 0;
  auto fail = [&](Status st) {
    Done d;
    d.status = std::move(st);
    d.end = true;
    Publish(seq++, std::move(d));
  };
  for (const auto& file : files_) {
    auto src = OpenSource(file);
    if (!src.ok()) return fail(src.status());
    if (src.value()->compression() != Compression::kNone) {
      std::lock_guard<std::mutex> lk(mu_);
      compressed_ = true;
    }
    LineChunker chunker(file, std::move(src).value(), opt_.chunk_bytes);
    std::shared_ptr<const ColumnPlan> plan;
    bool first = true;
    for (;;) {
      Work w;
      auto more = chunker.Next(&w.chunk);
      if (!more.ok()) return fail(more.status());
      if (!more.value()) break;
      w.skip = 0;
      if (first && spec_.format == Format::kCsv) {
        std::string header = w.chunk.text.substr(0, w.chunk.text.find('\n'));
        auto p = MakeColumnPlan(spec_, header, file);
        if (!p.ok()) return fail(p.status());
        plan = std::make_shared<const ColumnPlan>(std::move(p).value());
        w.skip = spec_.csv.header ? 1 : 0;
      }
      first = false;
      w.plan = plan;
      if (opt_.shard_count > 1 && static_cast<int>(chunk_no++ % opt_.shard_count) != opt_.shard_index) {
        std::lock_guard<std::mutex> lk(mu_);
        bytes_ += w.chunk.text.size();  // another reader's share: read past, not parsed
        continue;
      }
      std::unique_lock<std::mutex> lk(mu_);
      cv_.wait(lk, [&] { return stop_ || seq - next_seq_ < opt_.max_in_flight; });
      if (stop_) return;
      bytes_ += w.chunk.text.size();
      w.seq = seq++;
      work_.push_back(std::move(w));
      cv_.notify_all();
    }
    if (first) return fail(Status::ParseError(file + ": file is empty"));
  }
  Done d;
  d.end = true;
  Publish(seq, std::move(d));
}

void DataReader::ParseLoop() {
  for (;;) {
    Work w;
    {
      std::unique_lock<std::mutex> lk(mu_);
      cv_.wait(lk, [&] { return stop_ || !work_.empty(); });
      if (stop_) return;
      w = std::move(work_.front());
      work_.pop_front();
    }
    Done d;
    d.batch.Reset(spec_.num_dense, spec_.num_fields);
    ParseChunk(w.chunk, spec_, w.plan.get(), w.skip, &d.batch, &d.bad, opt_.record_skips ? &d.skipped : nullptr);
    Publish(w.seq, std::move(d));
  }
}

Result<bool> DataReader::Next(Batch* block) {
  for (;;) {
    Done d;
    {
      std::unique_lock<std::mutex> lk(mu_);
      if (finished_) return false;
      cv_.wait(lk, [&] { return done_.count(next_seq_) > 0; });
      auto it = done_.find(next_seq_);
      d = std::move(it->second);
      done_.erase(it);
      ++next_seq_;
      cv_.notify_all();
      for (auto& b : d.bad) {
        if (bad_.examples.size() < 5) bad_.examples.push_back(b.message);
        ++bad_.count;
      }
      if (bad_.count > opt_.max_bad_lines) {
        finished_ = true;
        std::string msg = bad_.examples.front();
        if (opt_.max_bad_lines > 0)
          msg += " (more than --max-bad-lines=" + std::to_string(opt_.max_bad_lines) + " bad lines)";
        return Status::ParseError(msg);
      }
      if (!d.status.ok()) {
        finished_ = true;
        return d.status;
      }
      if (d.end) {
        finished_ = true;
        if (samples_ == 0) {
          std::string names;
          for (const auto& f : files_) names += (names.empty() ? "'" : ", '") + f + "'";
          return Status::ParseError("no samples in " + names + " (" + std::to_string(bad_.count) +
                                    " bad line(s) skipped" +
                                    (bad_.examples.empty() ? std::string() : "; first: " + bad_.examples.front()) + ")");
        }
        return false;
      }
      for (uint32_t k : d.skipped) skips_.push_back(samples_ + k);
      samples_ += d.batch.size();
    }
    if (d.batch.size() == 0) continue;
    *block = std::move(d.batch);
    return true;
  }
}

void DataReader::TakeSkippedLines(std::vector<uint64_t>* out) {
  std::lock_guard<std::mutex> lk(mu_);
  out->insert(out->end(), skips_.begin(), skips_.end());
  skips_.clear();
}

BadLineReport DataReader::bad_lines() const {
  std::lock_guard<std::mutex> lk(mu_);
  return bad_;
}

uint64_t DataReader::bytes_total() const {
  std::lock_guard<std::mutex> lk(mu_);
  return compressed_ ? 0 : total_;
}

uint64_t DataReader::bytes_read() const {
  std::lock_guard<std::mutex> lk(mu_);
  return bytes_;
}

BatchStream::BatchStream(std::unique_ptr<SampleSource> reader, StreamOptions opt)
    : reader_(std::move(reader)), opt_(opt), skip_(opt.skip), rng_(Mix64(opt.seed)) {
  thread_ = std::thread([this] { Produce(); });
}

BatchStream::~BatchStream() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

Result<bool> BatchStream::Build(Batch* out) {
  out->Reset(0, 0);
  bool shape_set = false;
  while (out->size() < opt_.batch_size) {
    if (pos_ == order_.size()) {
      if (input_done_ && carry_pos_ == carry_.size()) break;
      // Refill the window: the next block as it is when nothing is mixed,
      // else exactly shuffle_window samples (fewer at the end), whatever the
      // source's block sizes, so the order depends only on the samples.
      pool_.Reset(0, 0);
      if (opt_.shuffle_window <= 1) {
        EMBARK_ASSIGN_OR_RETURN(bool more, reader_->Next(&pool_));
        if (!more) {
          input_done_ = true;
          pool_.Reset(0, 0);
        }
      } else {
        while (pool_.size() < opt_.shuffle_window) {
          if (carry_pos_ == carry_.size()) {
            if (input_done_) break;
            carry_pos_ = 0;
            EMBARK_ASSIGN_OR_RETURN(bool more, reader_->Next(&carry_));
            if (!more) {
              input_done_ = true;
              carry_.Reset(0, 0);
            }
            continue;
          }
          if (pool_.size() == 0) pool_.Reset(carry_.num_dense, carry_.num_fields);
          pool_.AppendFrom(carry_, carry_pos_++);
        }
      }
      order_.resize(pool_.size());
      for (size_t i = 0; i < order_.size(); ++i) order_[i] = static_cast<uint32_t>(i);
      if (opt_.shuffle_window > 1) {
        for (size_t i = order_.size(); i > 1; --i) {
          rng_ = Mix64(rng_);
          std::swap(order_[i - 1], order_[rng_ % i]);
        }
      }
      pos_ = 0;
      if (order_.empty()) break;
    }
    if (skip_ > 0) {  // the cursor: drop samples without copying them
      const size_t k = static_cast<size_t>(std::min<uint64_t>(skip_, order_.size() - pos_));
      pos_ += k;
      skip_ -= k;
      continue;
    }
    if (!shape_set) {
      out->Reset(pool_.num_dense, pool_.num_fields);
      shape_set = true;
    }
    out->AppendFrom(pool_, order_[pos_++]);
  }
  return out->size() > 0;
}

void BatchStream::Produce() {
  for (;;) {
    {
      std::unique_lock<std::mutex> lk(mu_);
      cv_.wait(lk, [&] { return stop_ || ready_.size() < opt_.prefetch; });
      if (stop_) return;
    }
    Batch b;
    auto r = Build(&b);
    std::lock_guard<std::mutex> lk(mu_);
    if (!r.ok()) {
      error_ = r.status();
      end_ = true;
    } else if (!r.value()) {
      end_ = true;
    } else {
      ready_.push_back(std::move(b));
    }
    cv_.notify_all();
    if (end_) return;
  }
}

Result<bool> BatchStream::Next(Batch* batch) {
  auto t0 = std::chrono::steady_clock::now();
  std::unique_lock<std::mutex> lk(mu_);
  cv_.wait(lk, [&] { return !ready_.empty() || end_; });
  wait_s_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (!ready_.empty()) {
    *batch = std::move(ready_.front());
    ready_.pop_front();
    cv_.notify_all();
    return true;
  }
  if (!error_.ok()) return error_;
  return false;
}

std::unique_ptr<BatchStream> OpenStream(const std::vector<std::string>& files, const DataSpec& spec,
                                        const ReadOptions& ro, const StreamOptions& so) {
  return std::make_unique<BatchStream>(std::make_unique<DataReader>(files, spec, ro), so);
}

}  // namespace embark
