// The public API as a program using the library sees it: this file is
// compiled with include/ only on its include path (no src/), so it also
// proves that the public headers stand alone.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <random>
#include <sstream>
#include <string>

#include "embark/embark.h"

namespace embark {
namespace {

std::string TempDir() {
  std::string t = ::testing::TempDir() + "/embark_api_XXXXXX";
  EXPECT_NE(::mkdtemp(t.data()), nullptr);
  return t;
}

// Criteo TSV whose click depends on the first categorical field: tokens
// "a0".."a4" click 90% of the time, "b0".."b4" 10%; the rest is noise.
std::string WriteData(const std::string& dir, const std::string& name, int rows, uint32_t seed) {
  std::mt19937 rng(seed);
  std::ostringstream out;
  for (int i = 0; i < rows; ++i) {
    const bool hot = rng() % 2 == 0;
    const bool click = (rng() % 100) < (hot ? 90u : 10u);
    out << (click ? 1 : 0);
    for (int d = 0; d < 13; ++d) out << '\t' << (rng() % 7);
    out << '\t' << (hot ? "a" : "b") << (rng() % 5);
    for (int f = 1; f < 26; ++f) out << '\t' << std::hex << (rng() % 50) << std::dec;
    out << '\n';
  }
  const std::string path = dir + "/" + name;
  std::ofstream(path) << out.str();
  return path;
}

TrainOptions SmallFm(const std::string& train, const std::string& out) {
  TrainOptions o;
  o.train_files = {train};
  o.out_dir = out;
  for (auto [k, v] : std::vector<std::pair<std::string, std::string>>{
           {"model", "fm"}, {"embedding_dim", "4"}, {"threads", "1"}, {"batch_size", "128"}, {"seed", "3"}})
    EXPECT_TRUE(o.Set(k, v).ok()) << k;
  return o;
}

TEST(Api, ParamsComeFromTheOneDeclaration) {
  const auto params = ListParams();
  bool found = false;
  for (const ParamInfo& p : params)
    if (p.name == "embedding_dim") {
      found = true;
      EXPECT_EQ(p.flag, "--embedding-dim");
      EXPECT_EQ(p.type, "int");
      EXPECT_EQ(p.default_value, "16");
      EXPECT_TRUE(p.fixed_on_resume);
    }
  EXPECT_TRUE(found);
  TrainOptions o;
  Status s = o.Set("embeding_dim", "8");
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("embeding_dim"), std::string::npos);
}

TEST(Api, StepLoopLearnsAndAPredictorScoresTheSavedModelTheSame) {
  const std::string dir = TempDir();
  const std::string train = WriteData(dir, "train.tsv", 4000, 1), valid = WriteData(dir, "valid.tsv", 1000, 2);
  auto t = Trainer::Open(SmallFm(train, dir + "/model"));
  ASSERT_TRUE(t.ok()) << t.status().message();
  Trainer& trainer = **t;
  ReadSettings rs;
  rs.batch_size = 128;
  for (int epoch = 0; epoch < 2; ++epoch) {
    auto reader = trainer.Read({train}, rs);
    ASSERT_TRUE(reader.ok());
    Batch batch;
    for (;;) {
      auto more = (*reader)->Next(&batch);
      ASSERT_TRUE(more.ok()) << more.status().message();
      if (!*more) break;
      auto step = trainer.Step(batch);
      ASSERT_TRUE(step.ok()) << step.status().message();
      EXPECT_EQ(step->samples, batch.size());
      EXPECT_TRUE(std::isfinite(step->loss));
    }
  }
  EXPECT_EQ(trainer.info().step, 2 * ((4000 + 127) / 128));
  auto m = trainer.Evaluate({valid});
  ASSERT_TRUE(m.ok()) << m.status().message();
  EXPECT_EQ(m->count, 1000u);
  EXPECT_GT(m->auc, 0.85);  // the planted rule's AUC is 0.9

  ASSERT_TRUE(trainer.Save(dir + "/model").ok());
  auto p = Predictor::Open(dir + "/model");
  ASSERT_TRUE(p.ok()) << p.status().message();
  EXPECT_EQ((*p)->info().model, "fm");
  EXPECT_EQ((*p)->info().num_fields, 26);
  EXPECT_EQ((*p)->info().num_dense, 13);
  auto pm = (*p)->Evaluate({valid});
  ASSERT_TRUE(pm.ok());
  EXPECT_EQ(pm->auc, m->auc);
  EXPECT_EQ(pm->logloss, m->logloss);

  auto reader = (*p)->Read({valid}, rs);
  ASSERT_TRUE(reader.ok());
  Batch batch;
  ASSERT_TRUE(*(*reader)->Next(&batch));
  std::vector<float> a(batch.size()), b(batch.size());
  ASSERT_TRUE(trainer.Predict(batch, a.data()).ok());
  ASSERT_TRUE((*p)->Predict(batch, b.data()).ok());
  EXPECT_EQ(a, b);
  for (float x : a) EXPECT_TRUE(x > 0 && x < 1) << x;
}

TEST(Api, FitWritesACheckpointThatVerifies) {
  const std::string dir = TempDir();
  const std::string train = WriteData(dir, "train.tsv", 2000, 5);
  TrainOptions o = SmallFm(train, dir + "/model");
  o.valid_files = {train};
  auto t = Trainer::Open(o);
  ASSERT_TRUE(t.ok()) << t.status().message();
  auto rep = (*t)->Fit();
  ASSERT_TRUE(rep.ok()) << rep.status().message();
  EXPECT_EQ(rep->samples, 2000u);
  EXPECT_EQ(rep->epochs_done, 1);
  EXPECT_TRUE(rep->has_valid);
  EXPECT_GT(rep->cpu_seconds, 0);  // the training loop's CPU time
  auto info = VerifyCheckpoint(dir + "/model");
  ASSERT_TRUE(info.ok()) << info.status().message();
  EXPECT_EQ(info->model, "fm");
  EXPECT_EQ(info->samples, 2000u);
  ASSERT_EQ(info->tables.size(), 2u);
  for (const TableInfo& ti : info->tables) {
    EXPECT_GT(ti.rows, 100u) << ti.name;
    EXPECT_EQ(ti.dim, ti.name == "embeddings" ? 4 : 1) << ti.name;
  }

  // A resumed run keeps what the checkpoint fixes.
  TrainOptions r = SmallFm(train, dir + "/model2");
  r.resume_from = dir + "/model";
  ASSERT_TRUE(r.Set("embedding_dim", "8").ok());
  auto bad = Trainer::Open(r);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("embedding_dim"), std::string::npos) << bad.status().message();

