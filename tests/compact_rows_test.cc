// Compact embedding rows end to end: training with fp16 rows learns what
// fp32 rows learn, and an int8 serving copy (ExportCheckpoint) scores what
// its checkpoint scores, loads with int8 rows and refuses to be trained.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "checkpoint/checkpoint.h"
#include "embark/embark.h"
#include "gen/gen.h"
#include "test_util.h"
#include "util/fs.h"

namespace embark {
namespace {

namespace sfs = std::filesystem;

struct Data {
  std::string dir, train, valid;
};

// Small planted data (embark gen): a few thousand rows over a small
// vocabulary, so a short run learns most of what can be learned.
const Data& SmallData() {
  static const Data d = [] {
    Data d;
    d.dir = testing::TempDir();
    GenOptions g;
    g.rows = 12000;
    g.valid_rows = 3000;
    g.max_vocab = 300;
    g.seed = 2;
    g.out = d.train = d.dir + "/train.tsv";
    g.valid_out = d.valid = d.dir + "/valid.tsv";
    EXPECT_TRUE(Generate(g).ok());
    return d;
  }();
  return d;
}

TrainOptions Options(const std::string& model, const std::string& precision, const std::string& out) {
  TrainOptions o;
  o.train_files = {SmallData().train};
  o.out_dir = out;
  for (auto [k, v] : std::vector<std::pair<std::string, std::string>>{{"model", model},
                                                                      {"embedding_dim", "8"},
                                                                      {"threads", "1"},
                                                                      {"epochs", "2"},
                                                                      {"seed", "3"},
                                                                      {"row_precision", precision}})
    EXPECT_TRUE(o.Set(k, v).ok()) << k;
  return o;
}

struct Trained {
  double auc = 0;
  size_t embedding_bytes = 0;
};

Trained Train(const std::string& model, const std::string& precision, const std::string& out) {
  auto t = Trainer::Open(Options(model, precision, out));
  EXPECT_TRUE(t.ok()) << t.status().message();
  if (!t.ok()) return {};
  auto rep = (*t)->Fit();
  EXPECT_TRUE(rep.ok()) << rep.status().message();
  auto p = Predictor::Open(out, {1});
  EXPECT_TRUE(p.ok()) << p.status().message();
  auto m = (*p)->Evaluate({SmallData().valid});
  EXPECT_TRUE(m.ok());
  return {m->auc, rep->embedding_bytes};
}

TEST(CompactRows, Fp16TrainingAucIsCloseToFp32) {
  for (const char* model : {"dlrm", "deepfm"}) {
    SCOPED_TRACE(model);
    const std::string dir = testing::TempDir();
    const Trained f32 = Train(model, "fp32", dir + "/fp32"), f16 = Train(model, "fp16", dir + "/fp16");
    EXPECT_GT(f32.auc, 0.6);  // it learned something (optimal: 0.92; 0.8 after 20000 rows)
    EXPECT_NEAR(f16.auc, f32.auc, 0.01);
    EXPECT_LT(f16.embedding_bytes, f32.embedding_bytes);
  }
}

// --resume may change the rows' precision: the loaded rows move into fp16
// stores, and the new checkpoint says so.
TEST(CompactRows, ResumeChangesFp32RowsToFp16) {
  const std::string dir = testing::TempDir();
  const Trained f32 = Train("dlrm", "fp32", dir + "/fp32");
  TrainOptions r = Options("dlrm", "fp16", dir + "/fp16");
  r.resume_from = dir + "/fp32";
  ASSERT_TRUE(r.Set("epochs", "3").ok());
  auto t = Trainer::Open(r);
  ASSERT_TRUE(t.ok()) << t.status().message();
  auto rep = (*t)->Fit();
  ASSERT_TRUE(rep.ok()) << rep.status().message();
  EXPECT_EQ(rep->epochs_done, 3);
  EXPECT_LT(rep->embedding_bytes, f32.embedding_bytes);
  auto v = VerifyCheckpoint(dir + "/fp16");
  ASSERT_TRUE(v.ok()) << v.status().message();
  for (const auto& table : v->tables) EXPECT_EQ(table.precision, "fp16") << table.name;
}

TEST(CompactRows, Int8ExportScoresLikeItsCheckpointAndServesOnly) {
  const std::string dir = testing::TempDir();
  const Trained f32 = Train("deepfm", "fp32", dir + "/fp32");
  const std::string out = dir + "/int8";
  ASSERT_TRUE(ExportCheckpoint(dir + "/fp32", out).ok());
  // Version 3: a build that knows no int8 tables refuses it by its number.
  const std::string manifest = fs::ReadFile(out + "/MANIFEST.json").value();
  EXPECT_NE(manifest.find("\"version\": 3"), std::string::npos) << manifest;
  EXPECT_LT(sfs::file_size(out + "/embeddings.bin"), sfs::file_size(dir + "/fp32/embeddings.bin") / 3);

  // In RAM too: the int8 table is a fraction of the fp32 one.
  auto v32 = VerifyCheckpoint(dir + "/fp32"), v8 = VerifyCheckpoint(out);
  ASSERT_TRUE(v32.ok() && v8.ok());
  ASSERT_EQ(v8->tables.size(), v32->tables.size());
  for (size_t i = 0; i < v8->tables.size(); ++i) {
    const TableInfo &a = v32->tables[i], &b = v8->tables[i];
    SCOPED_TRACE(a.name);
    EXPECT_EQ(b.name, a.name);
    EXPECT_EQ(a.precision, "fp32");
    EXPECT_EQ(b.precision, "int8");
    EXPECT_EQ(b.rows, a.rows);
    // dim 8 with Adam: 8 + 17 floats (100 bytes) against 16 bytes; first_order, dim 1: 16 against 12.
    if (a.dim > 1) EXPECT_LT(b.memory_bytes, a.memory_bytes / 2) << b.memory_bytes << " vs " << a.memory_bytes;
  }

  auto p = Predictor::Open(out, {1});
  ASSERT_TRUE(p.ok()) << p.status().message();
  auto m = (*p)->Evaluate({SmallData().valid});
  ASSERT_TRUE(m.ok());
  EXPECT_NEAR(m->auc, f32.auc, 0.003);

  // The loaded tables keep int8 rows and refuse training.
  auto ck = LoadCheckpoint(out);
  ASSERT_TRUE(ck.ok()) << ck.status().message();
  RowStore* t = ck->model->table(0);
  EXPECT_EQ(t->config().precision, RowPrecision::kInt8);
  uint64_t key = 1;
  std::vector<float> g(t->dim(), 0.1f);
  EXPECT_FALSE(t->Update(&key, 1, g.data()).ok());

  // Training cannot resume from it, and says why.
  TrainOptions r = Options("deepfm", "fp32", dir + "/resumed");
  r.resume_from = out;
  auto resumed = Trainer::Open(r);
  ASSERT_FALSE(resumed.ok());
  EXPECT_NE(resumed.status().message().find("int8 serving copy"), std::string::npos) << resumed.status().message();
  // Nor does training start with int8 rows.
  auto fresh = Trainer::Open(Options("deepfm", "int8", dir + "/fresh"));
  if (fresh.ok()) {
    auto rep = (*fresh)->Fit();
    EXPECT_FALSE(rep.ok());
  }
  // Nor is an export re-exported.
  EXPECT_FALSE(ExportCheckpoint(out, dir + "/again").ok());

  // Its table blocks are checksummed like any: a flipped byte is refused.
  {
    std::fstream f(out + "/embeddings.bin", std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(100);
    f.put('\x7f');
  }
  auto bad = Predictor::Open(out, {1});
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("embeddings.bin: checksum mismatch"), std::string::npos)
      << bad.status().message();
}

TEST(CompactRows, ExportWritesOnlyIntoANewOrEmptyDirectory) {
  const std::string dir = testing::TempDir();
  Train("dlrm", "fp32", dir + "/fp32");
  const std::string busy = dir + "/busy";
  sfs::create_directories(busy);
  std::ofstream(busy + "/notes.txt") << "mine";
  Status s = ExportCheckpoint(dir + "/fp32", busy);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("not empty"), std::string::npos) << s.message();
  EXPECT_EQ(std::distance(sfs::directory_iterator(busy), sfs::directory_iterator()), 1);
  // A failed export (no such checkpoint) leaves nothing behind.
  EXPECT_FALSE(ExportCheckpoint(dir + "/nothing", dir + "/out1").ok());
  EXPECT_FALSE(sfs::exists(dir + "/out1"));
  // An empty directory is fine.
  sfs::create_directories(dir + "/empty");
  EXPECT_TRUE(ExportCheckpoint(dir + "/fp32", dir + "/empty").ok());
  EXPECT_TRUE(Predictor::Open(dir + "/empty", {1}).ok());
}

}  // namespace
}  // namespace embark
