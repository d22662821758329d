#include "checkpoint/checkpoint.h"

#include <gtest/gtest.h>

#include <sstream>

#include <filesystem>
#include <algorithm>
#include <fstream>
#include <tuple>

#include <nlohmann/json.hpp>

#include "checkpoint/table_file.h"
#include "data/pipeline.h"
#include "test_util.h"
#include "train/trainer.h"
#include "util/fs.h"
#include "util/hash.h"
#include "util/thread_pool.h"

namespace embark {
namespace {

namespace sfs = std::filesystem;

std::unique_ptr<Model> TrainedModel(const std::string& name) {
  InitBlas();
  TrainConfig cfg;
  cfg.model = name;
  cfg.embedding_dim = 4;
  cfg.bottom_mlp = {8};
  cfg.top_mlp = {8};
  cfg.mlp = {8};
  auto m = Model::Create(cfg, DataSpec::Criteo()).value();
  // Touch some rows and nudge them so the state is not the initial one.
  Batch b;
  b.Reset(13, 26);
  for (int i = 0; i < 4; ++i) {
    b.labels.push_back(i % 2);
    for (int d = 0; d < 13; ++d) b.dense.push_back(0.1f * d);
    for (int f = 0; f < 26; ++f) {
      b.keys.push_back(f * 100 + i);
      b.values.push_back(1);
      b.offsets.push_back(static_cast<uint32_t>(b.keys.size()));
    }
  }
  auto ws = m->NewWorkspace();
  std::vector<float> z(4), dl(4, 0.25f), g(m->params().size());
  EXPECT_TRUE(m->Forward(b, 0, 4, true, m->rows(), ws.get(), z.data()).ok());
  m->Backward(b, 0, 4, dl.data(), ws.get(), g.data());
  EXPECT_TRUE(m->ApplySparse(ws.get(), 1.0f, m->rows()).ok());
  return m;
}

std::vector<float> Predict(const Model& m) {
  Batch b;
  b.Reset(13, 26);
  b.labels.push_back(1);
  for (int d = 0; d < 13; ++d) b.dense.push_back(0.2f * d);
  for (int f = 0; f < 26; ++f) {
    b.keys.push_back(f * 100 + 1);
    b.values.push_back(1);
    b.offsets.push_back(static_cast<uint32_t>(b.keys.size()));
  }
  auto ws = m.NewWorkspace();
  std::vector<float> z(1);
  EXPECT_TRUE(m.Forward(b, 0, 1, false, nullptr, ws.get(), z.data()).ok());
  return z;
}

// Every row of a store, sorted by key: keys, rows and metadata.
struct Rows {
  std::vector<uint64_t> keys;
  std::vector<float> rows;
  std::vector<uint64_t> meta;  // last_step << 32 | count
  bool operator==(const Rows& o) const { return keys == o.keys && rows == o.rows && meta == o.meta; }
};
Rows AllRows(const RowStore& t) {
  std::vector<std::tuple<uint64_t, std::vector<float>, uint64_t>> all;
  auto it = t.NewIterator(7);
  RowBatch b;
  const size_t w = t.row_width();
  while (it->Next(&b).value())
    for (size_t i = 0; i < b.size(); ++i)
      all.emplace_back(b.keys[i], std::vector<float>(b.rows.begin() + i * w, b.rows.begin() + (i + 1) * w),
                       uint64_t{b.meta[i].last_step} << 32 | b.meta[i].count);
  std::sort(all.begin(), all.end());
  Rows r;
  for (auto& [k, row, meta] : all) {
    r.keys.push_back(k);
    r.rows.insert(r.rows.end(), row.begin(), row.end());
    r.meta.push_back(meta);
  }
  return r;
}

DenseOptState SomeOptState(const Model& m) {
  DenseOptState s;
  s.step = 17;
  s.slots.assign(2, std::vector<float>(m.params().size(), 0.5f));
  return s;
}

TEST(Checkpoint, RoundTripKeepsPredictionsAndState) {
  for (const char* name : {"lr", "fm", "deepfm", "wdl", "dcnv2", "dlrm"}) {
    auto m = TrainedModel(name);
    std::string dir = testing::TempDir() + "/ck_" + name;
    TrainerState ts{2, 100, 5000, 0.75};
    ASSERT_TRUE(SaveCheckpoint(dir, *m, SomeOptState(*m), ts).ok());
    auto loaded = LoadCheckpoint(dir);
    ASSERT_TRUE(loaded.ok()) << loaded.status().message();
    EXPECT_EQ(Predict(*loaded->model), Predict(*m)) << name;
    EXPECT_EQ(loaded->state.epochs_done, 2);
    EXPECT_EQ(loaded->state.step, 100);
    EXPECT_EQ(loaded->opt.step, 17);
    EXPECT_EQ(loaded->opt.slots.size(), 2u);
    ASSERT_EQ(loaded->model->num_tables(), m->num_tables());
    for (int t = 0; t < m->num_tables(); ++t) {
      EXPECT_EQ(loaded->model->table(t)->stats().rows, m->table(t)->stats().rows) << name;
      EXPECT_EQ(loaded->model->table(t)->config().name, m->table(t)->config().name);
      Rows want = AllRows(*m->table(t)), got = AllRows(*loaded->model->table(t));
      EXPECT_TRUE(got == want) << name << " " << m->table(t)->config().name;
      EXPECT_GT(want.keys.size(), 0u);
    }
    const auto& want = m->params();
    const auto& got = loaded->model->params();
    ASSERT_EQ(got.size(), want.size()) << name;
    EXPECT_EQ(std::vector<float>(got.data(), got.data() + got.size()),
              std::vector<float>(want.data(), want.data() + want.size()))
        << name;
  }
}

TEST(Checkpoint, OverwriteIsAtomicAndLeavesNoStaging) {
  auto m = TrainedModel("dlrm");
  std::string dir = testing::TempDir() + "/ck_over";
  ASSERT_TRUE(SaveCheckpoint(dir, *m, {}, {1, 1, 1, 0}).ok());
  ASSERT_TRUE(SaveCheckpoint(dir, *m, {}, {2, 2, 2, 0}).ok());
  EXPECT_EQ(LoadCheckpoint(dir)->state.epochs_done, 2);
  for (const auto& e : sfs::directory_iterator(testing::TempDir()))
    EXPECT_EQ(e.path().filename().string().find("ck_over.tmp"), std::string::npos) << e.path();
}

std::string Saved(const std::string& name) {
  auto m = TrainedModel("deepfm");
  std::string dir = testing::TempDir() + "/" + name;
  EXPECT_TRUE(SaveCheckpoint(dir, *m, {}, {}).ok());
  return dir;
}

void ExpectRefused(const std::string& dir, const std::string& needle) {
  auto r = LoadCheckpoint(dir);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find(needle), std::string::npos) << r.status().message();
}

TEST(Checkpoint, CorruptedByteIsRefused) {
  std::string dir = Saved("ck_flip");
  std::fstream f(dir + "/embeddings.bin", std::ios::in | std::ios::out | std::ios::binary);
  f.seekp(100);
  f.put('\x7f');
  f.close();
  ExpectRefused(dir, "embeddings.bin: checksum mismatch");
}

TEST(Checkpoint, TruncatedFileIsRefused) {
  std::string dir = Saved("ck_trunc");
  sfs::resize_file(dir + "/dense.bin", 20);
  ExpectRefused(dir, "dense.bin: size 20 bytes");
  ExpectRefused(dir, "(truncated?)");
  std::string grown = Saved("ck_grown");
  std::ofstream(grown + "/config.toml", std::ios::app) << "seed = 2\n";
  ExpectRefused(grown, "config.toml: size ");
  ExpectRefused(grown, "(appended to?)");
  std::string lacks = Saved("ck_lacks");
  sfs::remove(lacks + "/embeddings.bin");
  ExpectRefused(lacks, "checkpoint lacks embeddings.bin, which its MANIFEST.json lists");
}

TEST(Checkpoint, MissingOrForeignManifestIsRefused) {
  std::string dir = Saved("ck_manifest");
  sfs::remove(dir + "/MANIFEST.json");
  ExpectRefused(dir, "not a checkpoint");
  std::string dir2 = Saved("ck_version");
  auto text = fs::ReadFile(dir2 + "/MANIFEST.json").value();
  const std::string v = "\"version\": " + std::to_string(kCheckpointVersion);
  ASSERT_NE(text.find(v), std::string::npos) << text;
  text.replace(text.find(v), v.size(), "\"version\": 99");
  ASSERT_TRUE(fs::WriteFileAtomic(dir2 + "/MANIFEST.json", text).ok());
  ExpectRefused(dir2, "format version 99 is not supported");
  std::string dir3 = Saved("ck_garbage");
  ASSERT_TRUE(fs::WriteFileAtomic(dir3 + "/MANIFEST.json", "\x01\x02garbage").ok());
  ExpectRefused(dir3, "MANIFEST.json: unreadable");
  // A file size that is not an integer is refused, not converted.
  std::string dir4 = Saved("ck_float_size");
  auto m = nlohmann::json::parse(fs::ReadFile(dir4 + "/MANIFEST.json").value());
  m["files"]["dense.bin"]["bytes"] = 1e300;
  ASSERT_TRUE(fs::WriteFileAtomic(dir4 + "/MANIFEST.json", m.dump(2)).ok());
  ExpectRefused(dir4, "'bytes' must be an integer");
}

// The manifest is not checksummed: its numbers are read exactly, never
// truncated (2.5 as 2), wrapped (-1 as 2^64-1) or converted from a float
// out of range (undefined).
TEST(Checkpoint, ManifestNumbersAreExactIntegers) {
  auto edited = [](const std::string& name, const std::string& from, const std::string& to) {
    std::string dir = Saved(name);
    auto text = fs::ReadFile(dir + "/MANIFEST.json").value();
    EXPECT_NE(text.find(from), std::string::npos) << text;
    text.replace(text.find(from), from.size(), to);
    EXPECT_TRUE(fs::WriteFileAtomic(dir + "/MANIFEST.json", text).ok());
    return dir;
  };
  const std::string v = "\"version\": " + std::to_string(kCheckpointVersion);
  ExpectRefused(edited("ck_v_float", v, "\"version\": 2.5"), "'version' must be an integer");
  ExpectRefused(edited("ck_v_string", v, "\"version\": \"2\""), "'version' must be an integer");
  ExpectRefused(edited("ck_v_wide", v, "\"version\": 4294967298"), "'version' must be an integer in [");
  ExpectRefused(edited("ck_shards", v, v + ", \"shards\": 0"), "'shards' must be an integer in [1, 1048576], not 0");
  const std::string dense = "\"dense.bin\": {\n      \"bytes\": ";
  ExpectRefused(edited("ck_bytes_neg", dense, dense + "-"), "'bytes' must be an integer in [0,");
  ExpectRefused(edited("ck_bytes_huge", dense, dense + "1000000000000000000000"), "'bytes' must be an integer");
  ExpectRefused(edited("ck_bytes_float", dense, dense + "0."), "'bytes' must be an integer");
}

// Rewrites `name` in checkpoint `dir` and its manifest entry, so that the
// checkpoint stays consistent (sizes and checksums match) but says something else.
void RewriteConsistently(const std::string& dir, const std::string& name, const std::string& text) {
  ASSERT_TRUE(fs::WriteFileAtomic(dir + "/" + name, text).ok());
  auto manifest = nlohmann::json::parse(fs::ReadFile(dir + "/MANIFEST.json").value());
  char hex[20];
  std::snprintf(hex, sizeof(hex), "%016llx", static_cast<unsigned long long>(Checksum(text.data(), text.size())));
  manifest["files"][name] = {{"bytes", text.size()}, {"xxh64", hex}};
  ASSERT_TRUE(fs::WriteFileAtomic(dir + "/MANIFEST.json", manifest.dump(2)).ok());
}

// A model's Platt scaling travels with it: saved exactly, applied by every
// scorer after the load; a model without one saves no calibration file, and
// a calibration file that is not a valid scaling is refused by name.
TEST(Checkpoint, CalibrationTravelsWithTheModel) {
  auto m = TrainedModel("deepfm");
  const std::string plain = testing::TempDir() + "/ck_plain";
  ASSERT_TRUE(SaveCheckpoint(plain, *m, SomeOptState(*m), TrainerState{}).ok());
  EXPECT_FALSE(std::filesystem::exists(plain + "/calibration.json"));
  PlattScaling c;
  c.a = 0.8123456789012345;
  c.b = -0.3141592653589793;
  c.samples = 1000;
  m->set_calibration(c);
  const std::string dir = testing::TempDir() + "/ck_calibrated";
  ASSERT_TRUE(SaveCheckpoint(dir, *m, SomeOptState(*m), TrainerState{}).ok());
  ASSERT_TRUE(std::filesystem::exists(dir + "/calibration.json"));
  auto loaded = LoadCheckpoint(dir);
  ASSERT_TRUE(loaded.ok()) << loaded.status().message();
  EXPECT_EQ(loaded->model->calibration().a, c.a);
  EXPECT_EQ(loaded->model->calibration().b, c.b);
  EXPECT_EQ(loaded->model->calibration().samples, 1000u);
  const float z = Predict(*loaded->model)[0];
  EXPECT_EQ(loaded->model->Probability(z), Sigmoid(static_cast<float>(c.a * z + c.b)));
  EXPECT_NE(loaded->model->Probability(z), Sigmoid(z));
  auto uncalibrated = LoadCheckpoint(plain);
  ASSERT_TRUE(uncalibrated.ok());
  EXPECT_EQ(uncalibrated->model->Probability(z), Sigmoid(z));
  // A negative scale, written with a matching manifest entry, is refused.
  std::string text = fs::ReadFile(dir + "/calibration.json").value();
  const std::string from = "\"a\": 0.8123456789012345";
  ASSERT_NE(text.find(from), std::string::npos) << text;
  text.replace(text.find(from), from.size(), "\"a\": -0.8123456789012345");
  RewriteConsistently(dir, "calibration.json", text);
  auto bad = LoadCheckpoint(dir);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("calibration.json"), std::string::npos) << bad.status().message();
}