  // Every byte is verified: a flipped byte in a table file is named.
  std::string table;
  for (const char* name : {"/embeddings.bin", "/embeddings-0-of-1.bin"})
    if (std::ifstream(dir + "/model" + name)) table = dir + "/model" + name;
  ASSERT_FALSE(table.empty());
  {
    std::fstream f(table, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(100);
    char c = 0;
    f.read(&c, 1);
    f.seekp(100);
    c = static_cast<char>(c ^ 0x5a);
    f.write(&c, 1);
  }
  auto corrupt = VerifyCheckpoint(dir + "/model");
  ASSERT_FALSE(corrupt.ok());
  EXPECT_NE(corrupt.status().message().find("embeddings"), std::string::npos) << corrupt.status().message();
}

// Arrays through the public header alone: a new model takes its data spec
// from the columns, Trainer and Predictor encode the same rows the same,
// evaluate them, and carry the run's history; mismatched arrays are refused
// by Open, naming the columns.
TEST(Api, ArraysTrainEvaluateAndCarryTheHistory) {
  const std::string dir = TempDir();
  std::mt19937 rng(7);
  const size_t rows = 2000;
  std::vector<float> labels, dense;
  std::vector<int64_t> ids;
  for (size_t r = 0; r < rows; ++r) {
    const int64_t hot = static_cast<int64_t>(rng() % 10);
    labels.push_back((rng() % 100) < (hot < 5 ? 85u : 10u) ? 1.0f : 0.0f);
    dense.push_back(static_cast<float>(rng() % 9));
    ids.push_back(hot);
    ids.push_back(static_cast<int64_t>(rng() % 40));
  }
  ArrayData a;
  a.rows = rows;
  a.labels = labels.data();
  a.dense = dense.data();
  a.dense_cols = 1;
  a.ids = ids.data();
  a.id_cols = 2;
  a.id_names = {"user", "item"};
  TrainOptions o = SmallFm("", dir + "/model");
  o.train_files.clear();
  o.train_arrays = a;
  o.valid_arrays = a;
  std::vector<std::string> records;
  o.on_history = [&](const std::string& r) {
    records.push_back(r);
    return true;
  };
  auto t = Trainer::Open(o);
  ASSERT_TRUE(t.ok()) << t.status().message();
  auto rep = (*t)->Fit();
  ASSERT_TRUE(rep.ok()) << rep.status().message();
  EXPECT_EQ(rep->samples, rows);
  ASSERT_TRUE(rep->has_valid);
  EXPECT_GT(rep->valid.auc, 0.75);
  ASSERT_EQ(records.size(), 1u);  // one validation, at the end of the one epoch
  EXPECT_NE(records[0].find("\"valid\""), std::string::npos) << records[0];

  auto m = (*t)->Evaluate(a);
  ASSERT_TRUE(m.ok()) << m.status().message();
  EXPECT_EQ(m->count, rows);
  auto p = Predictor::Open(dir + "/model");
  ASSERT_TRUE(p.ok()) << p.status().message();
  auto pm = (*p)->Evaluate(a);
  ASSERT_TRUE(pm.ok()) << pm.status().message();
  EXPECT_EQ(pm->auc, rep->valid.auc);
  EXPECT_EQ(pm->logloss, rep->valid.logloss);
  EXPECT_EQ((*p)->History(), (*t)->History());
  EXPECT_NE((*p)->History().find("\"records\""), std::string::npos);

  Batch bt, bp;
  ASSERT_TRUE((*t)->Encode(a, 10, 74, &bt).ok());
  ASSERT_TRUE((*p)->Encode(a, 10, 74, &bp).ok());
  ASSERT_EQ(bt.size(), 64u);
  EXPECT_EQ(bt.keys, bp.keys);
  EXPECT_EQ(bt.dense, bp.dense);
  EXPECT_EQ(bt.labels, std::vector<float>(labels.begin() + 10, labels.begin() + 74));
  std::vector<float> st(64), sp(64);
  ASSERT_TRUE((*t)->Predict(bt, st.data()).ok());
  ASSERT_TRUE((*p)->Predict(bp, sp.data()).ok());
  EXPECT_EQ(st, sp);
  // Unlabelled rows encode for scoring, but do not evaluate.
  ArrayData unlabelled = a;
  unlabelled.labels = nullptr;
  EXPECT_TRUE((*p)->Encode(unlabelled, 0, 5, &bp).ok());
  EXPECT_EQ(bp.size(), 5u);
  EXPECT_FALSE((*p)->Evaluate(unlabelled).ok());

  // A resumed model reads its own spec: arrays of other columns are refused by name.
  TrainOptions r = SmallFm("", dir + "/model2");
  r.train_files.clear();
  r.resume_from = dir + "/model";
  ArrayData narrow = a;
  narrow.id_cols = 1;
  r.train_arrays = narrow;
  auto bad = Trainer::Open(r);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("training arrays: ids: the model reads 2 categorical id column(s) (user, item)"),
            std::string::npos)
      << bad.status().message();
  // Files and arrays together are refused.
  TrainOptions both = SmallFm(dir + "/x.tsv", dir + "/model3");
  both.train_arrays = a;
  auto twice = Trainer::Open(both);
  ASSERT_FALSE(twice.ok());
  EXPECT_NE(twice.status().message().find("files or arrays, not both"), std::string::npos) << twice.status().message();
}

