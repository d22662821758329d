// Serving follows online training: a model sharing its tables sees rows put
// after it was made (Model::ShareTables); embark serve applies delta
// checkpoints in place and then answers exactly what a load of snapshot
// plus deltas answers; a corrupt delta is refused and counted while the
// server keeps answering with what it has; deltas applied while requests
// are answered (the TSan build runs this one).
#include <gtest/gtest.h>

#include <httplib.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <regex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "checkpoint/checkpoint.h"
#include "checkpoint/delta.h"
#include "data/parse.h"
#include "serve/request.h"
#include "serve/server.h"
#include "test_util.h"
#include "util/log.h"

namespace embark {
namespace {

namespace sfs = std::filesystem;

TrainConfig SmallDeepFm() {
  TrainConfig cfg;
  cfg.model = "deepfm";
  cfg.embedding_dim = 4;
  cfg.mlp = {8};
  return cfg;
}

double NowUnix() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// Every key of `b`, once.
std::vector<uint64_t> UniqueKeys(const Batch& b) {
  std::set<uint64_t> s(b.keys.begin(), b.keys.end());
  return {s.begin(), s.end()};
}

TEST(ShareTables, SeesRowsPutAfterItWasMade) {
  InitBlas();
  auto m = Model::Create(SmallDeepFm(), DataSpec::Criteo()).value();
  for (size_t i = 0; i < m->params().size(); ++i) m->params().data()[i] = 0.001f * static_cast<float>(i % 97);
  auto shared = m->ShareTables();
  ASSERT_TRUE(shared.ok()) << shared.status().message();
  Model& s = *shared.value();
  ASSERT_EQ(s.num_tables(), m->num_tables());
  EXPECT_EQ(s.params().values(), m->params().values());
  for (int t = 0; t < m->num_tables(); ++t) {
    EXPECT_EQ(s.table(t), m->table(t)) << "the same store, not a copy";
    const int w = m->table(t)->row_width(), d = m->table(t)->dim();
    const uint64_t key = 12345 + t;
    std::vector<float> row(w);
    for (int i = 0; i < w; ++i) row[i] = 0.5f + static_cast<float>(i);
    ASSERT_TRUE(m->table(t)->Put(&key, 1, row.data(), nullptr).ok());
    std::vector<float> got(d);
    ASSERT_TRUE(s.table(t)->Get(&key, 1, got.data(), Access::kRead).ok());
    EXPECT_EQ(got, std::vector<float>(row.begin(), row.begin() + d));
  }
  // The dense parameters are the new model's own.
  s.params().data()[0] = 42.0f;
  EXPECT_NE(m->params().data()[0], 42.0f);
  // Both score alike until their dense parameters differ.
  auto shared2 = m->ShareTables();
  ASSERT_TRUE(shared2.ok());
  Batch b;
  b.Reset(13, 26);
  b.labels.push_back(1);
  for (int d = 0; d < 13; ++d) b.dense.push_back(0.1f * d);
  for (int f = 0; f < 26; ++f) {
    b.keys.push_back(12345 + f % 2);
    b.values.push_back(1);
    b.offsets.push_back(static_cast<uint32_t>(b.keys.size()));
  }
  m->FreezeForInference();
  shared2.value()->FreezeForInference();
  auto ws = m->NewWorkspace();
  float z1 = 0, z2 = 0;
  ASSERT_TRUE(m->Forward(b, 0, 1, false, nullptr, ws.get(), &z1).ok());
  ASSERT_TRUE(shared2.value()->Forward(b, 0, 1, false, nullptr, ws.get(), &z2).ok());
  EXPECT_EQ(z1, z2);
}

// An online model directory written by hand: a snapshot of `trained`, then
// deltas, each after changing the rows the requests read and the dense
// weights, as a trainer would between deltas.
class OnlineDir {
 public:
  explicit OnlineDir(const std::string& dir) : dir_(dir) {
    InitBlas();
    model_ = Model::Create(SmallDeepFm(), DataSpec::Criteo()).value();
    Nudge(0);
    state_.snapshot_id = "snap-1";
    state_.delta_seq = 0;
    EXPECT_TRUE(SaveCheckpoint(dir_, *model_, DenseOptState{}, state_).ok());
  }
  const std::string& dir() const { return dir_; }
  Model* model() { return model_.get(); }

