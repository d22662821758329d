// The TrainerImpl's step API: a loop written by hand over Next/Step/Save trains
// the model Train() trains; a step allocates nothing once warm; a resumed
// model takes the new run's optimizer settings.
#include "train/trainer.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <limits>
#include <new>
#include <tuple>

#include "gen/gen.h"
#include "model/families/families.h"
#include "nn/layers.h"
#include "test_util.h"

// Every allocation of the process is counted while `g_count` is set.
namespace {
std::atomic<bool> g_count{false};
std::atomic<long> g_allocs{0};
}  // namespace

void* operator new(size_t n) {
  if (g_count.load(std::memory_order_relaxed)) g_allocs.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }

namespace embark {
namespace {

// A training step allocates nothing of its own once warm; the dense
// products that run on oneDNN (nn/train_gemm.h) allocate its argument map
// inside each execution, a few small blocks (8 in oneDNN 2.6).
constexpr long kAllocsPerOneDnnProduct = 12;

TrainConfig SmallConfig() {
  TrainConfig cfg;
  cfg.model = "deepfm";
  cfg.embedding_dim = 4;
  cfg.mlp = {16, 8};
  cfg.batch_size = 256;
  cfg.epochs = 1;
  cfg.deterministic = true;
  cfg.threads = 1;
  return cfg;
}

std::vector<double> Scores(const Model& m, const std::string& file) {
  ThreadPool pool(1);
  ReadOptions ro;
  StreamOptions so;
  so.batch_size = 512;
  auto stream = OpenStream({file}, m.spec(), ro, so);
  std::vector<double> out;
  EXPECT_TRUE(Score(m, stream.get(), &pool, [&](const float* p, const float*, size_t n) {
                out.insert(out.end(), p, p + n);
              }).ok());
  return out;
}

// Generated training and validation files <prefix>train.tsv and
// <prefix>valid.tsv in dir; the options, with out empty if generation failed.
GenOptions GenerateIn(const std::string& dir, const std::string& prefix, uint64_t rows, uint64_t valid_rows,
                      uint64_t seed) {
  GenOptions g;
  g.rows = rows;
  g.seed = seed;
  g.out = dir + "/" + prefix + "train.tsv";
  g.valid_rows = valid_rows;
  g.valid_out = dir + "/" + prefix + "valid.tsv";
  if (!Generate(g).ok()) g.out.clear();
  return g;
}

TEST(TrainerImpl, HandWrittenStepLoopTrainsWhatTrainTrains) {
  InitBlas();
  const std::string dir = testing::TempDir();
  const GenOptions g = GenerateIn(dir, "", 3000, 500, 5);
  ASSERT_FALSE(g.out.empty());
  const TrainConfig cfg = SmallConfig();

  TrainJob job;
  job.cfg = cfg;
  job.spec = DataSpec::Criteo();
  job.train_files = {g.out};
  job.out_dir = dir + "/by_train";
  job.progress = false;
  Logger quiet(LogLevel::kWarn);
  auto rep = Train(job, quiet);
  ASSERT_TRUE(rep.ok()) << rep.status().message();

  auto model = Model::Create(cfg, DataSpec::Criteo());
  ASSERT_TRUE(model.ok());
  auto t = TrainerImpl::Create(cfg, std::move(model).value(), {}, {});
  ASSERT_TRUE(t.ok()) << t.status().message();
  TrainerImpl& trainer = *t.value();
  ReadOptions ro;
  StreamOptions so;
  so.batch_size = cfg.batch_size;
  so.shuffle_window = cfg.shuffle_window;
  so.seed = cfg.seed * 1000003ULL;  // epoch 0, as Train() seeds it
  auto stream = OpenStream({g.out}, DataSpec::Criteo(), ro, so);
  Batch batch;
  size_t samples = 0;
  for (;;) {
    auto more = trainer.Next([&](Batch* b) { return stream->Next(b); }, &batch);
    ASSERT_TRUE(more.ok());
    if (!more.value()) break;
    auto st = trainer.Step(batch);
    ASSERT_TRUE(st.ok()) << st.status().message();
    EXPECT_EQ(st->samples, batch.size());
    EXPECT_GT(st->sums.loss, 0);
    samples += st->samples;
  }
  EXPECT_EQ(samples, 3000u);
  EXPECT_EQ(trainer.state().step, rep->steps);
  trainer.state().epochs_done = 1;
  ASSERT_TRUE(trainer.Save(dir + "/by_hand", 0).ok());

  auto a = LoadCheckpoint(dir + "/by_train");
  auto b = LoadCheckpoint(dir + "/by_hand");
  ASSERT_TRUE(a.ok() && b.ok());
  const auto sa = Scores(*a->model, g.valid_out), sb = Scores(*b->model, g.valid_out);
  ASSERT_EQ(sa.size(), 500u);
  EXPECT_EQ(sa, sb);  // bit for bit
  auto m = trainer.Evaluate(std::vector<std::string>{g.valid_out});
  ASSERT_TRUE(m.ok());
  EXPECT_NEAR(m->auc, rep->valid.auc == 0 ? m->auc : rep->valid.auc, 1e-12);
  EXPECT_GT(m->auc, 0.6);  // it learned something
}

// A batch of `n` Criteo-shaped samples with ids drawn from a small range.
Batch SomeBatch(size_t n) {
  Batch b;
  b.Reset(13, 26);
  for (size_t i = 0; i < n; ++i) {
    b.labels.push_back(static_cast<float>(i % 3 == 0));
    for (int d = 0; d < 13; ++d) b.dense.push_back(0.05f * static_cast<float>((i + d) % 7));
    for (int f = 0; f < 26; ++f) {
      b.keys.push_back(f * 1000 + (i * 7 + f) % 50);
      b.values.push_back(1);
      b.offsets.push_back(static_cast<uint32_t>(b.keys.size()));
    }
  }
  return b;
}

TEST(TrainerImpl, StepAllocatesNothingInSteadyState) {
  InitBlas();
  for (int threads : {1, 2}) {
    for (const char* name : {"deepfm", "dcnv2", "dlrm"}) {
      SCOPED_TRACE(std::string(name) + " threads " + std::to_string(threads));
      TrainConfig cfg = SmallConfig();
      cfg.model = name;
      cfg.deterministic = false;
      cfg.threads = threads;
      cfg.bottom_mlp = {8};
      cfg.top_mlp = {8};
      cfg.cross_layers = 2;
      auto model = Model::Create(cfg, DataSpec::Criteo());
      ASSERT_TRUE(model.ok());
      auto t = TrainerImpl::Create(cfg, std::move(model).value(), {}, {});
      ASSERT_TRUE(t.ok());
      const Batch batch = SomeBatch(128);
      // Warm up: rows, workspaces, and each pool thread's scratch in the
      // store, which is sized by the largest share that thread has run.
      for (int i = 0; i < 10; ++i) ASSERT_TRUE(t.value()->Step(batch).ok());
      const uint64_t products = TrainGemm::OneDnnProducts();
      g_allocs = 0;
      g_count = true;
      for (int i = 0; i < 3; ++i) {
        auto st = t.value()->Step(batch);
        if (!st.ok()) break;
      }
      g_count = false;
      EXPECT_LE(g_allocs.load(), kAllocsPerOneDnnProduct * (TrainGemm::OneDnnProducts() - products));
    }
  }
}

// A step whose loss is not finite stops training, naming the step and what
// to do, before the dense weights take it; a model that is not finite is
// never written.
TEST(TrainerImpl, DivergenceStopsTrainingAndNothingNonFiniteIsSaved) {
  InitBlas();
  TrainConfig cfg = SmallConfig();
  auto model = Model::Create(cfg, DataSpec::Criteo());
  ASSERT_TRUE(model.ok());
  auto t = TrainerImpl::Create(cfg, std::move(model).value(), {}, {});
  ASSERT_TRUE(t.ok());
  TrainerImpl& tr = *t.value();
  ASSERT_TRUE(tr.Step(SomeBatch(64)).ok());
  const std::vector<float> before(tr.model().params().data(),
                                  tr.model().params().data() + tr.model().params().size());
  Batch wild = SomeBatch(64);
  for (float& x : wild.dense) x = 3e38f;
  auto st = tr.Step(wild);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.status().message().find("training diverged at step 2"), std::string::npos) << st.status().message();
  EXPECT_NE(st.status().message().find("--dense-lr"), std::string::npos) << st.status().message();
  const std::vector<float> after(tr.model().params().data(), tr.model().params().data() + tr.model().params().size());
  EXPECT_EQ(before, after);  // the dense step did not run
  // Rows that took the step's gradients are not finite now: saving refuses.
  const std::string dir = testing::TempDir() + "/diverged";
  Status saved = tr.Save(dir, 0);
  ASSERT_FALSE(saved.ok());
  EXPECT_NE(saved.message().find("is not finite; refusing to write a model that is not finite"), std::string::npos)
      << saved.message();
  EXPECT_FALSE(std::filesystem::exists(dir));
  // Dense weights that are not finite are refused too.
  tr.model().params().data()[0] = std::numeric_limits<float>::quiet_NaN();
  saved = tr.Save(dir, 0);
  ASSERT_FALSE(saved.ok());
  EXPECT_NE(saved.message().find("not finite"), std::string::npos) << saved.message();
  EXPECT_FALSE(std::filesystem::exists(dir));
}

// Binary cross-entropy that says it couples the batch: the trainer takes
// its other path (forward on every share, the objective on the whole batch,
// then backward per share), which must train exactly what the separable
// path trains on one thread, since the arithmetic per sample is the same.
class WholeBatchBce : public Objective {
 public:
  const char* name() const override { return "bce-whole-batch"; }
  bool separable() const override { return false; }
  void Compute(const float* out, const float* labels, const uint64_t* items, size_t n, int outputs, float scale,
               float* dout, ObjectiveSums* sums) override {
    calls++;
    samples += n;
    bce_->Compute(out, labels, items, n, outputs, scale, dout, sums);
  }
  mutable int calls = 0;
  mutable size_t samples = 0;