TEST(Api, PredictToFileIsAllOrNothing) {
  const std::string dir = TempDir();
  const std::string train = WriteData(dir, "train.tsv", 500, 7);
  auto t = Trainer::Open(SmallFm(train, dir + "/model"));
  ASSERT_TRUE(t.ok());
  ASSERT_TRUE((*t)->Fit().ok());
  auto p = Predictor::Open(dir + "/model", {1});
  ASSERT_TRUE(p.ok());
  auto scores = (*p)->PredictToFile({train}, 0, dir + "/pred.txt");
  ASSERT_TRUE(scores.ok()) << scores.status().message();
  EXPECT_EQ(scores->samples, 500);
  std::ifstream in(dir + "/pred.txt");
  int lines = 0;
  for (std::string l; std::getline(in, l); ++lines) {
    const double x = std::stod(l);
    EXPECT_TRUE(x > 0 && x < 1);
  }
  EXPECT_EQ(lines, 500);

  // A bad line (with none allowed) fails the whole file: the earlier
  // predictions at that path stay, and no temporary is left beside them.
  std::ofstream(dir + "/bad.tsv") << "1\tnot a criteo line\n";
  auto failed = (*p)->PredictToFile({train, dir + "/bad.tsv"}, 0, dir + "/pred.txt");
  ASSERT_FALSE(failed.ok());
  EXPECT_NE(failed.status().message().find("bad.tsv"), std::string::npos) << failed.status().message();
  std::ifstream again(dir + "/pred.txt");
  int kept = 0;
  for (std::string l; std::getline(again, l);) ++kept;
  EXPECT_EQ(kept, 500);

  // Nor is an output ever a file of the checkpoint being read: the model
  // stays as it was and loads again.
  std::ifstream dense_in(dir + "/model/dense.bin", std::ios::binary);
  const std::string dense((std::istreambuf_iterator<char>(dense_in)), std::istreambuf_iterator<char>());
  auto into_model = (*p)->PredictToFile({train}, 0, dir + "/model/dense.bin");
  ASSERT_FALSE(into_model.ok());
  EXPECT_NE(into_model.status().message().find("inside the checkpoint"), std::string::npos)
      << into_model.status().message();
  EXPECT_FALSE((*p)->PredictToFile({train}, 0, dir + "/model/pred.txt").ok());
  std::ifstream dense_again(dir + "/model/dense.bin", std::ios::binary);
  EXPECT_EQ(std::string((std::istreambuf_iterator<char>(dense_again)), std::istreambuf_iterator<char>()), dense);
  EXPECT_TRUE(Predictor::Open(dir + "/model", {1}).ok());
}