// The run's history travels with the model as history.json: saved only
// when there is one, read back record for record, refused when changed
// behind the manifest's back or malformed; a directory holding it may be
// replaced by the next save.
TEST(Checkpoint, HistoryTravelsWithTheModel) {
  auto m = TrainedModel("deepfm");
  const std::string plain = testing::TempDir() + "/ck_no_history";
  ASSERT_TRUE(SaveCheckpoint(plain, *m, SomeOptState(*m), TrainerState{}).ok());
  EXPECT_FALSE(std::filesystem::exists(plain + "/history.json"));
  EXPECT_TRUE(LoadCheckpoint(plain)->state.history.empty());

  TrainerState ts;
  ts.epochs_done = 1;
  ts.step = 40;
  ts.samples = 4000;
  ts.history = {R"({"epoch":1,"step":20,"train_loss":0.5})", R"({"epoch":1,"step":40,"valid":{"auc":0.7}})"};
  ts.reliability = R"({"buckets":[{"count":3,"ctr":0.5,"mean_pred":0.25}],"step":40})";
  const std::string dir = testing::TempDir() + "/ck_history";
  ASSERT_TRUE(SaveCheckpoint(dir, *m, SomeOptState(*m), ts).ok());
  ASSERT_TRUE(std::filesystem::exists(dir + "/history.json"));
  auto h = nlohmann::json::parse(fs::ReadFile(dir + "/history.json").value());
  EXPECT_EQ(h.at("version"), 1);
  EXPECT_EQ(h.at("model"), "deepfm");
  ASSERT_EQ(h.at("records").size(), 2u);
  EXPECT_EQ(h.at("records")[1].at("valid").at("auc"), 0.7);
  auto loaded = LoadCheckpoint(dir);
  ASSERT_TRUE(loaded.ok()) << loaded.status().message();
  EXPECT_EQ(loaded->state.history, ts.history);
  EXPECT_EQ(loaded->state.reliability, ts.reliability);
  EXPECT_EQ(loaded->state.step, 40);

  // Saved again over itself: history.json is a checkpoint file, not a stranger.
  EXPECT_TRUE(fs::CheckReplaceable(dir).ok()) << fs::CheckReplaceable(dir).message();
  ts.history.push_back(R"({"epoch":2,"step":60})");
  ASSERT_TRUE(SaveCheckpoint(dir, *m, SomeOptState(*m), ts).ok());
  EXPECT_EQ(LoadCheckpoint(dir)->state.history.size(), 3u);

  // A changed byte is refused by the manifest's checksum.
  std::string text = fs::ReadFile(dir + "/history.json").value();
  const size_t at = text.find("\"step\":20");
  ASSERT_NE(at, std::string::npos) << text;
  std::string changed = text;
  changed[at + 7] = '9';
  ASSERT_TRUE(fs::WriteFileAtomic(dir + "/history.json", changed).ok());
  ExpectRefused(dir, "history.json");
  // Consistent with the manifest but not a history: refused by name.
  RewriteConsistently(dir, "history.json", R"({"version": 1, "records": {"step": 1}})");
  ExpectRefused(dir, "history.json: unreadable");
  RewriteConsistently(dir, "history.json", R"({"version": 2, "records": []})");
  ExpectRefused(dir, "history.json: unreadable");
  RewriteConsistently(dir, "history.json", text);
  EXPECT_TRUE(LoadCheckpoint(dir).ok());
}

