#include "train/job.h"

#include "embark/predictor.h"

#include <gtest/gtest.h>

#include <sys/stat.h>

#include <filesystem>

#include "data/spec.h"
#include "test_util.h"
#include "util/fs.h"

namespace embark {
namespace {

// A directory holding what ResolveTrainConfig reads of a checkpoint.
std::string FakeCheckpoint(const std::string& name, const TrainConfig& cfg) {
  std::string dir = testing::TempDir() + "/" + name;
  std::filesystem::create_directories(dir);
  EXPECT_TRUE(fs::WriteFileAtomic(dir + "/config.toml", ConfigToToml(cfg)).ok());
  return dir;
}

TEST(TrainConfigLayers, DefaultsThenTomlThenValues) {
  ConfigSources src;
  src.config_file = testing::WriteTemp("l.toml", "model = \"fm\"\ndense_lr = 0.01\nepochs = 4\n");
  src.values = {{"epochs", "2"}, {"batch_size", "64"}, {"epochs", "3"}};  // the last of repeated values wins
  auto cfg = ResolveTrainConfig(src);
  ASSERT_TRUE(cfg.ok()) << cfg.status().message();
  EXPECT_EQ(cfg->model, "fm");
  EXPECT_FLOAT_EQ(cfg->dense_lr, 0.01f);
  EXPECT_EQ(cfg->epochs, 3);
  EXPECT_EQ(cfg->batch_size, 64);
  EXPECT_EQ(cfg->embedding_dim, TrainConfig().embedding_dim);
}

TEST(TrainConfigLayers, ErrorsNameTheFlagOrTheFile) {
  ConfigSources src;
  src.values = {{"dense_compression", "zip"}};
  auto r = ResolveTrainConfig(src);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("--dense-compression: 'zip' is not one of: none, fp16, onebit"), std::string::npos)
      << r.status().message();
  src.values = {{"dense_precision", "fp16"}};
  r = ResolveTrainConfig(src);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("--dense-precision: 'fp16' is not one of: fp32, bf16"), std::string::npos)
      << r.status().message();
  // A former name and the new one both given: refused naming both, in
  // either order; one name repeated is a later value.
  for (auto values : {std::vector<std::pair<std::string, std::string>>{{"wide_lr", "0.1"}, {"first_order_lr", "0.2"}},
                      std::vector<std::pair<std::string, std::string>>{{"first_order_lr", "0.2"}, {"wide_lr", "0.1"}}}) {
    src.values = values;
    EXPECT_NE(ResolveTrainConfig(src).status().message().find(
                  "--wide-lr sets 'first_order_lr' again (--wide-lr is the former name of --first-order-lr, also "
                  "given): keep --first-order-lr"),
              std::string::npos)
        << ResolveTrainConfig(src).status().message();
  }
  src.values = {{"wide_lr", "0.1"}, {"wide_lr", "0.2"}};
  EXPECT_FLOAT_EQ(ResolveTrainConfig(src).value().first_order_lr, 0.2f);
  src.values = {{"no_such", "1"}};
  EXPECT_NE(ResolveTrainConfig(src).status().message().find("unknown parameter 'no_such'"), std::string::npos);
  src.values = {{"deterministic", "true"}, {"threads", "4"}};
  EXPECT_NE(ResolveTrainConfig(src).status().message().find("deterministic runs on one thread, but threads is 4"),
            std::string::npos);
  src.values.clear();
  src.config_file = testing::WriteTemp("bad.toml", "embedding_dim = \"sixteen\"\n");
  EXPECT_NE(ResolveTrainConfig(src).status().message().find(
                "bad.toml: 'embedding_dim': expected an integer, found a string: \"sixteen\""),
            std::string::npos);
}

TEST(TrainConfigLayers, ResumeStartsFromTheCheckpointsConfig) {
  TrainConfig saved;
  saved.model = "wdl";
  saved.embedding_dim = 4;
  saved.dense_lr = 0.05f;
  saved.epochs = 2;
  ConfigSources src;
  src.resume_dir = FakeCheckpoint("ck", saved);
  src.config_file = testing::WriteTemp("r.toml", "dense_lr = 0.001\nembedding_dim = 4\n");
  src.values = {{"epochs", "5"}, {"model", "wdl"}};
  auto cfg = ResolveTrainConfig(src);
  ASSERT_TRUE(cfg.ok()) << cfg.status().message();
  EXPECT_EQ(cfg->model, "wdl");
  EXPECT_EQ(cfg->embedding_dim, 4);
  EXPECT_FLOAT_EQ(cfg->dense_lr, 0.001f);  // from --config: explicit
  EXPECT_EQ(cfg->epochs, 5);               // from a flag
  EXPECT_EQ(cfg->batch_size, saved.batch_size);

  // A fixed parameter changed in --config or by a flag is refused.
  src.config_file = testing::WriteTemp("r2.toml", "embedding_dim = 8\n");
  auto toml = ResolveTrainConfig(src);
  ASSERT_FALSE(toml.ok());
  EXPECT_NE(toml.status().message().find("cannot change 'embedding_dim' when resuming: the checkpoint has 4, requested 8"),
            std::string::npos)
      << toml.status().message();
  src.config_file.clear();
  src.values = {{"sparse_optimizer", "sgd"}};
  auto flag = ResolveTrainConfig(src);
  ASSERT_FALSE(flag.ok());
  EXPECT_NE(flag.status().message().find("cannot change 'sparse_optimizer' when resuming: the checkpoint has adam, "
                                         "requested sgd"),
            std::string::npos)
      << flag.status().message();

  src.resume_dir = testing::TempDir() + "/not-a-checkpoint";
  src.values.clear();
  auto missing = ResolveTrainConfig(src);
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("is not a checkpoint"), std::string::npos) << missing.status().message();
}

