#include "train/online.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <random>

#include <nlohmann/json.hpp>

#include "checkpoint/delta.h"
#include "metrics/metrics.h"
#include "stream/reader.h"
#include "stream/source.h"

namespace embark {
namespace {

// Records of an online run's history kept in its snapshots (about 28 hours
// of reports at the default --report-every 10s); older ones are dropped.
constexpr size_t kStreamRecords = 10000;

using Clock = std::chrono::steady_clock;

double Since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

double NowUnix() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

uint64_t CurrentRssBytes() {
  std::ifstream f("/proc/self/statm");
  uint64_t size = 0, rss = 0;
  f >> size >> rss;
  return rss * static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
}

// A snapshot's identity, named by the deltas that apply to it.
std::string NewSnapshotId(int64_t step) {
  std::random_device rd;
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%lld-%08x%08x", static_cast<long long>(step), rd(), rd());
  return buf;
}

// The last `cap` (probability, label) pairs scored before training.
class Window {
 public:
  explicit Window(size_t cap) : cap_(std::max<size_t>(1, cap)) {}
  void Add(double p, float y) {
    if (probs_.size() < cap_) {
      probs_.push_back(p);
      labels_.push_back(y);
    } else {
      probs_[at_] = p;
      labels_[at_] = y;
      at_ = (at_ + 1) % cap_;
    }
  }
  size_t size() const { return probs_.size(); }
  // AUC, logloss and calibration (mean prediction / observed rate).
  Metrics Compute() const { return probs_.empty() ? Metrics{} : Evaluate(probs_, labels_); }

 private:
  size_t cap_, at_ = 0;
  std::vector<double> probs_;
  std::vector<float> labels_;
};

// Whether an Interval has come round since the step and time it was last
// reset (a delta or snapshot is due so long after the last one, whatever
// wrote it).
struct Every {
  Interval every;
  int64_t last_step = 0;
  Clock::time_point last_time = Clock::now();
  bool Due(int64_t step) const {
    if (every.off()) return false;
    if (every.steps > 0) return step - last_step >= every.steps;
    return Since(last_time) >= every.seconds;
  }
  void Reset(int64_t step) {
    last_step = step;
    last_time = Clock::now();
  }
};

// Keys touched since the last delta, kept sorted and unique once they pile up.
class TouchedKeys {
 public:
  void Add(const std::vector<uint64_t>& keys) {
    keys_.insert(keys_.end(), keys.begin(), keys.end());
    if (keys_.size() > 2 * unique_ + (1u << 20)) Compact();
  }
  const std::vector<uint64_t>& Sorted() {
    Compact();
    return keys_;
  }
  void Clear() {
    keys_.clear();
    unique_ = 0;
  }