TEST(Checkpoint, ConsistentButWrongShapeIsRefused) {
  // A manifest that matches its files but a table of another width: the
  // config asks for Adagrad rows (width 8) where the file holds Adam rows
  // (width 13); the dense part is the same, so only the table check can refuse it.
  auto a = TrainedModel("deepfm");
  std::string dir = testing::TempDir() + "/ck_shape";
  ASSERT_TRUE(SaveCheckpoint(dir, *a, {}, {}).ok());
  auto text = fs::ReadFile(dir + "/config.toml").value();
  const std::string from = "sparse_optimizer = \"adam\"";
  ASSERT_NE(text.find(from), std::string::npos) << text;
  text.replace(text.find(from), from.size(), "sparse_optimizer = \"adagrad\"");
  RewriteConsistently(dir, "config.toml", text);
  ExpectRefused(dir, "embeddings.bin: row shape 4/13 does not match the model's 4/8");
  // Edited without the manifest, the same change is caught by the checksum.
  std::string dir2 = testing::TempDir() + "/ck_shape2";
  ASSERT_TRUE(SaveCheckpoint(dir2, *a, {}, {}).ok());
  ASSERT_TRUE(fs::WriteFileAtomic(dir2 + "/config.toml", text).ok());
  ExpectRefused(dir2, "config.toml: size");
}

