// Server metrics in the Prometheus text exposition format (GET /metrics).
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace embark::serve {

// A cumulative histogram with fixed upper bounds.
class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds);
  void Observe(double v);
  // Appends the _bucket, _sum and _count lines of `name`.
  void Render(const std::string& name, std::string* out) const;

 private:
  std::vector<double> bounds_;
  mutable std::mutex mu_;
  std::vector<uint64_t> counts_;  // one per bound, plus +Inf
  double sum_ = 0;
  uint64_t count_ = 0;
};

class ServerMetrics {
 public:
  ServerMetrics();
  void CountRequest(const std::string& endpoint, int status);
  void ObserveInferLatency(double seconds) { latency_.Observe(seconds); }
  void ObserveBatch(size_t rows);
  void SetModelVersion(int64_t v) { version_ = v; }
  void CountReload(bool ok) { (ok ? reloads_ok_ : reloads_failed_)++; }
  // Retrieval (--index): loads of the index directory, and the version served.
  void CountIndexReload(bool ok) { (ok ? index_reloads_ok_ : index_reloads_failed_)++; }
  void SetIndexVersion(int64_t v) { index_version_ = v; }
  // Delta checkpoints (docs/serving.md): `n` deltas applied, the last of
  // them `seq`, written at `written_unix` after training on samples read up
  // to `sample_unix` (wall-clock seconds; 0: unknown, and its age is not
  // reported), applied in place in `apply_seconds` (< 0: by a full load).
  void DeltasApplied(uint64_t n, uint64_t seq, double written_unix, double sample_unix, double apply_seconds);
  // The model a full load ends at delta `seq` (0: none), which is not the
  // delta last reported: the ages are unknown until the next delta.
  void SetDeltaSeq(uint64_t seq);
  void CountDeltaFailed() { ++deltas_failed_; }
  void SetOpenConnections(size_t n) { connections_ = static_cast<int64_t>(n); }
  void CountRefusedConnection() { ++connections_refused_; }
  // The delta ages are measured at `now_unix` (wall-clock seconds), or now.
  std::string Render(double now_unix) const;
  std::string Render() const;

 private:
  mutable std::mutex mu_;
  std::map<std::pair<std::string, int>, uint64_t> requests_;
  Histogram latency_, batch_rows_;
  std::atomic<uint64_t> rows_{0}, batches_{0}, reloads_ok_{0}, reloads_failed_{0};
  std::atomic<int64_t> version_{0}, connections_{0};
  std::atomic<uint64_t> index_reloads_ok_{0}, index_reloads_failed_{0};
  std::atomic<int64_t> index_version_{0};  // 0: no index served (a ranking model)
  std::atomic<uint64_t> connections_refused_{0};
  std::atomic<uint64_t> deltas_applied_{0}, deltas_failed_{0};
  struct DeltaState {
    uint64_t seq = 0;
    double written_unix = 0, sample_unix = 0, apply_seconds = -1;
  };
  DeltaState delta_;  // guarded by mu_
};

}  // namespace embark::serve