 private:
  std::unique_ptr<Objective> bce_ = NewBinaryCrossEntropy();
};

TEST(TrainerImpl, NonSeparableObjectiveSeesTheWholeBatchAndTrainsTheSame) {
  InitBlas();
  for (int threads : {1, 2}) {
    SCOPED_TRACE("threads " + std::to_string(threads));
    TrainConfig cfg = SmallConfig();
    cfg.deterministic = false;
    cfg.threads = threads;
    std::vector<std::vector<float>> params;
    std::vector<double> losses;
    for (bool whole : {false, true}) {
      auto model = Model::Create(cfg, DataSpec::Criteo());
      ASSERT_TRUE(model.ok());
      auto t = TrainerImpl::Create(cfg, std::move(model).value(), {}, {});
      ASSERT_TRUE(t.ok());
      auto obj = std::make_unique<WholeBatchBce>();
      WholeBatchBce* seen = obj.get();
      if (whole) t.value()->SetObjective(std::move(obj));
      double loss = 0;
      for (int i = 0; i < 5; ++i) {
        auto st = t.value()->Step(SomeBatch(100));
        ASSERT_TRUE(st.ok()) << st.status().message();
        loss += st->sums.loss;
      }
      if (whole) {
        EXPECT_EQ(seen->calls, 5);  // once per step, over the whole batch
        EXPECT_EQ(seen->samples, 500u);
      }
      const auto& p0 = t.value()->model().params();
      params.emplace_back(p0.data(), p0.data() + p0.size());
      losses.push_back(loss);
      // This path, too, allocates nothing once warm.
      const Batch same = SomeBatch(100);
      for (int i = 0; i < 3; ++i) ASSERT_TRUE(t.value()->Step(same).ok());
      const uint64_t products = TrainGemm::OneDnnProducts();
      g_allocs = 0;
      g_count = true;
      for (int i = 0; i < 3; ++i)
        if (!t.value()->Step(same).ok()) break;
      g_count = false;
      EXPECT_LE(g_allocs.load(), kAllocsPerOneDnnProduct * (TrainGemm::OneDnnProducts() - products))
          << (whole ? "whole batch" : "separable");
    }
    // The same arithmetic in the same order: every share's lookups come
    // before the step's sparse updates, which sum the shares by key.
    EXPECT_EQ(params[0], params[1]);
    EXPECT_EQ(losses[0], losses[1]);
  }
}

// How a batch is split over threads changes only the order of float sums:
// each row gets one update per step (the shares' gradients summed by key),
// so 1, 2 and 3 threads train the same model, and a thread count trains it
// bit for bit the same every time.
TEST(TrainerImpl, ThreadCountDoesNotChangeWhatAStepLearns) {
  InitBlas();
  struct Trained {
    std::vector<float> params, rows;
  };
  auto train = [](int threads) {
    TrainConfig cfg = SmallConfig();
    cfg.deterministic = false;
    cfg.threads = threads;
    cfg.sparse_optimizer = "adagrad";
    cfg.sparse_lr = 0.1f;
    auto model = Model::Create(cfg, DataSpec::Criteo());
    EXPECT_TRUE(model.ok());
    auto t = TrainerImpl::Create(cfg, std::move(model).value(), {}, {});
    EXPECT_TRUE(t.ok());
    // Keys repeat within and across the shares of every batch.
    for (int i = 0; i < 8; ++i) EXPECT_TRUE(t.value()->Step(SomeBatch(120 + i)).ok());
    Trained out;
    const ParamSet& p = t.value()->model().params();
    out.params.assign(p.data(), p.data() + p.size());
    const Batch b = SomeBatch(200);
    for (int table = 0; table < t.value()->model().num_tables(); ++table) {
      RowStore* store = t.value()->model().table(table);
      std::vector<float> rows(b.keys.size() * store->dim());
      EXPECT_TRUE(store->Get(b.keys.data(), b.keys.size(), rows.data(), Access::kRead).ok());
      out.rows.insert(out.rows.end(), rows.begin(), rows.end());
    }
    return out;
  };
  const Trained one = train(1);
  for (int threads : {2, 3}) {
    SCOPED_TRACE("threads " + std::to_string(threads));
    const Trained many = train(threads);
    ASSERT_EQ(many.params.size(), one.params.size());
    ASSERT_EQ(many.rows.size(), one.rows.size());
    double worst = 0;
    for (size_t i = 0; i < one.rows.size(); ++i) worst = std::max(worst, std::fabs(double{many.rows[i]} - one.rows[i]));
    EXPECT_LT(worst, 1e-4) << "embedding rows";
    worst = 0;
    for (size_t i = 0; i < one.params.size(); ++i)
      worst = std::max(worst, std::fabs(double{many.params[i]} - one.params[i]));
    EXPECT_LT(worst, 1e-4) << "dense parameters";
    const Trained again = train(threads);
    EXPECT_EQ(again.params, many.params);
    EXPECT_EQ(again.rows, many.rows);
  }
}

// The model's passes of every family (forward, backward, sparse update
// through its own stores) on one thread allocate nothing once warm.
TEST(Model, TrainingPassAllocatesNothingInSteadyStateInEveryFamily) {
  InitBlas();
  for (const Family& family : Families()) {
    if (std::string(family.name) == "two_tower") continue;  // needs towers of a CSV schema: two_tower_test.cc
    SCOPED_TRACE(family.name);
    TrainConfig cfg = SmallConfig();
    cfg.model = family.name;
    cfg.bottom_mlp = {8};
    cfg.top_mlp = {8};
    cfg.cross_layers = 2;
    auto r = Model::Create(cfg, DataSpec::Criteo());
    ASSERT_TRUE(r.ok()) << r.status().message();
    Model& m = *r.value();
    const Batch batch = SomeBatch(128);
    auto ws = m.NewWorkspace();
    std::vector<float> z(batch.size()), dz(batch.size(), 0.01f), g(m.params().size());
    auto pass = [&] {
      if (!m.Forward(batch, 0, batch.size(), true, m.rows(), ws.get(), z.data()).ok()) return false;
      m.Backward(batch, 0, batch.size(), dz.data(), ws.get(), g.data());
      return m.ApplySparse(ws.get(), 1.0f, m.rows()).ok();
    };
    for (int i = 0; i < 3; ++i) ASSERT_TRUE(pass());
    const uint64_t products = TrainGemm::OneDnnProducts();
    g_allocs = 0;
    g_count = true;
    bool ok = true;
    for (int i = 0; i < 3; ++i) ok = ok && pass();
    g_count = false;
    EXPECT_TRUE(ok);
    EXPECT_LE(g_allocs.load(), kAllocsPerOneDnnProduct * (TrainGemm::OneDnnProducts() - products));
  }
}

// dense_precision = bf16 trains DLRM and DeepFM to the validation AUC of
// fp32 on generated data (within 0.01 at this size), and is not fp32.
TEST(TrainerImpl, Bf16TrainsToTheAucOfFp32) {
  InitBlas();
  const std::string dir = testing::TempDir();
  const GenOptions g = GenerateIn(dir, "bf16_", 20000, 5000, 3);
  ASSERT_FALSE(g.out.empty());
  Logger quiet(LogLevel::kWarn);
  for (const char* name : {"dlrm", "deepfm"}) {
    double auc[2] = {0, 0};
    for (int bf16 = 0; bf16 < 2; ++bf16) {
      SCOPED_TRACE(std::string(name) + (bf16 ? " bf16" : " fp32"));
      TrainJob job;
      job.cfg = SmallConfig();
      job.cfg.model = name;
      job.cfg.embedding_dim = 8;
      job.cfg.bottom_mlp = {32, 16};
      job.cfg.top_mlp = {32, 16};
      job.cfg.mlp = {32, 16};
      job.cfg.dense_precision = bf16 ? "bf16" : "fp32";
      job.spec = DataSpec::Criteo();
      job.train_files = {g.out};
      job.valid_files = {g.valid_out};
      job.out_dir = dir + "/bf16_" + name + std::to_string(bf16);
      job.progress = false;
      auto rep = Train(job, quiet);
      ASSERT_TRUE(rep.ok()) << rep.status().message();
      auc[bf16] = rep->valid.auc;
    }
    EXPECT_GT(auc[0], 0.65) << name;
    EXPECT_NEAR(auc[1], auc[0], 0.01) << name;
    EXPECT_NE(auc[1], auc[0]) << name;  // bf16 did round
  }
}

// dense_precision is a setting of the run: a model made in fp32 (as a
// checkpoint loads) trains in bf16 when the run's config says so, step for
// step as a model made in bf16 does.
TEST(TrainerImpl, TakesTheRunsDensePrecision) {
  InitBlas();
  TrainConfig fp32 = SmallConfig();
  fp32.model = "dlrm";
  fp32.bottom_mlp = {8};
  fp32.top_mlp = {8};
  TrainConfig bf16 = fp32;
  bf16.dense_precision = "bf16";
  auto params_after_steps = [&](const TrainConfig& made, const TrainConfig& run) {
    auto model = Model::Create(made, DataSpec::Criteo());
    EXPECT_TRUE(model.ok());
    auto t = TrainerImpl::Create(run, std::move(model).value(), {}, {});
    EXPECT_TRUE(t.ok());
    for (int i = 0; i < 3; ++i) EXPECT_TRUE(t.value()->Step(SomeBatch(64)).ok());
    const ParamSet& p = t.value()->model().params();
    return std::vector<float>(p.data(), p.data() + p.size());
  };
  const auto resumed = params_after_steps(fp32, bf16);
  EXPECT_EQ(resumed, params_after_steps(bf16, bf16));
  EXPECT_NE(resumed, params_after_steps(fp32, fp32));
}

TEST(TrainerImpl, TakesTheRunsSparseSettingsButNotAnotherOptimizerKind) {
  InitBlas();
  TrainConfig cfg = SmallConfig();
  auto model = Model::Create(cfg, DataSpec::Criteo());
  ASSERT_TRUE(model.ok());
  TrainConfig next = cfg;
  next.sparse_lr = 0.5f;
  next.first_order_lr = 0.25f;
  auto t = TrainerImpl::Create(next, std::move(model).value(), {}, {});
  ASSERT_TRUE(t.ok());
  Model& m = t.value()->model();
  EXPECT_EQ(m.table(m.table_index("embeddings"))->config().opt.lr, 0.5f);
  EXPECT_EQ(m.table(m.table_index("first_order"))->config().opt.lr, 0.25f);
  EXPECT_EQ(m.config().sparse_lr, 0.5f);  // and a checkpoint records it

  auto other = Model::Create(cfg, DataSpec::Criteo());
  ASSERT_TRUE(other.ok());
  TrainConfig kind = cfg;
  kind.sparse_optimizer = "sgd";
  auto refused = TrainerImpl::Create(kind, std::move(other).value(), {}, {});
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("sgd"), std::string::npos) << refused.status().message();
}