// A version 2 table file in blocks of 3 rows: read back block by block; a
// corrupted block is refused before any of its rows are handed out.
TEST(TableFile, BlocksRoundTripAndACorruptBlockIsRefused) {
  const std::string path = testing::TempDir() + "/t.bin";
  const int dim = 2, width = 3;
  std::vector<uint64_t> keys;
  std::vector<float> rows;
  std::vector<RowMeta> meta;
  for (uint64_t k = 0; k < 10; ++k) {
    keys.push_back(1000 + k);
    for (int j = 0; j < width; ++j) rows.push_back(static_cast<float>(k) + 0.25f * j);
    meta.push_back({static_cast<uint32_t>(k), static_cast<uint32_t>(2 * k)});
  }
  auto w = TableFileWriter::Create(Env::Posix(), path, dim, width, 3);
  ASSERT_TRUE(w.ok()) << w.status().message();
  ASSERT_TRUE(w.value()->Add(keys.data(), 4, rows.data(), meta.data()).ok());  // blocks of 3 and 1
  ASSERT_TRUE(w.value()->Add(keys.data() + 4, 6, rows.data() + 4 * width, meta.data() + 4).ok());
  ASSERT_TRUE(w.value()->Finish().ok());
  EXPECT_EQ(w.value()->bytes(), sfs::file_size(path));
  const std::string bytes = fs::ReadFile(path).value();
  EXPECT_EQ(w.value()->checksum(), Checksum(bytes.data(), bytes.size()));

  auto r = TableFileReader::Open(Env::Posix(), path, dim, width);
  ASSERT_TRUE(r.ok()) << r.status().message();
  RowBatch b;
  std::vector<size_t> sizes;
  std::vector<uint64_t> got_keys;
  std::vector<float> got_rows;
  for (;;) {
    auto more = r.value()->Next(&b);
    ASSERT_TRUE(more.ok()) << more.status().message();
    if (!more.value()) break;
    sizes.push_back(b.size());
    got_keys.insert(got_keys.end(), b.keys.begin(), b.keys.end());
    got_rows.insert(got_rows.end(), b.rows.begin(), b.rows.end());
    for (size_t i = 0; i < b.size(); ++i) EXPECT_EQ(b.meta[i].count, 2 * (b.keys[i] - 1000));
  }
  EXPECT_EQ(sizes, (std::vector<size_t>{3, 1, 3, 3}));
  EXPECT_EQ(got_keys, keys);
  EXPECT_EQ(got_rows, rows);
  EXPECT_EQ(r.value()->checksum(), Checksum(bytes.data(), bytes.size()));

  // Flip a byte in the second block's rows: the first block still reads,
  // the second is refused whole.
  const size_t second = 32 + (16 + 3 * (8 + 4 * width + 8) + 8) + 16 + 8 + 2;
  std::string bad = bytes;
  bad[second] ^= 0x40;
  ASSERT_TRUE(fs::WriteFileAtomic(path, bad).ok());
  r = TableFileReader::Open(Env::Posix(), path, dim, width);
  ASSERT_TRUE(r.ok());
  ASSERT_TRUE(r.value()->Next(&b).value());
  EXPECT_EQ(b.size(), 3u);
  auto more = r.value()->Next(&b);
  ASSERT_FALSE(more.ok());
  EXPECT_NE(more.status().message().find(path + ": checksum mismatch in the block at byte"), std::string::npos)
      << more.status().message();
  EXPECT_EQ(b.size(), 0u);
  // Truncated mid-block, and a file of another shape.
  ASSERT_TRUE(fs::WriteFileAtomic(path, bytes.substr(0, bytes.size() - 30)).ok());
  r = TableFileReader::Open(Env::Posix(), path, dim, width);
  Status st;
  for (;;) {
    auto m = r.value()->Next(&b);
    if (!m.ok()) st = m.status();
    if (!m.ok() || !m.value()) break;
  }
  EXPECT_NE(st.message().find("truncated"), std::string::npos) << st.message();
  auto other = TableFileReader::Open(Env::Posix(), path, dim, width + 1);
  ASSERT_FALSE(other.ok());
  EXPECT_NE(other.status().message().find("row shape 2/3 does not match the model's 2/4"), std::string::npos)
      << other.status().message();
}

