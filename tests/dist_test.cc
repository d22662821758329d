// Distributed training without MPI: ranks are threads of this process,
// exchanging bytes through in-memory queues, so the protocol (dense
// allreduce, sparse fetch/push, sharded checkpoints, the training loop) is
// tested in every build, sanitizers included. tests/e2e/dist.sh runs the
// real thing under mpirun.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <cmath>
#include <condition_variable>
#include <deque>
#include <filesystem>
#include <functional>
#include <map>
#include <mutex>
#include <random>
#include <thread>

#include <nlohmann/json.hpp>

#include "checkpoint/checkpoint.h"
#include "dist/dense.h"
#include "dist/session.h"
#include "dist/sparse.h"
#include "gen/gen.h"
#include "test_util.h"
#include "train/trainer.h"
#include "util/fault_env.h"
#include "util/fs.h"

namespace embark {
namespace {

// N ranks in one process: box (from, to) is a FIFO of messages, and every
// Exchange pushes one message to each peer then pops one from each.
class ThreadGroup {
 public:
  explicit ThreadGroup(int n) : n_(n), box_(static_cast<size_t>(n) * n) {}

  // Runs fn(comm) on n threads, one per rank, and waits for them.
  void Run(const std::function<void(Communicator*)>& fn) {
    std::vector<std::thread> threads;
    for (int r = 0; r < n_; ++r)
      threads.emplace_back([this, r, &fn] {
        Comm c(this, r);
        fn(&c);
      });
    for (auto& t : threads) t.join();
  }

 private:
  class Comm : public Communicator {
   public:
    Comm(ThreadGroup* g, int rank) : g_(g), rank_(rank) {}
    int rank() const override { return rank_; }
    int size() const override { return g_->n_; }
    Status Exchange(const std::vector<Bytes>& send, std::vector<Bytes>* recv) override {
      const int n = g_->n_;
      recv->resize(n);
      {
        std::lock_guard<std::mutex> lk(g_->mu_);
        for (int p = 0; p < n; ++p) {
          g_->box_[rank_ * n + p].push_back(send[p]);
          if (p != rank_) bytes_sent_ += send[p].size();
        }
      }
      g_->cv_.notify_all();
      std::unique_lock<std::mutex> lk(g_->mu_);
      for (int p = 0; p < n; ++p) {
        auto& q = g_->box_[p * n + rank_];
        g_->cv_.wait(lk, [&] { return !q.empty(); });
        (*recv)[p] = std::move(q.front());
        q.pop_front();
      }
      return Status::OK();
    }
    Status Barrier() override {
      std::vector<Bytes> send(g_->n_), recv;
      return Exchange(send, &recv);
    }
    void Abort(int) override { std::abort(); }

   private:
    ThreadGroup* g_;
    int rank_;
  };