// A checkpoint written before the first-order rename (its config.toml says
// wide_optimizer / wide_lr) resumes under the new names; the former names
// given as values count as the new ones.
TEST(TrainConfigLayers, ResumesACheckpointWithTheFormerFirstOrderNames) {
  ConfigSources src;
  src.resume_dir = std::string(EMBARK_SOURCE_DIR) + "/tests/fixtures/checkpoint_v2/lr";
  auto cfg = ResolveTrainConfig(src);
  ASSERT_TRUE(cfg.ok()) << cfg.status().message();
  EXPECT_EQ(cfg->first_order_optimizer, "ftrl");
  EXPECT_FLOAT_EQ(cfg->first_order_lr, 0.05f);
  for (const char* name : {"wide_lr", "first_order_lr"}) {
    src.values = {{name, "0.07"}};
    cfg = ResolveTrainConfig(src);
    ASSERT_TRUE(cfg.ok()) << name << ": " << cfg.status().message();
    EXPECT_FLOAT_EQ(cfg->first_order_lr, 0.07f) << name;
  }
  for (const char* name : {"wide_optimizer", "first_order_optimizer"}) {
    src.values = {{name, "adagrad"}};
    cfg = ResolveTrainConfig(src);
    ASSERT_FALSE(cfg.ok()) << name;
    EXPECT_NE(cfg.status().message().find("cannot change 'first_order_optimizer' when resuming: the checkpoint has "
                                          "ftrl, requested adagrad"),
              std::string::npos)
        << cfg.status().message();
  }
}

TEST(MakeTrainJob, ResolvesConfigSpecAndDistOptions) {
  TrainRequest req;
  req.train_files = {testing::WriteTemp("j.svm", "1 3:1 4:1\n0 5:1\n")};
  req.valid_files = {"v.svm"};
  req.out_dir = "out";
  req.params.values = {{"model", "fm"}, {"dense_compression", "fp16"}, {"staleness", "3"}};
  auto job = MakeTrainJob(req);
  ASSERT_TRUE(job.ok()) << job.status().message();
  EXPECT_EQ(job->cfg.model, "fm");
  EXPECT_EQ(job->spec.format, Format::kLibsvm);
  EXPECT_EQ(job->dist.staleness, 3);
  EXPECT_EQ(job->dist.compression, WireCompression::kFp16);
  EXPECT_EQ(job->valid_files, req.valid_files);
  EXPECT_EQ(job->out_dir, "out");
  EXPECT_TRUE(job->resume_dir.empty());
  EXPECT_EQ(job->comm, nullptr);

  req.params.values = {{"format", "csv"}};
  auto csv = MakeTrainJob(req);
  ASSERT_FALSE(csv.ok());
  EXPECT_NE(csv.status().message().find("--format csv needs --schema"), std::string::npos);
  req.train_files.clear();
  EXPECT_FALSE(MakeTrainJob(req).ok());
}