  // New values for the rows of `keys` and for the dense weights.
  void Nudge(int round) {
    for (size_t i = 0; i < model_->params().size(); ++i)
      model_->params().data()[i] = 0.01f * static_cast<float>((i * 7 + round * 13) % 31) - 0.15f;
    for (int t = 0; t < model_->num_tables(); ++t) {
      const int w = model_->table(t)->row_width();
      std::vector<float> rows(keys_.size() * w);
      for (size_t i = 0; i < rows.size(); ++i) rows[i] = 0.02f * static_cast<float>((i * 5 + round * 11) % 23) - 0.2f;
      EXPECT_TRUE(model_->table(t)->Put(keys_.data(), keys_.size(), rows.data(), nullptr).ok());
    }
  }
  void set_keys(std::vector<uint64_t> k) { keys_ = std::move(k); }

  // Writes delta `seq` of the rows of keys_ after Nudge(seq).
  void WriteNext(uint64_t seq, double sample_unix) {
    Nudge(static_cast<int>(seq));
    DeltaInfo info;
    info.seq = seq;
    info.base = state_.snapshot_id;
    info.written_unix = NowUnix();
    info.newest_sample_unix = sample_unix;
    info.state = state_;
    info.state.delta_seq = seq;
    std::vector<std::vector<uint64_t>> keys(model_->num_tables(), keys_);
    auto w = WriteDelta(dir_, *model_, keys, DenseOptState{}, info);
    ASSERT_TRUE(w.ok()) << w.status().message();
  }

  // A new snapshot folding in every delta so far.
  void Snapshot(const std::string& id, uint64_t delta_seq) {
    state_.snapshot_id = id;
    state_.delta_seq = delta_seq;
    ASSERT_TRUE(SaveCheckpoint(dir_, *model_, DenseOptState{}, state_).ok());
  }

