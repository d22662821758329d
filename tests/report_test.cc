#include "train/report.h"

#include <gtest/gtest.h>

#include <cmath>

#include <nlohmann/json.hpp>

namespace embark {
namespace {

TEST(ReportJson, MetricsUseStableKeysAndNullForNaN) {
  Metrics m;
  m.count = 10;
  m.auc = std::nan("");
  m.logloss = 0.5;
  m.ne = 0.9;
  m.calibration = 1.1;
  m.ctr = 0.2;
  nlohmann::json j = ToJson(m);
  EXPECT_TRUE(j["auc"].is_null());
  EXPECT_DOUBLE_EQ(j["logloss"].get<double>(), 0.5);
  EXPECT_DOUBLE_EQ(j["normalized_entropy"].get<double>(), 0.9);
  EXPECT_DOUBLE_EQ(j["calibration"].get<double>(), 1.1);
  EXPECT_DOUBLE_EQ(j["ctr"].get<double>(), 0.2);
  EXPECT_EQ(j["rows"].get<size_t>(), 10u);
  EXPECT_EQ(j.size(), 6u);
  // It always serialises: no NaN reaches the text.
  EXPECT_EQ(j.dump().find("NaN"), std::string::npos);
}

TEST(ReportJson, TrainReportWithValidationAndRanks) {
  TrainReport r;
  r.samples = 1000;
  r.steps = 5;
  r.epochs_done = 2;
  r.threads = 2;
  r.train_seconds = 2;
  r.samples_per_sec = 500;
  r.cpu_seconds = 3;
  r.forward_seconds = 0.25;
  r.stopped_early = true;
  nlohmann::json one = ToJson(r, "deepfm");
  EXPECT_EQ(one["model"], "deepfm");
  EXPECT_EQ(one["samples"].get<uint64_t>(), 1000u);
  EXPECT_EQ(one["epochs"].get<int>(), 2);
  EXPECT_DOUBLE_EQ(one["phase_seconds"]["forward"].get<double>(), 0.25);
  EXPECT_DOUBLE_EQ(one["cpu_seconds"].get<double>(), 3);
  EXPECT_DOUBLE_EQ(one["cpu_seconds_per_million_samples"].get<double>(), 3000);
  EXPECT_TRUE(one["stopped_early"].get<bool>());
  EXPECT_FALSE(one.contains("auc"));    // no validation
  EXPECT_FALSE(one.contains("ranks"));  // one process

  r.has_valid = true;
  r.valid.auc = 0.75;
  r.valid.count = 40;
  r.ranks = 4;
  r.global_samples = 4000;
  r.sparse_bytes = 3000;
  nlohmann::json all = ToJson(r, "dlrm");
  EXPECT_DOUBLE_EQ(all["auc"].get<double>(), 0.75);
  EXPECT_EQ(all["rows"].get<size_t>(), 40u);
  EXPECT_EQ(all["ranks"].get<int>(), 4);
  EXPECT_DOUBLE_EQ(all["global_samples_per_sec"].get<double>(), 2000);
  EXPECT_DOUBLE_EQ(all["sparse_bytes_per_sample"].get<double>(), 3);
  for (const char* key : {"train_seconds", "samples_per_sec", "input_wait_seconds", "train_loss", "train_calibration",
                          "peak_rss_bytes", "embedding_rows", "embedding_bytes", "embedding_ideal_bytes",
                          "flops_per_sample", "bad_lines", "steps", "threads", "comm_wait_seconds",
                          "dense_bytes_per_sample"})
    EXPECT_TRUE(all.contains(key)) << key;
}

TEST(ReportJson, StorageCounters) {
  TrainReport r;
  r.samples = 100;
  r.rows_admitted = 7;
  r.rows_rejected = 3;
  r.rows_evicted = 2;
  r.rows_expired = 1;
  nlohmann::json j = ToJson(r, "fm");
  EXPECT_EQ(j["rows_admitted"].get<uint64_t>(), 7u);
  EXPECT_EQ(j["rows_rejected"].get<uint64_t>(), 3u);
  EXPECT_EQ(j["rows_evicted"].get<uint64_t>(), 2u);
  EXPECT_EQ(j["rows_expired"].get<uint64_t>(), 1u);
  EXPECT_DOUBLE_EQ(j["cache_hit_rate"].get<double>(), 0);  // no lookups: 0, not NaN
  r.cache_hits = 3;
  r.cache_misses = 1;
  r.disk_read_bytes = 400;
  r.disk_write_bytes = 50;
  r.table_disk_bytes = 1 << 20;
  j = ToJson(r, "fm");
  EXPECT_DOUBLE_EQ(j["cache_hit_rate"].get<double>(), 0.75);
  EXPECT_DOUBLE_EQ(j["disk_read_bytes_per_sample"].get<double>(), 4);
  EXPECT_DOUBLE_EQ(j["disk_write_bytes_per_sample"].get<double>(), 0.5);
  EXPECT_EQ(j["table_disk_bytes"].get<size_t>(), size_t{1} << 20);
  for (const char* key : {"stall_seconds", "table_ram_bytes"}) EXPECT_TRUE(j.contains(key)) << key;
}

TEST(ReportJson, GenFiguresAreTheValidationDataWhenThereIsSome) {
  GenReport g;
  g.train = {100, 0.25, 0.8, 0.45, 0.7};
  nlohmann::json only_train = ToJson(g);
  EXPECT_EQ(only_train["rows"].get<uint64_t>(), 100u);
  EXPECT_EQ(only_train["valid_rows"].get<uint64_t>(), 0u);
  EXPECT_DOUBLE_EQ(only_train["optimal_auc"].get<double>(), 0.8);
  g.valid = {20, 0.3, 0.79, 0.46, 0.69};
  nlohmann::json both = ToJson(g);
  EXPECT_EQ(both["valid_rows"].get<uint64_t>(), 20u);
  EXPECT_DOUBLE_EQ(both["ctr"].get<double>(), 0.3);
  EXPECT_DOUBLE_EQ(both["optimal_auc"].get<double>(), 0.79);
  EXPECT_DOUBLE_EQ(both["first_order_auc"].get<double>(), 0.69);
  EXPECT_DOUBLE_EQ(both["train_optimal_auc"].get<double>(), 0.8);
  EXPECT_DOUBLE_EQ(both["train_optimal_logloss"].get<double>(), 0.45);
}

}  // namespace
}  // namespace embark