// Output line k belongs to input line k: a blank or skipped bad line gets an
// empty line (at the start, in the middle, in a run, at the end, and across
// files), and each other line the probability of its own sample.
TEST(Api, PredictToFileLinesUpWithInput) {
  const std::string dir = TempDir();
  const std::string train = WriteData(dir, "train.tsv", 15000, 7);
  auto t = Trainer::Open(SmallFm(train, dir + "/model"));
  ASSERT_TRUE(t.ok());
  ASSERT_TRUE((*t)->Fit().ok());
  auto p = Predictor::Open(dir + "/model", {2});
  ASSERT_TRUE(p.ok());
  auto clean = (*p)->PredictToFile({train}, 0, dir + "/clean.txt");
  ASSERT_TRUE(clean.ok()) << clean.status().message();
  std::vector<std::string> good, expected;
  {
    std::ifstream in(train), pred(dir + "/clean.txt");
    for (std::string l, q; std::getline(in, l) && std::getline(pred, q);) {
      good.push_back(l);
      expected.push_back(q);
    }
  }
  ASSERT_EQ(good.size(), 15000u);
  // Mixed input over two files, bad lines every so often (more than one
  // parse chunk, so positions cross block boundaries).
  std::vector<std::string> want;
  std::ofstream a(dir + "/a.tsv"), b(dir + "/b.tsv");
  auto put = [&](std::ofstream& f, const std::string& line, const std::string& pred) {
    f << line << "\n";
    want.push_back(pred);
  };
  put(a, "", "");
  put(a, "junk", "");
  int bad = 1;
  for (size_t i = 0; i < good.size(); ++i) {
    std::ofstream& f = i < 4000 ? a : b;
    put(f, good[i], expected[i]);
    if (i % 997 == 3) put(f, "", "");
    if (i % 1409 == 5 || i == 3999) {
      put(f, "1\tbad", "");
      ++bad;
    }
  }
  put(b, "", "");
  put(b, "also junk", "");
  ++bad;
  a.close();
  b.close();
  auto mixed = (*p)->PredictToFile({dir + "/a.tsv", dir + "/b.tsv"}, 100, dir + "/mixed.txt");
  ASSERT_TRUE(mixed.ok()) << mixed.status().message();
  EXPECT_EQ(mixed->samples, 15000);
  EXPECT_EQ(mixed->bad_lines, bad);
  std::ifstream in(dir + "/mixed.txt");
  std::vector<std::string> got;
  for (std::string l; std::getline(in, l);) got.push_back(l);
  ASSERT_EQ(got.size(), want.size());
  for (size_t k = 0; k < want.size(); ++k) ASSERT_EQ(got[k], want[k]) << "output line " << k + 1;
}