 private:
  std::string dir_;
  std::unique_ptr<Model> model_;
  TrainerState state_;
  std::vector<uint64_t> keys_;
};

// An infer body for the Criteo inputs: n rows of made-up values.
std::string InferBody(int n, int salt) {
  std::string body = "{\"inputs\":[";
  for (int i = 0; i < 13; ++i) {
    body += "{\"name\":\"I" + std::to_string(i + 1) + "\",\"datatype\":\"INT64\",\"shape\":[" + std::to_string(n) +
            "],\"data\":[";
    for (int r = 0; r < n; ++r) body += (r ? "," : "") + std::to_string((r * 3 + i + salt) % 17);
    body += "]},";
  }
  for (int i = 0; i < 26; ++i) {
    body += "{\"name\":\"C" + std::to_string(i + 1) + "\",\"datatype\":\"BYTES\",\"shape\":[" + std::to_string(n) +
            "],\"data\":[";
    for (int r = 0; r < n; ++r) {
      char hex[16];
      std::snprintf(hex, sizeof(hex), "%08x", static_cast<unsigned>((r * 131 + i * 7 + salt) % 50));
      body += std::string(r ? "," : "") + "\"" + hex + "\"";
    }
    body += std::string("]}") + (i < 25 ? "," : "");
  }
  return body + "]}";
}

Batch ParseBody(const std::string& body) {
  RowEncoder enc(DataSpec::Criteo());
  serve::InferRequest req;
  Batch b;
  EXPECT_EQ(serve::ParseInferRequest(body, enc, &req, &b), "");
  return b;
}

// What the server must answer for `body`: the directory loaded as predict
// loads it (snapshot plus deltas), scored as predict scores.
std::string Expected(const std::string& dir, const std::string& body, const std::string& version) {
  auto ck = LoadCheckpoint(dir);
  EXPECT_TRUE(ck.ok()) << ck.status().message();
  Model& m = *ck.value().model;
  m.FreezeForInference();
  Batch b = ParseBody(body);
  std::vector<float> z(b.size()), p(b.size());
  auto ws = m.NewWorkspace();
  EXPECT_TRUE(m.Forward(b, 0, b.size(), false, nullptr, ws.get(), z.data()).ok());
  for (size_t i = 0; i < z.size(); ++i) p[i] = m.Probability(z[i]);
  return serve::InferResponseJson("ctr", version, "", p.data(), p.size());
}

class Serving {
 public:
  Serving(const std::string& dir, Logger* log) {
    serve::ServerOptions o;
    o.model_dir = dir;
    o.name = "ctr";
    o.port = 0;
    o.poll_s = 0;  // the test calls Reload
    o.workers = 2;
    o.http_threads = 4;
    server_ = std::make_unique<serve::Server>(o, *log);
    thread_ = std::thread([this] { run_ = server_->Run(); });
    for (int i = 0; i < 3000 && server_->port() == 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ~Serving() {
    server_->Shutdown();
    thread_.join();
  }
  serve::Server& server() { return *server_; }
  int port() const { return server_->port(); }
  std::string Post(const std::string& body) {
    httplib::Client c("127.0.0.1", port());
    auto r = c.Post("/v2/models/ctr/infer", body, "application/json");
    if (!r) return "no answer";
    return r->status == 200 ? r->body : std::to_string(r->status) + " " + r->body;
  }
  std::string Metrics() {
    httplib::Client c("127.0.0.1", port());
    auto r = c.Get("/metrics");
    return r ? r->body : "";
  }

 private:
  std::unique_ptr<serve::Server> server_;
  std::thread thread_;
  Status run_;
};

double Metric(const std::string& text, const std::string& name) {
  std::smatch m;
  if (!std::regex_search(text, m, std::regex("\n" + name + " ([-0-9.e+]+)\n"))) return -1;
  return std::stod(m[1]);
}

// The largest file of a delta's folder (a table's rows).
std::string LargestFile(const std::string& dir) {
  std::string best;
  uintmax_t size = 0;
  for (const auto& e : sfs::directory_iterator(dir))
    if (e.is_regular_file() && e.file_size() > size) {
      size = e.file_size();
      best = e.path().string();
    }
  return best;
}

TEST(ServeDeltas, AppliesDeltasInPlaceAndRefusesABrokenOne) {
  const std::string dir = testing::TempDir() + "/online";
  const std::string body = InferBody(5, 0);
  OnlineDir online(dir);
  online.set_keys(UniqueKeys(ParseBody(body)));
  online.Snapshot("snap-1", 0);  // with the request's rows in it
  Logger log(LogLevel::kError);
  Serving s(dir, &log);
  ASSERT_NE(s.port(), 0);
  const std::string v0 = Expected(dir, body, "1");
  EXPECT_EQ(s.Post(body), v0);

  // Delta 1: applied in place (the version stays 1: no full reload).
  online.WriteNext(1, NowUnix() - 3);
  const std::string v1 = Expected(dir, body, "1");
  ASSERT_NE(v1, v0) << "the delta changes the answer";
  ASSERT_TRUE(s.server().Reload(false).ok());
  EXPECT_EQ(s.Post(body), v1) << "serve equals a load of snapshot + delta, bit for bit";
  std::string text = s.Metrics();
  EXPECT_EQ(Metric(text, "embark_delta_seq"), 1) << text;
  EXPECT_EQ(Metric(text, "embark_deltas_applied_total"), 1);
  EXPECT_EQ(Metric(text, "embark_deltas_failed_total"), 0);
  EXPECT_EQ(Metric(text, "embark_model_version"), 1) << "a delta is no reload";
  EXPECT_GE(Metric(text, "embark_delta_age_seconds"), 0);
  EXPECT_LT(Metric(text, "embark_delta_age_seconds"), 60);
  EXPECT_GE(Metric(text, "embark_delta_sample_age_seconds"), 3);
  EXPECT_GE(Metric(text, "embark_delta_apply_seconds"), 0);

  // Delta 2, corrupted after it was written: refused and counted; the
  // server answers as before.
  online.WriteNext(2, NowUnix());
  const std::string victim = LargestFile(DeltaDir(dir, 2));
  ASSERT_FALSE(victim.empty());
  {
    std::fstream f(victim, std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(static_cast<std::streamoff>(sfs::file_size(victim) / 2));
    char c = 0;
    f.get(c);
    f.seekp(static_cast<std::streamoff>(sfs::file_size(victim) / 2));
    f.put(static_cast<char>(c ^ 0x5a));
  }
  EXPECT_FALSE(s.server().Reload(false).ok());
  EXPECT_EQ(s.Post(body), v1) << "still serving snapshot + delta 1";
  // Delta 3 cannot apply without delta 2's rows: it waits for a snapshot,
  // and the broken delta is not tried again.
  online.WriteNext(3, NowUnix());
  EXPECT_TRUE(s.server().Reload(false).ok());
  EXPECT_EQ(s.Post(body), v1);
  text = s.Metrics();
  EXPECT_EQ(Metric(text, "embark_delta_seq"), 1) << text;
  EXPECT_EQ(Metric(text, "embark_deltas_failed_total"), 1) << text;
  EXPECT_EQ(Metric(text, "embark_deltas_applied_total"), 1);

  // A new snapshot folding in deltas 1 to 3 is loaded in full; the deltas
  // after it apply in place again.
  online.Snapshot("snap-2", 3);
  ASSERT_TRUE(s.server().Reload(false).ok());
  EXPECT_EQ(s.Post(body), Expected(dir, body, "2"));
  online.WriteNext(4, NowUnix());
  ASSERT_TRUE(s.server().Reload(false).ok());
  EXPECT_EQ(s.Post(body), Expected(dir, body, "2"));
  text = s.Metrics();
  EXPECT_EQ(Metric(text, "embark_delta_seq"), 4) << text;
  EXPECT_EQ(Metric(text, "embark_model_version"), 2);
  EXPECT_EQ(Metric(text, "embark_deltas_failed_total"), 1);
}

// A server started on a directory with deltas loads them with the snapshot
// and reports their freshness; it then applies the next in place.
TEST(ServeDeltas, LoadsTheDeltasPresentAtStart) {
  const std::string dir = testing::TempDir() + "/at-start";
  const std::string body = InferBody(3, 3);
  OnlineDir online(dir);
  online.set_keys(UniqueKeys(ParseBody(body)));
  online.Snapshot("snap-1", 0);
  online.WriteNext(1, NowUnix() - 5);
  online.WriteNext(2, NowUnix() - 4);
  Logger log(LogLevel::kError);
  Serving s(dir, &log);
  ASSERT_NE(s.port(), 0);
  EXPECT_EQ(s.Post(body), Expected(dir, body, "1"));
  std::string text = s.Metrics();
  EXPECT_EQ(Metric(text, "embark_delta_seq"), 2) << text;
  EXPECT_EQ(Metric(text, "embark_deltas_applied_total"), 2);
  EXPECT_GE(Metric(text, "embark_delta_sample_age_seconds"), 4);
  EXPECT_GE(Metric(text, "embark_delta_age_seconds"), 0);
  online.WriteNext(3, NowUnix());
  ASSERT_TRUE(s.server().Reload(false).ok());
  EXPECT_EQ(s.Post(body), Expected(dir, body, "1"));
  EXPECT_EQ(Metric(s.Metrics(), "embark_delta_seq"), 3);
}

// A delta of another snapshot is refused unless a new snapshot is there.
TEST(ServeDeltas, RefusesADeltaOfAnotherSnapshot) {
  const std::string dir = testing::TempDir() + "/other-base";
  const std::string body = InferBody(3, 1);
  OnlineDir online(dir);
  online.set_keys(UniqueKeys(ParseBody(body)));
  Logger log(LogLevel::kError);
  Serving s(dir, &log);
  ASSERT_NE(s.port(), 0);
  const std::string v0 = Expected(dir, body, "1");
  // A delta naming a snapshot this directory does not hold.
  DeltaInfo info;
  info.seq = 1;
  info.base = "snap-elsewhere";
  info.written_unix = NowUnix();
  info.state.delta_seq = 1;
  info.state.snapshot_id = "snap-elsewhere";
  online.Nudge(7);
  std::vector<std::vector<uint64_t>> keys(online.model()->num_tables(), UniqueKeys(ParseBody(body)));
  ASSERT_TRUE(WriteDelta(dir, *online.model(), keys, DenseOptState{}, info).ok());
  EXPECT_FALSE(s.server().Reload(false).ok());
  EXPECT_EQ(s.Post(body), v0);
  std::string text = s.Metrics();
  EXPECT_EQ(Metric(text, "embark_deltas_failed_total"), 1) << text;
  EXPECT_EQ(Metric(text, "embark_delta_seq"), 0);
  EXPECT_EQ(Metric(text, "embark_model_version"), 1);
}

// Requests answered while deltas are applied: none fails; an answer of one
// of the states the directory went through (snapshot, + delta 1, + deltas
// 1-2, ...) is never followed by one of an earlier state on a client; a
// request scored during an apply may see part of its rows (docs/serving.md),
// so other answers are allowed but few; after the last apply every answer is
// that of the last state. Run under TSan (scripts/test.sh --tsan).
TEST(ServeDeltas, AnswersWhileDeltasApply) {
  const std::string dir = testing::TempDir() + "/concurrent";
  const std::string body = InferBody(4, 2);
  OnlineDir online(dir);
  online.set_keys(UniqueKeys(ParseBody(body)));
  online.Snapshot("snap-1", 0);
  Logger log(LogLevel::kError);
  Serving s(dir, &log);
  ASSERT_NE(s.port(), 0);
  std::mutex mu;
  std::map<std::string, int> state_of;  // answer -> the state it belongs to
  state_of[Expected(dir, body, "1")] = 0;
  std::atomic<bool> stop{false};
  std::vector<std::string> errors;
  std::vector<std::thread> clients;
  int answered = 0, mixed = 0;  // guarded by mu
  for (int c = 0; c < 2; ++c)
    clients.emplace_back([&] {
      httplib::Client cl("127.0.0.1", s.port());
      int last = 0;
      while (!stop) {
        auto r = cl.Post("/v2/models/ctr/infer", body, "application/json");
        std::lock_guard<std::mutex> lock(mu);
        if (!r || r->status != 200) {
          errors.push_back(r ? r->body : "no answer");
          continue;
        }
        ++answered;
        auto it = state_of.find(r->body);
        if (it == state_of.end()) {
          ++mixed;  // scored during an apply
          continue;
        }
        if (it->second < last) errors.push_back("went back from state " + std::to_string(last));
        last = it->second;
      }
    });
  constexpr int kDeltas = 4;
  for (int k = 1; k <= kDeltas; ++k) {
    online.WriteNext(k, NowUnix());
    const std::string want = Expected(dir, body, "1");
    {
      std::lock_guard<std::mutex> lock(mu);
      state_of[want] = k;
    }
    ASSERT_TRUE(s.server().Reload(false).ok());
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  stop = true;
  for (auto& t : clients) t.join();
  EXPECT_TRUE(errors.empty()) << errors.size() << " errors, first: " << errors.front();
  EXPECT_GT(answered, kDeltas);
  EXPECT_LE(mixed, answered / 2) << answered;
  EXPECT_EQ(s.Post(body), Expected(dir, body, "1"));
  EXPECT_EQ(Metric(s.Metrics(), "embark_delta_seq"), kDeltas);
}

}  // namespace
}  // namespace embark