// On --resume the checkpoint fixes the data spec: a --schema given again
// must be the one it was trained with, not be silently ignored.
TEST(MakeTrainJob, ResumeTakesOnlyTheCheckpointsSchema) {
  const std::string schema_text = "label = \"y\"\ncategorical = [\"a\"]\n";
  const std::string same = testing::WriteTemp("same.schema.toml", schema_text);
  const std::string other = testing::WriteTemp("other.schema.toml", schema_text + "numeric = [\"x\"]\n");
  TrainConfig cfg;
  cfg.model = "fm";
  const std::string csv_ck = FakeCheckpoint("csv_ck", cfg);
  ASSERT_TRUE(fs::WriteFileAtomic(csv_ck + "/data_spec.json", DataSpec::Csv(LoadCsvSchema(same).value()).ToJson()).ok());
  const std::string criteo_ck = FakeCheckpoint("criteo_ck", cfg);
  ASSERT_TRUE(fs::WriteFileAtomic(criteo_ck + "/data_spec.json", DataSpec::Criteo().ToJson()).ok());

  TrainRequest req;
  req.train_files = {testing::WriteTemp("r.csv", "y,a,x\n1,u,2\n")};
  req.out_dir = "out";
  req.params.resume_dir = csv_ck;
  req.schema_file = same;
  EXPECT_TRUE(MakeTrainJob(req).ok()) << MakeTrainJob(req).status().message();
  req.schema_file = other;
  auto differs = MakeTrainJob(req);
  ASSERT_FALSE(differs.ok());
  EXPECT_NE(differs.status().message().find("cannot change the data spec when resuming: it differs"),
            std::string::npos)
      << differs.status().message();
  req.params.resume_dir = criteo_ck;
  auto not_csv = MakeTrainJob(req);
  ASSERT_FALSE(not_csv.ok());
  EXPECT_NE(not_csv.status().message().find("the checkpoint reads criteo, not CSV"), std::string::npos)
      << not_csv.status().message();
}

// A pipe can be read once: listed twice, the second read would wait forever
// for a writer. Refused before anything opens it.
TEST(MakeTrainJob, APipeGivenTwiceIsRefused) {
  const std::string dir = testing::TempDir(), pipe = dir + "/pipe";
  ASSERT_EQ(::mkfifo(pipe.c_str(), 0600), 0);
  TrainRequest req;
  req.train_files = {pipe, dir + "/./pipe"};
  req.out_dir = "out";
  req.params.values = {{"format", "criteo"}};
  auto job = MakeTrainJob(req);
  ASSERT_FALSE(job.ok());
  EXPECT_NE(job.status().message().find("--data '" + dir + "/./pipe' is given twice; a pipe or device can be read once"),
            std::string::npos)
      << job.status().message();
  req.train_files = {pipe};
  EXPECT_TRUE(MakeTrainJob(req).ok());
}

}  // namespace
}  // namespace embark

namespace embark {
namespace {

// The library path end to end: a job from a request, trained, resumed under
// the rule, evaluated.
TEST(MakeTrainJob, TrainsResumesAndEvaluatesThroughTheLibrary) {
  std::string data;
  for (int i = 0; i < 400; ++i) data += std::to_string(i % 3 == 0) + " " + std::to_string(i % 7) + ":1 9:1\n";
  TrainRequest req;
  req.train_files = {testing::WriteTemp("t.svm", data)};
  req.out_dir = testing::TempDir() + "/m1";
  req.progress = false;
  req.params.values = {{"model", "fm"}, {"embedding_dim", "4"}, {"batch_size", "64"}, {"deterministic", "true"}};
  auto job = MakeTrainJob(req);
  ASSERT_TRUE(job.ok()) << job.status().message();
  Logger quiet(LogLevel::kError);
  auto first = Train(job.value(), quiet);
  ASSERT_TRUE(first.ok()) << first.status().message();

  // Resumed with only what may change given: the checkpoint's model, one more epoch.
  TrainRequest more = req;
  more.params = ConfigSources{req.out_dir, "", {{"epochs", "2"}, {"dense_lr", "0.01"}}};
  more.out_dir = testing::TempDir() + "/m2";
  auto job2 = MakeTrainJob(more);
  ASSERT_TRUE(job2.ok()) << job2.status().message();
  EXPECT_EQ(job2->cfg.model, "fm");
  EXPECT_EQ(job2->cfg.embedding_dim, 4);
  EXPECT_FLOAT_EQ(job2->cfg.dense_lr, 0.01f);
  auto second = Train(job2.value(), quiet);
  ASSERT_TRUE(second.ok()) << second.status().message();
  EXPECT_EQ(second->epochs_done, 2);

  // A caller that builds its own job cannot slip a fixed change past Train().
  TrainJob forged = job2.value();
  forged.cfg.embedding_dim = 8;
  forged.out_dir = testing::TempDir() + "/m3";
  auto refused = Train(forged, quiet);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("cannot change 'embedding_dim' when resuming: the checkpoint has 4, "
                                            "requested 8"),
            std::string::npos)
      << refused.status().message();
  EXPECT_FALSE(std::filesystem::exists(forged.out_dir));

  auto predictor = Predictor::Open(more.out_dir, {1});
  ASSERT_TRUE(predictor.ok()) << predictor.status().message();
  auto m = (*predictor)->Evaluate(req.train_files);
  ASSERT_TRUE(m.ok()) << m.status().message();
  EXPECT_EQ(m->count, 400u);
  EXPECT_FALSE(Predictor::Open(testing::TempDir() + "/nothing").ok());
}

}  // namespace
}  // namespace embark