  int n_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::deque<Bytes>> box_;
};

std::vector<float> RankData(int rank, size_t n) {
  std::mt19937 rng(100 + rank);
  std::normal_distribution<float> g(0.0f, 1.0f);
  std::vector<float> v(n);
  for (auto& x : v) x = g(rng);
  return v;
}

TEST(DenseAllreduce, SumsOverRanksAndCounts) {
  const int N = 3;
  const size_t n = 1001;  // not a multiple of N: uneven slices
  std::vector<float> want(n, 0.0f);
  for (int r = 0; r < N; ++r) {
    auto d = RankData(r, n);
    for (size_t i = 0; i < n; ++i) want[i] += d[i];
  }
  for (auto c : {WireCompression::kNone, WireCompression::kFp16}) {
    ThreadGroup g(N);
    g.Run([&](Communicator* comm) {
      DenseAllreduce ar(comm, n, c);
      auto d = RankData(comm->rank(), n);
      double count = comm->rank() + 1;
      ASSERT_TRUE(ar.Sum(d.data(), &count).ok());
      EXPECT_EQ(count, 6.0);
      for (size_t i = 0; i < n; ++i) {
        if (c == WireCompression::kNone) {
          EXPECT_NEAR(d[i], want[i], 1e-5f) << i;
        } else {
          EXPECT_NEAR(d[i], want[i], 2e-2f) << i;  // fp16 keeps 11 bits
        }
      }
    });
  }
}

// One bit per value loses most of a single step's gradient, but error
// feedback carries what was dropped into the next steps: the mean over many
// steps of the same gradients approaches their true sum.
TEST(DenseAllreduce, OneBitWithErrorFeedbackConvergesOnAverage) {
  const int N = 2, steps = 400;
  const size_t n = 600;
  std::vector<float> want(n, 0.0f);
  for (int r = 0; r < N; ++r) {
    auto d = RankData(r, n);
    for (size_t i = 0; i < n; ++i) want[i] += d[i];
  }
  ThreadGroup g(N);
  g.Run([&](Communicator* comm) {
    DenseAllreduce ar(comm, n, WireCompression::kOneBit);
    std::vector<double> mean(n, 0.0);
    double first_err = 0;
    for (int s = 0; s < steps; ++s) {
      auto d = RankData(comm->rank(), n);
      double count = 1;
      ASSERT_TRUE(ar.Sum(d.data(), &count).ok());
      for (size_t i = 0; i < n; ++i) mean[i] += d[i] / steps;
      if (s == 0)
        for (size_t i = 0; i < n; ++i) first_err += std::fabs(d[i] - want[i]) / n;
    }
    double err = 0, scale = 0;
    for (size_t i = 0; i < n; ++i) {
      err += std::fabs(mean[i] - want[i]) / n;
      scale += std::fabs(want[i]) / n;
    }
    EXPECT_GT(first_err, 0.3 * scale);  // one step alone is far off
    EXPECT_LT(err, 0.05 * scale);       // the running mean is close
  });
}

TableConfig SmallTable(int dim) {
  TableConfig c;
  c.dim = dim;
  c.opt.kind = SparseOptKind::kAdagrad;
  c.opt.lr = 0.1f;
  return c;
}

// Fetch and push over 3 ranks do what one table does with the whole batch:
// rows start as that table's, and a key's gradients from every rank are
// summed (in rank order) and applied once.
// A step reaches only the rows staged for it: any other key is an error
// naming it, never a zero row or a dropped gradient.
TEST(StagedRows, KeysNotStagedAreErrors) {
  StepRows step;
  step.keys = {3, 5};
  step.rows = {{1, 2, 3, 4}};
  step.grads = {{0, 0, 0, 0}};
  step.Index();
  StagedRows staged({2});
  float out[2];
  uint64_t missing = 9;
  EXPECT_FALSE(staged.Gather(0, &missing, 1, out, true).ok());  // nothing staged yet
  staged.set_step(&step);
  uint64_t five = 5;
  ASSERT_TRUE(staged.Gather(0, &five, 1, out, true).ok());
  EXPECT_EQ(out[0], 3.0f);
  EXPECT_EQ(out[1], 4.0f);
  Status s = staged.Gather(0, &missing, 1, out, true);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("key 9 was not staged"), std::string::npos) << s.message();
  const float g[2] = {0.5f, -1};
  ASSERT_TRUE(staged.Scatter(0, &five, 1, g).ok());
  ASSERT_TRUE(staged.Scatter(0, &five, 1, g).ok());
  EXPECT_EQ(step.grads[0], (std::vector<float>{0, 0, 1, -2}));  // summed, not applied
  s = staged.Scatter(0, &missing, 1, g);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("key 9 was not staged"), std::string::npos) << s.message();
}