// checkpoint_every: a run that fails part way leaves in out_dir the
// checkpoint of its last multiple of N steps, which verifies and resumes.
TEST(Api, PeriodicCheckpointOutlivesAFailedRun) {
  const std::string dir = TempDir();
  const std::string good = WriteData(dir, "good.tsv", 2560, 5);  // 20 steps of 128
  std::ofstream(dir + "/bad.tsv") << "1\tnot a criteo line\n";
  TrainOptions o = SmallFm(good, dir + "/model");
  o.train_files.push_back(dir + "/bad.tsv");
  ASSERT_TRUE(o.Set("shuffle_window", "0").ok());
  ASSERT_TRUE(o.Set("checkpoint_every", "6").ok());
  auto t = Trainer::Open(o);
  ASSERT_TRUE(t.ok()) << t.status().message();
  auto failed = (*t)->Fit();
  ASSERT_FALSE(failed.ok());
  EXPECT_NE(failed.status().message().find("bad.tsv:1"), std::string::npos) << failed.status().message();
  auto info = VerifyCheckpoint(dir + "/model");
  ASSERT_TRUE(info.ok()) << info.status().message();
  EXPECT_EQ(info->step, 18);
  EXPECT_EQ(info->samples, 18u * 128);
  EXPECT_EQ(info->epochs_done, 0);
  EXPECT_EQ(info->epoch_samples, 18u * 128);  // the cursor: where in the epoch it was written

  // Resuming from it goes on at that sample of the epoch, on the good data
  // alone: the last 2 steps of 128.
  TrainOptions r = SmallFm(good, dir + "/model");
  r.resume_from = dir + "/model";
  auto resumed = Trainer::Open(r);
  ASSERT_TRUE(resumed.ok()) << resumed.status().message();
  auto rep = (*resumed)->Fit();
  ASSERT_TRUE(rep.ok()) << rep.status().message();
  EXPECT_EQ(rep->steps, 20);
  EXPECT_EQ(rep->samples, 2u * 128);

  // It cannot be combined with early stopping: both would write out_dir.
  ASSERT_TRUE(o.Set("early_stop_patience", "2").ok());
  auto both = Trainer::Open(o);
  ASSERT_FALSE(both.ok());
  EXPECT_NE(both.status().message().find("--early-stop-patience"), std::string::npos) << both.status().message();
}