// Every row of a store, sorted by key: key, weights and optimizer state,
// metadata (last_step << 32 | count).
std::vector<std::tuple<uint64_t, std::vector<float>, uint64_t>> SortedRows(const RowStore& t) {
  std::vector<std::tuple<uint64_t, std::vector<float>, uint64_t>> all;
  auto it = t.NewIterator(64);
  RowBatch b;
  const size_t w = t.row_width();
  while (it->Next(&b).value())
    for (size_t i = 0; i < b.size(); ++i)
      all.emplace_back(b.keys[i], std::vector<float>(b.rows.begin() + i * w, b.rows.begin() + (i + 1) * w),
                       uint64_t{b.meta[i].last_step} << 32 | b.meta[i].count);
  std::sort(all.begin(), all.end());
  return all;
}

// Two checkpoints hold the same model bit for bit: dense weights and
// optimizer state, every row with its state and metadata, the counters.
void ExpectSameCheckpoint(const std::string& want_dir, const std::string& got_dir) {
  auto want = LoadCheckpoint(want_dir), got = LoadCheckpoint(got_dir);
  ASSERT_TRUE(want.ok()) << want.status().message();
  ASSERT_TRUE(got.ok()) << got.status().message();
  const ParamSet& a = want->model->params();
  const ParamSet& b = got->model->params();
  ASSERT_EQ(a.size(), b.size());
  EXPECT_EQ(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)), 0) << "dense weights differ";
  EXPECT_EQ(want->opt.step, got->opt.step);
  ASSERT_EQ(want->opt.slots.size(), got->opt.slots.size());
  for (size_t i = 0; i < want->opt.slots.size(); ++i) {
    ASSERT_EQ(want->opt.slots[i].size(), got->opt.slots[i].size());
    EXPECT_EQ(std::memcmp(want->opt.slots[i].data(), got->opt.slots[i].data(), want->opt.slots[i].size() * sizeof(float)),
              0)
        << "dense optimizer slot " << i << " differs";
  }
  ASSERT_EQ(want->model->num_tables(), got->model->num_tables());
  for (int t = 0; t < want->model->num_tables(); ++t) {
    const auto wr = SortedRows(*want->model->table(t)), gr = SortedRows(*got->model->table(t));
    ASSERT_EQ(wr.size(), gr.size()) << "table " << t;
    size_t differ = 0;
    for (size_t i = 0; i < wr.size(); ++i) {
      const auto& [wk, wrow, wmeta] = wr[i];
      const auto& [gk, grow, gmeta] = gr[i];
      if (wk != gk || wmeta != gmeta || std::memcmp(wrow.data(), grow.data(), wrow.size() * sizeof(float)) != 0)
        ++differ;
    }
    EXPECT_EQ(differ, 0u) << "rows of table " << t << " differ";
  }
  EXPECT_EQ(want->state.step, got->state.step);
  EXPECT_EQ(want->state.samples, got->state.samples);
  EXPECT_EQ(want->state.epochs_done, got->state.epochs_done);
  EXPECT_EQ(want->state.epoch_samples, got->state.epoch_samples);
}

