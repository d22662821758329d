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
  void SetOpenConnections(size_t n) { connections_ = static_cast<int64_t>(n); }
  void CountRefusedConnection() { ++connections_refused_; }
  std::string Render() const;

 private:
  mutable std::mutex mu_;
  std::map<std::pair<std::string, int>, uint64_t> requests_;
  Histogram latency_, batch_rows_;
  std::atomic<uint64_t> rows_{0}, batches_{0}, reloads_ok_{0}, reloads_failed_{0};
  std::atomic<int64_t> version_{0}, connections_{0};
  std::atomic<uint64_t> connections_refused_{0};
};

}  // namespace embark::serve
