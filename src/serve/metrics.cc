#include "serve/metrics.h"

#include <chrono>
#include <cstdio>

namespace embark::serve {

Histogram::Histogram(std::vector<double> bounds) : bounds_(std::move(bounds)), counts_(bounds_.size() + 1, 0) {}

void Histogram::Observe(double v) {
  size_t i = 0;
  while (i < bounds_.size() && v > bounds_[i]) ++i;
  std::lock_guard<std::mutex> lock(mu_);
  ++counts_[i];
  sum_ += v;
  ++count_;
}

void Histogram::Render(const std::string& name, std::string* out) const {
  std::lock_guard<std::mutex> lock(mu_);
  char buf[160];
  uint64_t cum = 0;
  for (size_t i = 0; i <= bounds_.size(); ++i) {
    cum += counts_[i];
    if (i < bounds_.size()) {
      std::snprintf(buf, sizeof(buf), "%s_bucket{le=\"%g\"} %llu\n", name.c_str(), bounds_[i],
                    static_cast<unsigned long long>(cum));
    } else {
      std::snprintf(buf, sizeof(buf), "%s_bucket{le=\"+Inf\"} %llu\n", name.c_str(), static_cast<unsigned long long>(cum));
    }
    *out += buf;
  }
  std::snprintf(buf, sizeof(buf), "%s_sum %.9g\n%s_count %llu\n", name.c_str(), sum_, name.c_str(),
                static_cast<unsigned long long>(count_));
  *out += buf;
}

ServerMetrics::ServerMetrics()
    : latency_({0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10}),
      batch_rows_({1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192}) {}

void ServerMetrics::CountRequest(const std::string& endpoint, int status) {
  std::lock_guard<std::mutex> lock(mu_);
  ++requests_[{endpoint, status}];
}

void ServerMetrics::ObserveBatch(size_t rows) {
  batch_rows_.Observe(static_cast<double>(rows));
  rows_ += rows;
  ++batches_;
}

void ServerMetrics::DeltasApplied(uint64_t n, uint64_t seq, double written_unix, double sample_unix,
                                  double apply_seconds) {
  deltas_applied_ += n;
  std::lock_guard<std::mutex> lock(mu_);
  delta_.seq = seq;
  delta_.written_unix = written_unix;
  delta_.sample_unix = sample_unix;
  if (apply_seconds >= 0) delta_.apply_seconds = apply_seconds;
}

void ServerMetrics::SetDeltaSeq(uint64_t seq) {
  std::lock_guard<std::mutex> lock(mu_);
  if (seq == delta_.seq) return;
  delta_ = DeltaState{seq, 0, 0, delta_.apply_seconds};
}

std::string ServerMetrics::Render() const {
  return Render(std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count());
}

std::string ServerMetrics::Render(double now_unix) const {
  std::string out;
  out += "# HELP embark_requests_total HTTP requests by endpoint and status code.\n";
  out += "# TYPE embark_requests_total counter\n";
  {
    std::lock_guard<std::mutex> lock(mu_);
    char buf[200];
    for (const auto& [key, n] : requests_) {
      std::snprintf(buf, sizeof(buf), "embark_requests_total{endpoint=\"%s\",code=\"%d\"} %llu\n", key.first.c_str(),
                    key.second, static_cast<unsigned long long>(n));
      out += buf;
    }
  }
  out += "# HELP embark_infer_latency_seconds Time from receiving an infer request to its answer.\n";
  out += "# TYPE embark_infer_latency_seconds histogram\n";
  latency_.Render("embark_infer_latency_seconds", &out);
  out += "# HELP embark_batch_rows Rows per scored micro-batch.\n";
  out += "# TYPE embark_batch_rows histogram\n";
  batch_rows_.Render("embark_batch_rows", &out);
  out += "# HELP embark_rows_scored_total Rows scored.\n# TYPE embark_rows_scored_total counter\n";
  out += "embark_rows_scored_total " + std::to_string(rows_.load()) + "\n";
  out += "# HELP embark_model_version Version of the model being served (1 for the first load, +1 per reload).\n";
  out += "# TYPE embark_model_version gauge\n";
  out += "embark_model_version " + std::to_string(version_.load()) + "\n";
  out += "# HELP embark_model_reloads_total Model reload attempts by result.\n# TYPE embark_model_reloads_total counter\n";
  out += "embark_model_reloads_total{result=\"success\"} " + std::to_string(reloads_ok_.load()) + "\n";
  out += "embark_model_reloads_total{result=\"failure\"} " + std::to_string(reloads_failed_.load()) + "\n";
  if (index_version_.load() > 0 || index_reloads_failed_.load() > 0) {
    out += "# HELP embark_index_version Version of the retrieval index being served (1 for the first load, +1 per "
           "reload).\n# TYPE embark_index_version gauge\n";
    out += "embark_index_version " + std::to_string(index_version_.load()) + "\n";
    out += "# HELP embark_index_reloads_total Retrieval index load attempts by result.\n"
           "# TYPE embark_index_reloads_total counter\n";
    out += "embark_index_reloads_total{result=\"success\"} " + std::to_string(index_reloads_ok_.load()) + "\n";
    out += "embark_index_reloads_total{result=\"failure\"} " + std::to_string(index_reloads_failed_.load()) + "\n";
  }
  out += "# HELP embark_http_connections Connections open.\n# TYPE embark_http_connections gauge\n";
  out += "embark_http_connections " + std::to_string(connections_.load()) + "\n";
  out += "# HELP embark_http_connections_refused_total Connections refused for being over --max-connections.\n";
  out += "# TYPE embark_http_connections_refused_total counter\n";
  out += "embark_http_connections_refused_total " + std::to_string(connections_refused_.load()) + "\n";
  DeltaState d;
  {
    std::lock_guard<std::mutex> lock(mu_);
    d = delta_;
  }
  out += "# HELP embark_deltas_applied_total Delta checkpoints applied, in place or by a full load.\n";
  out += "# TYPE embark_deltas_applied_total counter\n";
  out += "embark_deltas_applied_total " + std::to_string(deltas_applied_.load()) + "\n";
  out += "# HELP embark_deltas_failed_total Delta checkpoints refused (incomplete, corrupt, or not following the "
         "model served).\n# TYPE embark_deltas_failed_total counter\n";
  out += "embark_deltas_failed_total " + std::to_string(deltas_failed_.load()) + "\n";
  out += "# HELP embark_delta_seq Sequence number of the last delta in the model served (0: none).\n";
  out += "# TYPE embark_delta_seq gauge\n";
  out += "embark_delta_seq " + std::to_string(d.seq) + "\n";
  char buf[160];
  if (d.written_unix > 0) {
    std::snprintf(buf, sizeof(buf), "embark_delta_age_seconds %.3f\n", now_unix - d.written_unix);
    out += "# HELP embark_delta_age_seconds Seconds since the newest delta applied was written.\n";
    out += "# TYPE embark_delta_age_seconds gauge\n";
    out += buf;
  }
  if (d.sample_unix > 0) {
    std::snprintf(buf, sizeof(buf), "embark_delta_sample_age_seconds %.3f\n", now_unix - d.sample_unix);
    out += "# HELP embark_delta_sample_age_seconds Seconds since the newest sample trained into the model served "
           "was read from the stream.\n# TYPE embark_delta_sample_age_seconds gauge\n";
    out += buf;
  }
  if (d.apply_seconds >= 0) {
    std::snprintf(buf, sizeof(buf), "embark_delta_apply_seconds %.6f\n", d.apply_seconds);
    out += "# HELP embark_delta_apply_seconds Seconds the last delta applied in place took (verify, rows, dense "
           "swap).\n# TYPE embark_delta_apply_seconds gauge\n";
    out += buf;
  }
  return out;
}

}  // namespace embark::serve