// checkpoint_every and the mid-epoch cursor: a run killed right after a
// periodic checkpoint (in its first epoch, or in its second), resumed from
// it, ends with the model of the run that was never interrupted, bit for
// bit; the resumed run trains only the samples the killed one had not.
TEST(Fit, KilledMidEpochAndResumedEqualsTheUninterruptedRun) {
  InitBlas();
  const std::string dir = testing::TempDir() + "/fit_cursor";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  const GenOptions g = GenerateIn(dir, "", 3000, 100, 11);  // 12 steps of 256 an epoch, the last of 184
  ASSERT_FALSE(g.out.empty());
  TrainConfig cfg = SmallConfig();
  cfg.epochs = 2;
  cfg.shuffle_window = 700;  // several windows an epoch
  Logger quiet(LogLevel::kWarn);
  auto job_for = [&](const std::string& out) {
    TrainJob job;
    job.cfg = cfg;
    job.spec = DataSpec::Criteo();
    job.train_files = {g.out};
    job.out_dir = out;
    job.progress = false;
    return job;
  };
  auto straight = Train(job_for(dir + "/straight"), quiet);
  ASSERT_TRUE(straight.ok()) << straight.status().message();
  ASSERT_EQ(straight->steps, 24);

  for (int kill_at : {7, 17}) {
    SCOPED_TRACE("killed after step " + std::to_string(kill_at));
    const std::string out = dir + "/killed" + std::to_string(kill_at);
    TrainJob killed = job_for(out);
    killed.cfg.checkpoint_every = Interval{kill_at, 0};
    killed.after_checkpoint = [](const TrainerState&) { return Status::IOError("killed"); };
    auto dead = Train(killed, quiet);
    ASSERT_FALSE(dead.ok());
    EXPECT_EQ(dead.status().message(), "killed");
    auto ck = LoadCheckpoint(out);
    ASSERT_TRUE(ck.ok()) << ck.status().message();
    EXPECT_EQ(ck->state.step, kill_at);
    EXPECT_EQ(ck->state.epochs_done, kill_at / 12);
    EXPECT_EQ(ck->state.epoch_samples, uint64_t(kill_at % 12) * 256);
    EXPECT_EQ(ck->state.samples, uint64_t(kill_at / 12) * 3000 + uint64_t(kill_at % 12) * 256);

    TrainJob resume = job_for(out);  // into the same directory, as `embark train --resume DIR --out DIR`
    resume.resume_dir = out;
    auto rest = Train(resume, quiet);
    ASSERT_TRUE(rest.ok()) << rest.status().message();
    EXPECT_EQ(rest->samples, 2 * 3000 - ck->state.samples) << "the resumed run trained samples twice, or skipped some";
    EXPECT_EQ(rest->steps, 24);
    ExpectSameCheckpoint(dir + "/straight", out);
  }

  // The cursor must matter: resuming the first-epoch checkpoint as if at
  // the epoch's start (the behaviour before it) gives another model.
  {
    const std::string out = dir + "/restart";
    TrainJob killed = job_for(out);
    killed.cfg.checkpoint_every = Interval{7, 0};
    killed.after_checkpoint = [](const TrainerState&) { return Status::IOError("killed"); };
    ASSERT_FALSE(Train(killed, quiet).ok());
    auto ck = LoadCheckpoint(out);
    ASSERT_TRUE(ck.ok());
    TrainerState at_start = ck->state;
    at_start.epoch_samples = 0;
    auto t = TrainerImpl::Create(cfg, std::move(ck->model), ck->opt, at_start);
    ASSERT_TRUE(t.ok());
    TrainJob resume = job_for(out);
    auto rest = Fit(t->get(), resume, quiet);
    ASSERT_TRUE(rest.ok()) << rest.status().message();
    EXPECT_EQ(rest->samples, 2u * 3000);  // the first 7 steps trained again
    auto a = LoadCheckpoint(dir + "/straight"), b = LoadCheckpoint(out);
    ASSERT_TRUE(a.ok() && b.ok());
    EXPECT_NE(std::memcmp(a->model->params().data(), b->model->params().data(), a->model->params().size() * sizeof(float)),
              0);
  }
}