// Checkpoints written by the first format version (tests/fixtures/checkpoint_v1)
// load and score the probabilities `embark predict` printed when they were made.
std::string ScoreLikePredict(const Model& m, const std::string& data) {
  ThreadPool pool(1);
  ReadOptions ro;
  StreamOptions so;
  so.batch_size = 4096;
  auto stream = OpenStream({data}, m.spec(), ro, so);
  std::string out;
  Status st = Score(m, stream.get(), &pool, [&](const float* p, const float*, size_t n) {
    char buf[32];
    for (size_t i = 0; i < n; ++i) {
      std::snprintf(buf, sizeof(buf), "%.9g\n", p[i]);
      out += buf;
    }
  });
  EXPECT_TRUE(st.ok()) << st.message();
  return out;
}

// Loads fixture `dir`/`name` and scores `dir`/score.tsv as predict does: the
// probabilities `dir`/`name`.pred holds, to float rounding. The weights load
// exactly (the round-trip tests compare every bit), but a build for another
// instruction set (the sanitizer builds have no FMA) rounds the dense layers'
// sums differently in the last bit.
void ExpectFixtureScores(const std::string& dir, const std::string& name) {
  auto ck = LoadCheckpoint(dir + "/" + name);
  ASSERT_TRUE(ck.ok()) << name << ": " << ck.status().message();
  ck->model->FreezeForInference();
  const std::string want = fs::ReadFile(dir + "/" + name + ".pred").value();
  const std::string got = ScoreLikePredict(*ck->model, dir + "/score.tsv");
  std::istringstream g(got), w(want);
  double a = 0, b = 0;
  size_t n = 0;
  while (w >> b) {
    ASSERT_TRUE(static_cast<bool>(g >> a)) << name << ": fewer scores than expected";
    EXPECT_NEAR(a, b, 1e-6) << name << " line " << n + 1;
    ++n;
  }
  EXPECT_FALSE(static_cast<bool>(g >> a)) << name << ": more scores than expected";
  EXPECT_EQ(n, 20u) << name;
}

