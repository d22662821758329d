// embark::Predictor: a loaded checkpoint, frozen for inference, with a pool
// of scoring threads and their workspaces.
#include <cstdio>
#include <filesystem>
#include <mutex>

#include "api/internal.h"
#include "embark/predictor.h"
#include "train/trainer.h"
#include "util/fs.h"

namespace embark {

struct Predictor::Rep {
  LoadedCheckpoint ck;
  CheckpointInfo info;
  std::unique_ptr<ThreadPool> pool;
  std::mutex mu;  // one Predict at a time on the pool and its workspaces
  std::vector<std::unique_ptr<Workspace>> ws;
};

Predictor::Predictor(std::unique_ptr<Rep> rep) : rep_(std::move(rep)) {}
Predictor::~Predictor() = default;

Result<std::unique_ptr<Predictor>> Predictor::Open(const std::string& dir, const PredictorOptions& options) {
  if (options.threads < 0 || options.threads > 1024)
    return Status::InvalidArgument("threads must be in [0, 1024], not " + std::to_string(options.threads));
  auto rep = std::make_unique<Rep>();
  if (options.memory_budget < 0) return Status::InvalidArgument("memory_budget must not be negative");
  StorageOptions storage;
  storage.memory_budget = options.memory_budget;
  storage.dir = options.table_dir;
  EMBARK_ASSIGN_OR_RETURN(rep->ck, LoadCheckpoint(dir, 0, 1, Env::Posix(), storage.memory_budget > 0 ? &storage : nullptr));
  InitBlas();
  rep->ck.model->FreezeForInference();
  rep->info = api::Describe(*rep->ck.model, rep->ck.state, dir);
  rep->pool = std::make_unique<ThreadPool>(options.threads > 0 ? options.threads : DefaultThreads());
  rep->ws = Workspaces(*rep->ck.model, rep->pool.get());
  return std::unique_ptr<Predictor>(new Predictor(std::move(rep)));
}

const CheckpointInfo& Predictor::info() const { return rep_->info; }

Result<std::unique_ptr<BatchReader>> Predictor::Read(const std::vector<std::string>& files,
                                                     const ReadSettings& settings) const {
  return api::NewReader(files, rep_->ck.model->spec(), settings);
}

Status Predictor::Predict(const Batch& batch, float* out) const {
  EMBARK_RETURN_IF_ERROR(api::CheckBatch(batch, rep_->ck.model->spec(), false));
  std::lock_guard<std::mutex> lock(rep_->mu);
  return ScoreBatch(*rep_->ck.model, batch, rep_->pool.get(), rep_->ws, nullptr, out);
}

Result<Predictor::FileScores> Predictor::PredictFiles(
    const std::vector<std::string>& files, int64_t max_bad_lines,
    const std::function<void(const float*, const float*, size_t)>& fn) const {
  return ScoreFiles(files, max_bad_lines, false,
                    [&](const float* p, const float* y, size_t n, std::vector<uint64_t>*) { fn(p, y, n); });
}

Result<Predictor::FileScores> Predictor::ScoreFiles(const std::vector<std::string>& files, int64_t max_bad_lines,
                                                    bool skips, const ScoreFn& fn) const {
  if (max_bad_lines < 0) return Status::InvalidArgument("max_bad_lines must be 0 or more");
  EMBARK_RETURN_IF_ERROR(CheckReadOnce(files, "--data"));
  ReadOptions ro;
  ro.max_bad_lines = max_bad_lines;
  ro.record_skips = skips;
  StreamOptions so;
  so.batch_size = 4096;
  auto stream = OpenStream(files, rep_->ck.model->spec(), ro, so);
  std::lock_guard<std::mutex> lock(rep_->mu);
  FileScores fs;
  std::vector<uint64_t> known;
  EMBARK_RETURN_IF_ERROR(Score(*rep_->ck.model, stream.get(), rep_->pool.get(),
                               [&](const float* p, const float* y, size_t n) {
                                 if (skips) stream->TakeSkippedLines(&known);
                                 fn(p, y, n, skips ? &known : nullptr);
                                 fs.samples += static_cast<int64_t>(n);
                               }));
  if (skips) {  // the lines after the last sample
    stream->TakeSkippedLines(&known);
    fn(nullptr, nullptr, 0, &known);
  }
  const BadLineReport bad = stream->bad_lines();
  fs.bad_lines = bad.count;
  fs.bad_line_examples = bad.examples;
  return fs;
}

Result<Predictor::FileScores> Predictor::PredictToFile(const std::vector<std::string>& files, int64_t max_bad_lines,
                                                       const std::string& out_path) const {
  // The output replaces whatever is at out_path: never an input, never a
  // directory, never a file of the checkpoint being read.
  EMBARK_RETURN_IF_ERROR(fs::CheckOutputFile(out_path, files, {{"the checkpoint --model", rep_->info.dir}}));
  EMBARK_ASSIGN_OR_RETURN(auto out, fs::AtomicFile::Create(out_path));
  Status wrote;
  std::string lines;
  uint64_t sample = 0;  // samples written
  size_t next_skip = 0;
  auto scores = ScoreFiles(files, max_bad_lines, true,
                           [&](const float* p, const float*, size_t n, std::vector<uint64_t>* skips) {
    if (!wrote.ok()) return;
    lines.clear();
    char buf[32];
    // An empty line for each blank or skipped line before sample `sample`.
    auto gaps = [&] {
      for (; next_skip < skips->size() && (*skips)[next_skip] <= sample; ++next_skip) lines += '\n';
    };
    for (size_t i = 0; i < n; ++i, ++sample) {
      gaps();
      lines.append(buf, std::snprintf(buf, sizeof(buf), "%.9g\n", p[i]));
    }
    if (n == 0) gaps();  // the end: lines after the last sample
    skips->erase(skips->begin(), skips->begin() + static_cast<std::ptrdiff_t>(next_skip));
    next_skip = 0;
    wrote = out->Append(lines);
  });
  Status st = scores.ok() ? wrote : scores.status();
  if (st.ok()) st = out->Commit();
  if (!st.ok()) {
    out->Abort();
    return st;
  }
  return scores;
}

Result<Metrics> Predictor::Evaluate(const std::vector<std::string>& files, int64_t max_bad_lines) const {
  if (max_bad_lines < 0) return Status::InvalidArgument("max_bad_lines must be 0 or more");
  EMBARK_RETURN_IF_ERROR(CheckReadOnce(files, "--data"));
  std::lock_guard<std::mutex> lock(rep_->mu);
  return EvaluateData(*rep_->ck.model, files, rep_->pool.get(), max_bad_lines, 1);
}

Status Predictor::Encode(const ArrayData& data, size_t begin, size_t end, Batch* batch) const {
  return api::EncodeArrays(rep_->ck.model->spec(), data, begin, end, batch);
}

Result<Metrics> Predictor::Evaluate(const ArrayData& data) const {
  EvalData d;
  EMBARK_ASSIGN_OR_RETURN(d.arrays, ArrayEncoder::Make(rep_->ck.model->spec(), data, true));
  std::lock_guard<std::mutex> lock(rep_->mu);
  return EvaluateData(*rep_->ck.model, d, rep_->pool.get(), 0, 1);
}

std::string Predictor::History() const {
  const TrainerState& st = rep_->ck.state;
  if (st.history.empty() && st.reliability.empty()) return {};
  return HistoryJson(st, rep_->ck.model->config().model);
}

}  // namespace embark