// A checkpoint_every of wall time saves as the clock says: with 1 ms, a
// run of 24 steps saves at least once before its end, each save a whole
// checkpoint holding its cursor; with steps, exactly at their multiples.
TEST(Fit, CheckpointEveryByTimeOrSteps) {
  InitBlas();
  const std::string dir = testing::TempDir() + "/fit_cadence";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  const GenOptions g = GenerateIn(dir, "", 3000, 100, 12);
  ASSERT_FALSE(g.out.empty());
  Logger quiet(LogLevel::kWarn);
  TrainJob job;
  job.cfg = SmallConfig();
  job.cfg.epochs = 2;
  job.spec = DataSpec::Criteo();
  job.train_files = {g.out};
  job.out_dir = dir + "/out";
  job.progress = false;
  std::vector<TrainerState> saves;
  job.after_checkpoint = [&](const TrainerState& s) {
    auto ck = LoadCheckpoint(job.out_dir);  // on disk, complete, with this state
    if (!ck.ok()) return ck.status();
    EXPECT_EQ(ck->state.step, s.step);
    EXPECT_EQ(ck->state.epoch_samples, s.epoch_samples);
    saves.push_back(s);
    return Status::OK();
  };
  auto r = ParseInterval("1ms");
  ASSERT_TRUE(r.ok());
  job.cfg.checkpoint_every = r.value();
  auto rep = Train(job, quiet);
  ASSERT_TRUE(rep.ok()) << rep.status().message();
  ASSERT_GE(saves.size(), 1u);
  for (const TrainerState& s : saves) {
    EXPECT_GE(s.step, 1);
    EXPECT_LE(s.step, 24);
    EXPECT_EQ(s.samples, uint64_t(s.epochs_done) * 3000 + s.epoch_samples);
  }

  saves.clear();
  job.cfg.checkpoint_every = Interval{5, 0};
  job.out_dir = dir + "/steps";
  ASSERT_TRUE(Train(job, quiet).ok());
  std::vector<int64_t> steps;
  for (const TrainerState& s : saves) steps.push_back(s.step);
  EXPECT_EQ(steps, (std::vector<int64_t>{5, 10, 15, 20}));
}

}  // namespace
}  // namespace embark