TEST(CheckpointV1, LoadsAndScoresTheSame) {
  InitBlas();
  const std::string fx = std::string(EMBARK_SOURCE_DIR) + "/tests/fixtures/checkpoint_v1";
  for (const char* name : {"deepfm", "lr"}) ExpectFixtureScores(fx, name);
}

// Version 2 checkpoints written before the first-order table was renamed
// (tests/fixtures/checkpoint_v2).
TEST(CheckpointV2, LoadsAndScoresTheSame) {
  InitBlas();
  const std::string fx = std::string(EMBARK_SOURCE_DIR) + "/tests/fixtures/checkpoint_v2";
  for (const char* name : {"lr", "fm"}) ExpectFixtureScores(fx, name);
}

// Their table "wide" (wide.bin) loads as "first_order" and their config's
// wide_optimizer / wide_lr as first_order_optimizer / first_order_lr; saved
// again, the checkpoint has the new names and scores the same.
TEST(CheckpointV2, FormerFirstOrderNamesLoadAsTheNewOnes) {
  InitBlas();
  struct Case {
    const char* dir;
    const char* name;
    const char* optimizer;
    float lr;
  };
  const std::string v1 = std::string(EMBARK_SOURCE_DIR) + "/tests/fixtures/checkpoint_v1";
  const std::string v2 = std::string(EMBARK_SOURCE_DIR) + "/tests/fixtures/checkpoint_v2";
  for (const Case& c : {Case{v1.c_str(), "lr", "ftrl", 0.003f}, Case{v1.c_str(), "deepfm", "adam", 0.003f},
                        Case{v2.c_str(), "lr", "ftrl", 0.05f}, Case{v2.c_str(), "fm", "adagrad", 0.02f}}) {
    SCOPED_TRACE(std::string(c.dir) + "/" + c.name);
    ASSERT_TRUE(std::filesystem::exists(std::string(c.dir) + "/" + c.name + "/wide.bin"));
    auto ck = LoadCheckpoint(std::string(c.dir) + "/" + c.name);
    ASSERT_TRUE(ck.ok()) << ck.status().message();
    const Model& m = *ck->model;
    EXPECT_EQ(m.table_index("wide"), -1);
    const int t = m.table_index("first_order");
    ASSERT_GE(t, 0);
    EXPECT_GT(m.table(t)->stats().rows, 0u);
    EXPECT_EQ(m.config().first_order_optimizer, c.optimizer);
    EXPECT_FLOAT_EQ(m.config().first_order_lr, c.lr);
    EXPECT_EQ(SparseOptName(m.table(t)->config().opt.kind), std::string(c.optimizer));
    EXPECT_FLOAT_EQ(m.table(t)->config().opt.lr, c.lr);

    const std::string dir = testing::TempDir() + "/resaved_" + std::filesystem::path(c.dir).filename().string() +
                            "_" + c.name;
    ASSERT_TRUE(SaveCheckpoint(dir, m, ck->opt, ck->state).ok());
    EXPECT_TRUE(std::filesystem::exists(dir + "/first_order.bin"));
    EXPECT_FALSE(std::filesystem::exists(dir + "/wide.bin"));
    const std::string toml = fs::ReadFile(dir + "/config.toml").value();
    EXPECT_EQ(toml.find("wide"), std::string::npos) << toml;
    auto again = LoadCheckpoint(dir);
    ASSERT_TRUE(again.ok()) << again.status().message();
    EXPECT_TRUE(AllRows(*again->model->table(t)) == AllRows(*m.table(t)));
    ck->model->FreezeForInference();
    again->model->FreezeForInference();
    EXPECT_EQ(ScoreLikePredict(*again->model, std::string(c.dir) + "/score.tsv"),
              ScoreLikePredict(*ck->model, std::string(c.dir) + "/score.tsv"));
  }
}

}  // namespace
}  // namespace embark