TEST(SparseExchange, MatchesOneTableWithTheWholeBatch) {
  const int N = 3, D = 4;
  auto keys_of = [](int rank) {
    std::vector<uint64_t> k;
    for (uint64_t i = 0; i < 300; ++i) k.push_back(i * 7 + rank * 100);  // overlapping across ranks
    std::sort(k.begin(), k.end());
    k.erase(std::unique(k.begin(), k.end()), k.end());
    return k;
  };
  auto grad_of = [](int rank, uint64_t key, int j) { return 0.01f * static_cast<float>((key * 31 + rank * 7 + j) % 13) - 0.06f; };
  // The reference: one table, gradients summed over ranks in rank order.
  auto ref = NewMemoryStore(SmallTable(D));
  std::map<uint64_t, std::vector<float>> sum;
  for (int r = 0; r < N; ++r)
    for (uint64_t k : keys_of(r)) {
      auto& s = sum[k];
      s.resize(D, 0.0f);
      for (int j = 0; j < D; ++j) s[j] += grad_of(r, k, j);
    }
  std::vector<uint64_t> all;
  std::vector<float> gall;
  for (auto& [k, g] : sum) {
    all.push_back(k);
    gall.insert(gall.end(), g.begin(), g.end());
  }
  std::vector<float> before(all.size() * D), after(all.size() * D);
  ASSERT_TRUE(ref->Get(all.data(), all.size(), before.data(), Access::kTrain).ok());
  ASSERT_TRUE(ref->Update(all.data(), all.size(), gall.data()).ok());
  ASSERT_TRUE(ref->Get(all.data(), all.size(), after.data(), Access::kRead).ok());

  ThreadGroup g(N);
  g.Run([&](Communicator* comm) {
    auto local = NewMemoryStore(SmallTable(D));
    SparseExchange ex(comm, {local.get()});
    StepRows step;
    auto mine = keys_of(comm->rank());
    ASSERT_TRUE(ex.Fetch(mine, true, true, &step).ok());
    EXPECT_TRUE(step.any);
    for (size_t i = 0; i < mine.size(); ++i) {
      const size_t a = std::lower_bound(all.begin(), all.end(), mine[i]) - all.begin();
      for (int j = 0; j < D; ++j) ASSERT_EQ(step.rows[0][i * D + j], before[a * D + j]);
      for (int j = 0; j < D; ++j) step.grads[0][i * D + j] = grad_of(comm->rank(), mine[i], j);
    }
    ASSERT_TRUE(ex.Push(step).ok());
    // Every rank owns a part of the rows only.
    EXPECT_LT(local->stats().rows, all.size());
    StepRows again;
    ASSERT_TRUE(ex.Fetch(mine, false, false, &again).ok());
    EXPECT_FALSE(again.any);
    for (size_t i = 0; i < mine.size(); ++i) {
      const size_t a = std::lower_bound(all.begin(), all.end(), mine[i]) - all.begin();
      for (int j = 0; j < D; ++j) ASSERT_EQ(again.rows[0][i * D + j], after[a * D + j]);
    }
  });
}

std::unique_ptr<Model> SmallModel() {
  InitBlas();
  TrainConfig cfg;
  cfg.model = "deepfm";
  cfg.embedding_dim = 4;
  cfg.mlp = {8};
  return Model::Create(cfg, DataSpec::Criteo()).value();
}

