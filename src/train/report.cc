#include "train/report.h"

#include <cmath>

#include <nlohmann/json.hpp>

#include "nn/train_gemm.h"

namespace embark {
namespace {

// JSON numbers cannot be NaN or infinite; write null instead.
nlohmann::json Num(double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr); }

}  // namespace

nlohmann::json ToJson(const Metrics& m) {
  nlohmann::json j;
  j["auc"] = Num(m.auc);
  j["logloss"] = Num(m.logloss);
  j["normalized_entropy"] = Num(m.ne);
  j["calibration"] = Num(m.calibration);
  j["ctr"] = Num(m.ctr);
  j["rows"] = m.count;
  return j;
}

nlohmann::json ToJson(const TrainReport& r, const std::string& model) {
  nlohmann::json j;
  j["model"] = model;
  j["samples"] = r.samples;
  j["steps"] = r.steps;
  j["epochs"] = r.epochs_done;
  j["threads"] = r.threads;
  j["train_seconds"] = r.train_seconds;
  j["samples_per_sec"] = r.samples_per_sec;
  j["cpu_seconds"] = r.cpu_seconds;
  j["cpu_seconds_per_million_samples"] = r.samples ? r.cpu_seconds * 1e6 / static_cast<double>(r.samples) : 0;
  j["input_wait_seconds"] = r.input_wait_seconds;
  j["train_loss"] = r.final_loss;
  j["train_calibration"] = r.train_calibration;
  j["peak_rss_bytes"] = r.peak_rss_bytes;
  j["embedding_rows"] = r.embedding_rows;
  j["embedding_bytes"] = r.embedding_bytes;
  j["embedding_ideal_bytes"] = r.embedding_ideal_bytes;
  j["rows_admitted"] = r.rows_admitted;
  j["rows_rejected"] = r.rows_rejected;
  j["rows_evicted"] = r.rows_evicted;
  j["rows_expired"] = r.rows_expired;
  const uint64_t lookups = r.cache_hits + r.cache_misses;
  j["cache_hit_rate"] = lookups ? static_cast<double>(r.cache_hits) / static_cast<double>(lookups) : 0.0;
  j["disk_read_bytes_per_sample"] = r.samples ? static_cast<double>(r.disk_read_bytes) / r.samples : 0;
  j["disk_write_bytes_per_sample"] = r.samples ? static_cast<double>(r.disk_write_bytes) / r.samples : 0;
  j["stall_seconds"] = r.stall_seconds;
  j["table_ram_bytes"] = r.table_ram_bytes;
  j["table_disk_bytes"] = r.table_disk_bytes;
  j["flops_per_sample"] = r.flops_per_sample;
  // The machine's dense kernels: the instruction set oneDNN dispatches to,
  // and how --dense-precision bf16 runs here ("onednn" or "rounded-fp32").
  j["onednn_isa"] = OneDnnIsa();
  j["bf16_method"] = TrainGemm::Bf16Method();
  j["phase_seconds"] = {{"lookup", r.lookup_seconds},     {"forward", r.forward_seconds},
                        {"backward", r.backward_seconds}, {"update", r.update_seconds},
                        {"dense_step", r.dense_step_seconds}};
  j["bad_lines"] = r.bad_lines;
  j["stopped_early"] = r.stopped_early;
  if (r.ranks > 1) {
    j["ranks"] = r.ranks;
    j["global_samples_per_sec"] = r.train_seconds > 0 ? r.global_samples / r.train_seconds : 0;
    j["comm_wait_seconds"] = r.comm_wait_seconds;
    j["sparse_bytes_per_sample"] = r.samples ? static_cast<double>(r.sparse_bytes) / r.samples : 0;
    j["dense_bytes_per_sample"] = r.samples ? static_cast<double>(r.dense_bytes) / r.samples : 0;
  }
  if (r.has_valid) j.update(ToJson(r.valid));
  if (r.calibrated) {
    j["platt"] = {{"a", r.platt_a}, {"b", r.platt_b}};
    j["uncalibrated"] = ToJson(r.valid_uncalibrated);
  }
  return j;
}

nlohmann::json ToJson(const GenReport& r) {
  const GenFigures& f = r.valid.rows > 0 ? r.valid : r.train;
  nlohmann::json j;
  if (!r.windows.empty()) {
    j["rows"] = r.train.rows;
    j["ctr"] = f.ctr;
    j["optimal_auc"] = Num(f.optimal_auc);
    j["optimal_logloss"] = Num(f.optimal_logloss);
    nlohmann::json windows = nlohmann::json::array();
    for (const GenWindow& w : r.windows) {
      nlohmann::json o;
      o["index"] = w.index;
      o["rows"] = w.figures.rows;
      o["ctr"] = w.figures.ctr;
      o["optimal_auc"] = Num(w.figures.optimal_auc);
      o["optimal_logloss"] = Num(w.figures.optimal_logloss);
      o["first_order_auc"] = Num(w.figures.first_order_auc);
      o["window0_model_auc"] = Num(w.window0_model_auc);
      o["new_id_share"] = w.new_id_share;
      if (!w.path.empty()) o["path"] = w.path;
      windows.push_back(std::move(o));
    }
    j["windows"] = std::move(windows);
    return j;
  }
  j["rows"] = r.train.rows;
  j["valid_rows"] = r.valid.rows;
  j["ctr"] = f.ctr;
  j["optimal_auc"] = Num(f.optimal_auc);
  j["optimal_logloss"] = Num(f.optimal_logloss);
  j["first_order_auc"] = Num(f.first_order_auc);
  j["train_optimal_auc"] = Num(r.train.optimal_auc);
  j["train_optimal_logloss"] = Num(r.train.optimal_logloss);
  return j;
}

}  // namespace embark