 private:
  void Compact() {
    std::sort(keys_.begin(), keys_.end());
    keys_.erase(std::unique(keys_.begin(), keys_.end()), keys_.end());
    unique_ = keys_.size();
  }
  std::vector<uint64_t> keys_;
  size_t unique_ = 0;
};

}  // namespace

Result<TrainReport> FitStream(TrainerImpl* trainer, const TrainJob& job, const StreamJob& stream, const Logger& log) {
  const TrainConfig& cfg = job.cfg;
  if (job.comm != nullptr && job.comm->size() > 1)
    return Status::InvalidArgument("--stream trains in one process; it does not run under mpirun/srun yet");
  if (job.out_dir.empty()) return Status::InvalidArgument("--stream needs --out: deltas and snapshots go there");
  const Interval delta_every = cfg.delta_every, snapshot_every = cfg.snapshot_every;
  Interval report_every = cfg.report_every;
  if (report_every.off()) report_every.seconds = 10;
  Model& model = trainer->model();
  TrainerState& state = trainer->state();

  // The source, positioned where the checkpoint's stream stopped.
  LineSourceOptions lo;
  lo.stop = stream.stop;
  EMBARK_ASSIGN_OR_RETURN(std::unique_ptr<LineSource> src, OpenLineSource(stream.source, lo));
  if (!state.stream_position.empty()) {
    nlohmann::json pos;
    try {
      pos = nlohmann::json::parse(state.stream_position);
    } catch (const std::exception& e) {
      return Status::Corruption(std::string("the checkpoint's stream position is unreadable: ") + e.what());
    }
    std::string note;
    EMBARK_RETURN_IF_ERROR(src->Seek(pos, &note));
    log.Log(LogLevel::kInfo, "stream resumes at %s", state.stream_position.c_str());
    if (!note.empty()) log.Log(LogLevel::kWarn, "%s", note.c_str());
  }
  log.Log(LogLevel::kInfo, "streaming from %s into %s", src->describe().c_str(), job.out_dir.c_str());
  StreamReaderOptions ro;
  ro.batch_size = static_cast<size_t>(cfg.batch_size);
  ro.max_delay_s = cfg.max_batch_delay;
  ro.max_bad_lines = cfg.max_bad_lines;
  StreamReader reader(std::move(src), model.spec(), ro);

  TrainReport rep;
  rep.threads = trainer->threads();
  const auto t0 = Clock::now();
  const double cpu0 = ProcessCpuSeconds();
  double aside_cpu = 0, delta_seconds = 0, snapshot_seconds = 0;
  uint64_t deltas = 0, snapshots = 0, delta_bytes = 0;
  double newest_sample = 0;
  TouchedKeys touched;
  bool need_base = false;  // --out lacks the snapshot this run's deltas apply to

  // A snapshot: a new id, the deltas before it folded in (the directory is
  // replaced), the touched keys forgotten.
  auto snapshot = [&]() -> Status {
    const double c0 = ProcessCpuSeconds();
    const auto s0 = Clock::now();
    state.snapshot_id = NewSnapshotId(state.step);
    EMBARK_RETURN_IF_ERROR(trainer->Save(job.out_dir, state.best_auc));
    touched.Clear();
    need_base = false;
    ++snapshots;
    snapshot_seconds += Since(s0);
    aside_cpu += ProcessCpuSeconds() - c0;
    return Status::OK();
  };
  auto delta = [&]() -> Status {
    if (need_base) return snapshot();
    const double c0 = ProcessCpuSeconds();
    const auto s0 = Clock::now();
    EMBARK_RETURN_IF_ERROR(trainer->Drain());
    DeltaInfo info;
    info.seq = state.delta_seq + 1;
    info.base = state.snapshot_id;
    info.written_unix = NowUnix();
    info.newest_sample_unix = newest_sample;
    info.state = state;
    const std::vector<uint64_t>& keys = touched.Sorted();
    std::vector<std::vector<uint64_t>> per_table(model.num_tables(), keys);
    EMBARK_ASSIGN_OR_RETURN(uint64_t bytes, WriteDelta(job.out_dir, model, per_table, trainer->DenseState(), info));
    state.delta_seq = info.seq;
    touched.Clear();
    ++deltas;
    delta_bytes += bytes;
    delta_seconds += Since(s0);
    aside_cpu += ProcessCpuSeconds() - c0;
    return Status::OK();
  };

  // Deltas apply to the snapshot in --out: write one first unless --out
  // holds this model's snapshot with no delta beyond what was loaded (a
  // refused delta there would block the sequence).
  {
    // A delta a crash cut short never got its name: its staging folder goes.
    Env* env = Env::Posix();
    if (env->FileExists(DeltasDir(job.out_dir)))
      if (auto names = env->ListDir(DeltasDir(job.out_dir)); names.ok())
        for (const std::string& n : names.value())
          if (n.rfind(".tmp-", 0) == 0) (void)env->RemoveAll(DeltasDir(job.out_dir) + "/" + n);
    bool fresh = state.snapshot_id.empty() || job.resume_dir != job.out_dir;
    if (!fresh) {
      EMBARK_ASSIGN_OR_RETURN(std::vector<uint64_t> seqs, ListDeltas(job.out_dir));
      fresh = !seqs.empty() && seqs.back() > state.delta_seq;
    }
    // Written before the first delta (or at the stop), so that a stream
    // failing on its first lines leaves no --out behind.
    need_base = fresh;
  }

  // Keys trained since the last delta, for the next one (none without deltas).
  const bool track = !delta_every.off();
  Window window(static_cast<size_t>(cfg.metric_window));
  Every delta_c{delta_every}, snap_c{snapshot_every}, report_c{report_every};
  delta_c.Reset(state.step);
  snap_c.Reset(state.step);
  report_c.Reset(state.step);
  int64_t steps_since_delta = 0;
  uint64_t report_samples = 0;
  auto report_t = Clock::now();
  ObjectiveSums sums;
  uint64_t sum_n = 0;
  std::vector<float> logits;
  StreamBatch sb;
  Status failed;

  // The history (TrainerState::history): a record per report with samples
  // since the one before, the newest kStreamRecords kept.
  const double hist_seconds0 = HistorySeconds(state);
  auto report = [&] {
    const Metrics w = window.Compute();
    if (sum_n > 0) {
      nlohmann::json r = HistoryRecord(state, hist_seconds0 + Since(t0), sums, sum_n);
      r["window"] = {{"count", window.size()}, {"auc", w.auc}, {"logloss", w.logloss}, {"calibration", w.calibration}};
      state.history.push_back(r.dump());
      if (state.history.size() >= kStreamRecords + kStreamRecords / 10)
        state.history.erase(state.history.begin(), state.history.end() - kStreamRecords);
    }
    const double dt = std::max(1e-9, Since(report_t));
    const double rate = static_cast<double>(rep.samples - report_samples) / dt;
    report_samples = rep.samples;
    report_t = Clock::now();
    StoreStats st;
    for (int i = 0; i < model.num_tables(); ++i) st += model.table(i)->stats();
    const uint64_t rss = CurrentRssBytes();
    log.Log(LogLevel::kInfo,
            "stream: %llu samples (%.0f/s), window of %zu: auc %.4f logloss %.4f calibration %.3f; rows %zu, "
            "deltas %llu, snapshots %llu, rss %.0f MiB",
            static_cast<unsigned long long>(state.samples), rate, window.size(), w.auc, w.logloss, w.calibration,
            st.rows, static_cast<unsigned long long>(deltas), static_cast<unsigned long long>(snapshots),
            static_cast<double>(rss) / 1048576.0);
    if (stream.on_report) {
      nlohmann::json j = {{"samples", state.samples},
                          {"steps", state.step},
                          {"samples_per_sec", rate},
                          {"seconds", Since(t0)},
                          {"window_samples", window.size()},
                          {"window_auc", w.auc},
                          {"window_logloss", w.logloss},
                          {"window_calibration", w.calibration},
                          {"train_loss", sum_n ? sums.loss / static_cast<double>(sum_n) : 0.0},
                          {"rows", st.rows},
                          {"rows_expired", st.expired},
                          {"rows_evicted", st.evicted},
                          {"deltas", deltas},
                          {"delta_seq", state.delta_seq},
                          {"snapshots", snapshots},
                          {"rss_bytes", rss},
                          {"bad_lines", reader.bad_lines().count},
                          {"newest_sample_unix", newest_sample},
                          {"position", state.stream_position.empty() ? nlohmann::json(nullptr)
                                                                     : nlohmann::json::parse(state.stream_position)}};
      stream.on_report(j.dump());
    }
    sums = ObjectiveSums{};
    sum_n = 0;
  };

  // One step on `sb`: its scores before the update go into the window
  // (progressive validation), its keys into the next delta, its position
  // into the trainer's state.
  auto train = [&]() -> Status {
    const size_t n = sb.batch.size();
    logits.resize(n * static_cast<size_t>(model.outputs()));
    const auto s0 = Clock::now();
    EMBARK_ASSIGN_OR_RETURN(StepStats st, trainer->Step(sb.batch, logits.data()));
    rep.train_seconds += Since(s0);
    for (size_t i = 0; i < n; ++i)
      window.Add(model.Probability(model.Logit(&logits[i * model.outputs()])), sb.batch.labels[i]);
    sums.loss += st.sums.loss;
    sums.pred += st.sums.pred;
    sums.labels += st.sums.labels;
    sum_n += n;
    if (track) touched.Add(sb.batch.keys);
    state.stream_position = sb.position.dump();
    newest_sample = std::max(newest_sample, sb.newest_unix);
    rep.samples += n;
    ++steps_since_delta;
    return Status::OK();
  };

  auto stopping = [&] { return stream.stop != nullptr && stream.stop->load(std::memory_order_relaxed); };
  while (!stopping()) {
    auto got = reader.Next(&sb, 0.1);
    for (const std::string& note : reader.TakeNotes()) log.Log(LogLevel::kWarn, "%s", note.c_str());
    if (!got.ok()) {
      failed = got.status();
      break;
    }
    if (got.value() && sb.batch.size() > 0) {
      if (Status s = train(); !s.ok()) {
        failed = s;
        break;
      }
    }
    if (snap_c.Due(state.step) && steps_since_delta > 0) {
      if (Status s = snapshot(); !s.ok()) {
        failed = s;
        break;
      }
      snap_c.Reset(state.step);
      delta_c.Reset(state.step);
      steps_since_delta = 0;
    } else if (delta_c.Due(state.step) && steps_since_delta > 0) {
      if (Status s = delta(); !s.ok()) {
        failed = s;
        break;
      }
      delta_c.Reset(state.step);
      steps_since_delta = 0;
    }
    if (report_c.Due(state.step)) {
      report();
      report_c.Reset(state.step);
    }
  }
  // A clean stop trains what was read (lines of a pipe cannot be read
  // again) before the final snapshot.
  if (failed.ok()) {
    reader.Finish();
    for (;;) {
      auto got = reader.Next(&sb, 5.0);
      if (!got.ok() || !got.value()) break;
      if (Status s = train(); !s.ok()) {
        failed = s;
        break;
      }
    }
  }
  reader.Stop();
  // A clean stop always leaves a snapshot. A failure leaves one only when
  // something was trained since the last checkpoint written, and not when
  // the model itself is what failed (a divergence: InvalidArgument).
  if (failed.ok() || (failed.code() != Status::Code::kInvalidArgument && steps_since_delta > 0)) {
    Status s = snapshot();
    if (!s.ok() && failed.ok()) failed = s;
  }
  report();
  if (!failed.ok()) return failed;
  const BadLineReport bad = reader.bad_lines();
  rep.bad_lines = bad.count;
  rep.bad_examples = bad.examples;
  rep.steps = state.step;
  rep.global_samples = rep.samples;
  const double wall = Since(t0);
  rep.samples_per_sec = rep.train_seconds > 0 ? static_cast<double>(rep.samples) / wall : 0;
  rep.cpu_seconds = ProcessCpuSeconds() - cpu0 - aside_cpu;
  rep.peak_rss_bytes = PeakRssBytes();
  AddTableFigures(model, &rep);
  log.Log(LogLevel::kInfo, "stream stopped after %llu samples: %llu delta(s) (%.1f MiB, %.2f s), %llu snapshot(s) (%.2f s)",
          static_cast<unsigned long long>(rep.samples), static_cast<unsigned long long>(deltas),
          static_cast<double>(delta_bytes) / 1048576.0, delta_seconds, static_cast<unsigned long long>(snapshots),
          snapshot_seconds);
  return rep;
}

}  // namespace embark