// Four ranks save their shards of a table; the checkpoint loads whole into
// one process and split into two.
TEST(Checkpoint, ShardedSaveLoadsIntoAnyNumberOfRanks) {
  const std::string dir = testing::TempDir() + "/sharded";
  std::vector<uint64_t> keys;
  for (uint64_t k = 1; k <= 500; ++k) keys.push_back(k * 977);
  ThreadGroup g(4);
  g.Run([&](Communicator* comm) {
    auto m = SmallModel();
    RowStore* emb = m->table(m->table_index("embeddings"));
    RowStore* first = m->table(m->table_index("first_order"));
    std::vector<float> row(emb->row_width()), w(first->row_width());
    for (uint64_t k : keys) {
      if (OwnerOf(k, 4) != comm->rank()) continue;
      for (size_t j = 0; j < row.size(); ++j) row[j] = static_cast<float>(k % 101) + j;
      w[0] = static_cast<float>(k % 7);
      ASSERT_TRUE(emb->Put(&k, 1, row.data(), nullptr).ok());
      ASSERT_TRUE(first->Put(&k, 1, w.data(), nullptr).ok());
    }
    Status s = SaveCheckpoint(dir, *m, DenseOptState{}, TrainerState{1, 10, 100, 0.5}, comm);
    ASSERT_TRUE(s.ok()) << s.message();
  });
  EXPECT_FALSE(std::filesystem::exists(dir + ".tmp-sharded"));
  auto one = LoadCheckpoint(dir);
  ASSERT_TRUE(one.ok()) << one.status().message();
  for (int t = 0; t < one->model->num_tables(); ++t) EXPECT_EQ(one->model->table(t)->stats().rows, keys.size());
  EXPECT_EQ(one->state.step, 10);
  size_t total = 0;
  for (int r = 0; r < 2; ++r) {
    auto part = LoadCheckpoint(dir, r, 2);
    ASSERT_TRUE(part.ok()) << part.status().message();
    const RowStore* emb = part->model->table(part->model->table_index("embeddings"));
    auto it = emb->NewIterator();
    RowBatch b;
    while (it->Next(&b).value()) {
      for (size_t i = 0; i < b.size(); ++i) {
        EXPECT_EQ(OwnerOf(b.keys[i], 2), r);
        EXPECT_EQ(b.rows[i * emb->row_width() + 1], static_cast<float>(b.keys[i] % 101) + 1);
      }
    }
    total += emb->stats().rows;
  }
  EXPECT_EQ(total, keys.size());
  // Loaded by as many ranks as saved it, each rank reads only its own shards.
  for (int r = 0; r < 4; ++r) {
    FaultEnv env(Env::Posix());
    auto part = LoadCheckpoint(dir, r, 4, &env);
    ASSERT_TRUE(part.ok()) << part.status().message();
    size_t owned = 0;
    for (uint64_t k : keys) owned += OwnerOf(k, 4) == r;
    for (int t = 0; t < part->model->num_tables(); ++t) EXPECT_EQ(part->model->table(t)->stats().rows, owned);
    std::vector<std::string> shard_reads;
    for (const auto& path : env.reads())
      if (path.find("-of-4.bin") != std::string::npos) shard_reads.push_back(path);
    const std::string own = "-" + std::to_string(r) + "-of-4.bin";
    std::sort(shard_reads.begin(), shard_reads.end());
    EXPECT_EQ(shard_reads, (std::vector<std::string>{dir + "/embeddings" + own, dir + "/first_order" + own}));
  }
  // Written before the first-order rename, the shards were wide-R-of-4.bin:
  // they load the same.
  {
    const std::string old_dir = dir + "_former_names";
    std::filesystem::remove_all(old_dir);
    std::filesystem::copy(dir, old_dir);
    nlohmann::json manifest = nlohmann::json::parse(fs::ReadFile(old_dir + "/MANIFEST.json").value());
    nlohmann::json renamed = nlohmann::json::object();
    for (auto& [name, meta] : manifest["files"].items()) {
      std::string now = name;
      if (name.rfind("first_order-", 0) == 0) {
        now = "wide-" + name.substr(std::string("first_order-").size());
        std::filesystem::rename(old_dir + "/" + name, old_dir + "/" + now);
      }
      renamed[now] = meta;
    }
    manifest["files"] = renamed;
    ASSERT_TRUE(fs::WriteFileAtomic(old_dir + "/MANIFEST.json", manifest.dump()).ok());
    for (int r = 0; r < 4; ++r) {
      auto part = LoadCheckpoint(old_dir, r, 4);
      ASSERT_TRUE(part.ok()) << part.status().message();
      const int t = part->model->table_index("first_order");
      ASSERT_GE(t, 0);
      size_t owned = 0;
      for (uint64_t k : keys) owned += OwnerOf(k, 4) == r;
      EXPECT_EQ(part->model->table(t)->stats().rows, owned);
    }
    auto whole = LoadCheckpoint(old_dir);
    ASSERT_TRUE(whole.ok()) << whole.status().message();
    EXPECT_EQ(whole->model->table(whole->model->table_index("first_order"))->stats().rows, keys.size());
  }
  // A shard missing from the directory is an error naming it, not a partial model.
  std::filesystem::remove(dir + "/embeddings-2-of-4.bin");
  auto broken = LoadCheckpoint(dir);
  ASSERT_FALSE(broken.ok());
  EXPECT_NE(broken.status().message().find("embeddings-2-of-4.bin"), std::string::npos) << broken.status().message();
}