TEST(Api, CallerBuiltBatchesAreCheckedAndTrainWithoutFiles) {
  const std::string dir = TempDir();
  TrainOptions none;
  auto refused = Trainer::Open(none);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("format"), std::string::npos) << refused.status().message();

  TrainOptions o;
  ASSERT_TRUE(o.Set("format", "criteo").ok());
  ASSERT_TRUE(o.Set("model", "lr").ok());
  ASSERT_TRUE(o.Set("threads", "1").ok());
  auto t = Trainer::Open(o);
  ASSERT_TRUE(t.ok()) << t.status().message();
  Batch b;
  b.Reset(13, 26);
  for (int i = 0; i < 8; ++i) {
    b.labels.push_back(i % 2);
    for (int d = 0; d < 13; ++d) b.dense.push_back(0.5f);
    for (int f = 0; f < 26; ++f) {
      b.keys.push_back(1000u * f + (i % 2));
      b.values.push_back(1);
      b.offsets.push_back(static_cast<uint32_t>(b.keys.size()));
    }
  }
  std::vector<float> before(8), after(8);
  ASSERT_TRUE((*t)->Predict(b, before.data()).ok());
  for (int s = 0; s < 20; ++s) ASSERT_TRUE((*t)->Step(b).ok());
  ASSERT_TRUE((*t)->Predict(b, after.data()).ok());
  EXPECT_GT(after[1], before[1]);  // the clicked key's weight grew
  EXPECT_LT(after[0], before[0]);

  Batch wrong = b;
  wrong.offsets.back() += 1;
  Status s = (*t)->Step(wrong).status();
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("offsets"), std::string::npos) << s.message();
  Batch narrow;
  narrow.Reset(13, 3);
  s = (*t)->Predict(narrow, after.data());
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("26"), std::string::npos) << s.message();
  Batch label = b;
  label.labels[0] = 0.5f;
  EXPECT_FALSE((*t)->Step(label).ok());
}

TEST(Api, StreamTrainsUntilStopAndLeavesALoadableCheckpoint) {
  const std::string dir = TempDir();
  ASSERT_EQ(::mkdir((dir + "/in").c_str(), 0755), 0);
  WriteData(dir + "/in", "part-0", 1000, 5);
  WriteData(dir + "/in", "part-1", 1000, 6);
  TrainOptions o = SmallFm("", dir + "/model");
  o.train_files.clear();
  o.stream = dir + "/in";
  ASSERT_TRUE(o.Set("format", "criteo").ok());
  ASSERT_TRUE(o.Set("report_every", "50ms").ok());
  ASSERT_TRUE(o.Set("delta_every", "4").ok());
  Trainer* running = nullptr;
  int reports = 0;
  o.on_stream_report = [&](const std::string& line) {
    ++reports;
    // Stop once every sample is in (Stop is safe from any thread, this one included).
    if (line.find("\"samples\":2000,") != std::string::npos) running->Stop();
  };
  auto t = Trainer::Open(o);
  ASSERT_TRUE(t.ok()) << t.status().message();
  running = t->get();
  auto rep = (*t)->Fit();
  ASSERT_TRUE(rep.ok()) << rep.status().message();
  EXPECT_EQ(rep->samples, 2000u);
  EXPECT_GT(reports, 0);
  auto info = VerifyCheckpoint(dir + "/model");
  ASSERT_TRUE(info.ok()) << info.status().message();
  EXPECT_EQ(info->samples, 2000u);
  // Files given beside a stream are refused: it reads one source.
  TrainOptions both = o;
  both.train_files = {dir + "/in/part-0"};
  EXPECT_FALSE(Trainer::Open(both).ok());
}

}  // namespace
}  // namespace embark