// The training loop: with staleness 0 and each rank training on its slice
// of every global batch, 2 and 3 ranks train the model 1 rank trains, up to
// the order of floating-point sums.
TEST(DistributedTraining, RanksTrainTheModelOneProcessTrains) {
  const std::string dir = testing::TempDir();
  GenOptions go;
  go.rows = 3000;
  go.valid_rows = 1000;
  go.out = dir + "/train.tsv";
  go.valid_out = dir + "/valid.tsv";
  go.max_vocab = 2000;
  ASSERT_TRUE(Generate(go).ok());
  auto job_for = [&](const std::string& out) {
    TrainJob job;
    job.cfg.model = "deepfm";
    job.cfg.embedding_dim = 4;
    job.cfg.mlp = {16};
    job.cfg.batch_size = 256;
    job.cfg.deterministic = true;
    job.cfg.shuffle_window = 0;
    job.cfg.epochs = 2;
    job.spec = DataSpec::Criteo();
    job.train_files = {go.out};
    job.valid_files = {go.valid_out};
    job.out_dir = out;
    job.progress = false;
    job.dist.staleness = 0;
    return job;
  };
  Logger quiet(LogLevel::kError);
  auto one = Train(job_for(dir + "/one"), quiet);
  ASSERT_TRUE(one.ok()) << one.status().message();

  auto predict = [&](const std::string& ck) {
    auto m = LoadCheckpoint(ck).value();
    ReadOptions ro;
    StreamOptions so;
    so.batch_size = 4096;
    auto stream = OpenStream({go.valid_out}, m.model->spec(), ro, so);
    ThreadPool pool(1);
    std::vector<float> p;
    EXPECT_TRUE(Score(*m.model, stream.get(), &pool, [&](const float* q, const float*, size_t n) {
                  p.insert(p.end(), q, q + n);
                }).ok());
    return p;
  };
  const auto want = predict(dir + "/one");
  for (int N : {2, 3}) {
    const std::string out = dir + "/ranks" + std::to_string(N);
    std::vector<TrainReport> reps(N);
    ThreadGroup g(N);
    g.Run([&](Communicator* comm) {
      TrainJob job = job_for(out);
      job.comm = comm;
      auto r = Train(job, quiet);
      ASSERT_TRUE(r.ok()) << r.status().message();
      reps[comm->rank()] = *r;
    });
    EXPECT_EQ(reps[0].global_samples, one->samples);
    EXPECT_EQ(reps[0].ranks, N);
    EXPECT_NEAR(reps[0].valid.auc, one->valid.auc, 1e-3);
    EXPECT_EQ(reps[0].valid.auc, reps[N - 1].valid.auc);  // every rank evaluates the same model
    const auto got = predict(out);
    ASSERT_EQ(got.size(), want.size());
    float worst = 0;
    for (size_t i = 0; i < got.size(); ++i) worst = std::max(worst, std::fabs(got[i] - want[i]));
    EXPECT_LT(worst, 1e-4f) << N << " ranks";
  }
}

// The mid-epoch cursor across ranks. Deterministic ranks read the whole
// input in one order and train their slice of each global batch: the
// cursor counts global samples, and 2 ranks killed after a checkpoint
// mid-epoch and resumed (on 2 ranks) end with the straight run's model.
// Ranks reading their own chunks keep no cursor. A time cadence is
// refused under MPI (the ranks must save at the same step).
TEST(DistributedTraining, MidEpochCursorAcrossRanks) {
  const std::string dir = testing::TempDir() + "/dist_cursor";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  GenOptions go;
  go.rows = 3000;
  go.valid_rows = 300;
  go.out = dir + "/train.tsv";
  go.valid_out = dir + "/valid.tsv";
  go.max_vocab = 2000;
  ASSERT_TRUE(Generate(go).ok());
  auto job_for = [&](const std::string& out) {
    TrainJob job;
    job.cfg.model = "fm";
    job.cfg.embedding_dim = 4;
    job.cfg.batch_size = 256;
    job.cfg.deterministic = true;
    job.cfg.shuffle_window = 700;
    job.cfg.epochs = 2;
    job.spec = DataSpec::Criteo();
    job.train_files = {go.out};
    job.out_dir = out;
    job.progress = false;
    job.dist.staleness = 0;
    return job;
  };
  Logger quiet(LogLevel::kError);
  struct Ranks {
    std::vector<Status> st;
    std::vector<TrainReport> rep;
  };
  auto run = [&](int ranks, const std::function<void(TrainJob*)>& edit) {
    Ranks out{std::vector<Status>(ranks), std::vector<TrainReport>(ranks)};
    ThreadGroup g(ranks);
    g.Run([&](Communicator* comm) {
      TrainJob job = job_for("");
      edit(&job);
      job.comm = comm;
      auto r = Train(job, quiet);
      out.st[comm->rank()] = r.status();
      if (r.ok()) out.rep[comm->rank()] = *r;
    });
    return out;
  };
  auto straight = run(2, [&](TrainJob* j) { j->out_dir = dir + "/straight"; });
  ASSERT_TRUE(straight.st[0].ok()) << straight.st[0].message();

  auto killed = run(2, [&](TrainJob* j) {
    j->out_dir = dir + "/killed";
    j->cfg.checkpoint_every = Interval{5, 0};
    j->after_checkpoint = [](const TrainerState&) { return Status::IOError("killed"); };
  });
  ASSERT_FALSE(killed.st[0].ok());
  ASSERT_FALSE(killed.st[1].ok());
  auto ck = LoadCheckpoint(dir + "/killed");
  ASSERT_TRUE(ck.ok()) << ck.status().message();
  EXPECT_EQ(ck->state.step, 5);
  EXPECT_EQ(ck->state.epochs_done, 0);
  EXPECT_EQ(ck->state.epoch_samples, 5u * 256);  // global samples

  auto resumed = run(2, [&](TrainJob* j) {
    j->out_dir = dir + "/killed";
    j->resume_dir = dir + "/killed";
  });
  ASSERT_TRUE(resumed.st[0].ok()) << resumed.st[0].message();
  EXPECT_EQ(resumed.rep[0].global_samples, 2u * 3000 - 5 * 256);
  auto a = LoadCheckpoint(dir + "/straight"), b = LoadCheckpoint(dir + "/killed");
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(b->state.samples, 2u * 3000);
  ASSERT_EQ(a->model->params().size(), b->model->params().size());
  EXPECT_EQ(std::memcmp(a->model->params().data(), b->model->params().data(),
                        a->model->params().size() * sizeof(float)),
            0)
      << "2 ranks killed and resumed differ from 2 ranks never killed";

  // Ranks on their own chunks: a mid-epoch checkpoint holds no cursor.
  auto own = run(2, [&](TrainJob* j) {
    j->out_dir = dir + "/own";
    j->train_files = {go.out, go.valid_out};  // a file each (less than a chunk): every rank has input
    j->cfg.deterministic = false;
    j->cfg.threads = 1;
    j->cfg.checkpoint_every = Interval{3, 0};
    j->after_checkpoint = [](const TrainerState&) { return Status::IOError("killed"); };
  });
  ASSERT_FALSE(own.st[0].ok());
  auto own_ck = LoadCheckpoint(dir + "/own");
  ASSERT_TRUE(own_ck.ok()) << own_ck.status().message();
  EXPECT_EQ(own_ck->state.step, 3);
  EXPECT_EQ(own_ck->state.epoch_samples, 0u);

  auto timed = run(2, [&](TrainJob* j) {
    j->out_dir = dir + "/timed";
    j->cfg.checkpoint_every = Interval{0, 30};
  });
  ASSERT_FALSE(timed.st[0].ok());
  EXPECT_NE(timed.st[0].message().find("under MPI give it in steps"), std::string::npos) << timed.st[0].message();
}

}  // namespace
}  // namespace embark
