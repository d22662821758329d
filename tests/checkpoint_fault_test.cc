// Checkpoint saves under injected faults: every mutating file-system
// operation of a save is failed in turn (EIO, ENOSPC, and a short write for
// each append), and each time the previous checkpoint must survive whole.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <set>

#include "checkpoint/checkpoint.h"
#include "test_util.h"
#include "util/fault_env.h"
#include "util/fs.h"

namespace embark {
namespace {

namespace sfs = std::filesystem;

Batch OneBatch(int salt) {
  Batch b;
  b.Reset(13, 26);
  for (int i = 0; i < 4; ++i) {
    b.labels.push_back((i + salt) % 2);
    for (int d = 0; d < 13; ++d) b.dense.push_back(0.1f * d + salt);
    for (int f = 0; f < 26; ++f) {
      b.keys.push_back(f * 100 + i + salt);
      b.values.push_back(1);
      b.offsets.push_back(static_cast<uint32_t>(b.keys.size()));
    }
  }
  return b;
}

// A tiny DeepFM after one step on a batch that depends on `salt`.
std::unique_ptr<Model> TinyModel(int salt) {
  InitBlas();
  TrainConfig cfg;
  cfg.model = "deepfm";
  cfg.embedding_dim = 4;
  cfg.mlp = {8};
  auto m = Model::Create(cfg, DataSpec::Criteo()).value();
  Batch b = OneBatch(salt);
  auto ws = m->NewWorkspace();
  std::vector<float> z(4), dl(4, 0.25f), g(m->params().size());
  EXPECT_TRUE(m->Forward(b, 0, 4, true, m->rows(), ws.get(), z.data()).ok());
  m->Backward(b, 0, 4, dl.data(), ws.get(), g.data());
  EXPECT_TRUE(m->ApplySparse(ws.get(), 1.0f, m->rows()).ok());
  for (size_t i = 0; i < g.size(); ++i) m->params().data()[i] -= 0.1f * g[i];
  return m;
}

std::vector<float> Scores(const Model& m) {
  Batch b = OneBatch(0);
  auto ws = m.NewWorkspace();
  std::vector<float> z(4);
  EXPECT_TRUE(m.Forward(b, 0, 4, false, nullptr, ws.get(), z.data()).ok());
  return z;
}

std::vector<std::string> Entries(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& e : sfs::directory_iterator(dir)) out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

TEST(CheckpointFaults, EveryFailedOperationLeavesThePreviousCheckpoint) {
  auto old_model = TinyModel(0), new_model = TinyModel(7);
  const std::vector<float> old_scores = Scores(*old_model), new_scores = Scores(*new_model);
  ASSERT_NE(old_scores, new_scores);
  const std::string root = testing::TempDir() + "/faults";
  const std::string pristine = root + "/pristine";
  ASSERT_TRUE(SaveCheckpoint(pristine, *old_model, {}, {1, 1, 1, 0}).ok());

  // The parent directory, afresh, holding a copy of the old checkpoint as
  // `ck`; always the same path, so that operations match across runs.
  auto fresh = [&](std::string* parent) {
    *parent = root + "/case";
    sfs::remove_all(*parent);
    sfs::create_directories(*parent);
    sfs::copy(pristine, *parent + "/ck", sfs::copy_options::recursive);
  };

  // Count the operations of a save over an existing checkpoint.
  FaultEnv env(Env::Posix());
  std::string parent;
  fresh(&parent);
  env.FailOp(0, Fault::kNone);
  ASSERT_TRUE(SaveCheckpoint(parent + "/ck", *new_model, {}, {2, 2, 2, 0}, nullptr, &env).ok());
  const std::vector<FaultEnv::Op> ops = env.ops();
  ASSERT_GT(ops.size(), 20u);
  std::set<FaultEnv::OpKind> kinds;
  for (const auto& op : ops) kinds.insert(op.kind);
  for (auto k : {FaultEnv::OpKind::kCreate, FaultEnv::OpKind::kAppend, FaultEnv::OpKind::kSync,
                 FaultEnv::OpKind::kClose, FaultEnv::OpKind::kRename, FaultEnv::OpKind::kRenameExchange,
                 FaultEnv::OpKind::kRemoveAll, FaultEnv::OpKind::kMkdir, FaultEnv::OpKind::kSyncDir})
    EXPECT_TRUE(kinds.count(k)) << FaultEnv::OpName(k);

  int failed = 0, committed = 0;
  for (Fault fault : {Fault::kIOError, Fault::kNoSpace, Fault::kShortWrite}) {
    for (size_t k = 1; k <= ops.size(); ++k) {
      const FaultEnv::Op& op = ops[k - 1];
      if (fault == Fault::kShortWrite && op.kind != FaultEnv::OpKind::kAppend) continue;
      const std::string what = std::string(FaultName(fault)) + " at operation " + std::to_string(k) + " (" +
                               FaultEnv::OpName(op.kind) + " " + op.path + ")";
      fresh(&parent);
      const std::string dir = parent + "/ck";
      env.FailOp(k, fault);
      Status s = SaveCheckpoint(dir, *new_model, {}, {2, 2, 2, 0}, nullptr, &env);
      ASSERT_TRUE(env.injected()) << what;
      auto loaded = LoadCheckpoint(dir);
      ASSERT_TRUE(loaded.ok()) << what << ": " << loaded.status().message();
      if (!s.ok()) {
        ++failed;
        // (a) the error names the file or directory, (b) the old checkpoint
        // is intact, (c) no staging directory or temporary file is left.
        EXPECT_NE(s.message().find(op.path), std::string::npos) << what << ": " << s.message();
        EXPECT_EQ(Scores(*loaded->model), old_scores) << what;
        EXPECT_EQ(loaded->state.epochs_done, 1) << what;
        EXPECT_EQ(Entries(parent), std::vector<std::string>{"ck"}) << what;
        EXPECT_EQ(Entries(dir), Entries(pristine)) << what;
      } else {
        // Only removing the previous checkpoint after the swap may fail
        // without failing the save: the new one is in place, and the next
        // save into the same place removes the leftover.
        ++committed;
        EXPECT_EQ(op.kind, FaultEnv::OpKind::kRemoveAll) << what;
        EXPECT_EQ(k, ops.size()) << what;
        EXPECT_EQ(Scores(*loaded->model), new_scores) << what;
        ASSERT_TRUE(SaveCheckpoint(dir, *new_model, {}, {3, 3, 3, 0}).ok());
        EXPECT_EQ(Entries(parent), std::vector<std::string>{"ck"}) << what;
      }
    }
  }
  EXPECT_GT(failed, 0);
  EXPECT_LE(committed, 2);  // the last operation, under EIO and ENOSPC
}

// A read error at any point of a load (opening a file, reading it whole, any
// block of a table file) fails the load with the path and the system's
// reason, returns no model, and leaves the checkpoint as it was: the next
// load gives the same scores.
TEST(CheckpointFaults, EveryFailedReadFailsTheLoadCleanly) {
  auto model = TinyModel(3);
  const std::vector<float> scores = Scores(*model);
  const std::string dir = testing::TempDir() + "/read_faults/ck";
  sfs::remove_all(dir);
  ASSERT_TRUE(SaveCheckpoint(dir, *model, {}, {1, 1, 1, 0}).ok());
  FaultEnv env(Env::Posix());
  env.FailRead(0);
  ASSERT_TRUE(LoadCheckpoint(dir, 0, 1, &env).ok());
  const uint64_t reads = env.read_ops();
  ASSERT_GE(reads, 6u);  // manifest, config, spec, dense, trainer state, tables
  std::set<std::string> paths;
  for (uint64_t k = 1; k <= reads; ++k) {
    env.FailRead(k);
    auto loaded = LoadCheckpoint(dir, 0, 1, &env);
    ASSERT_FALSE(loaded.ok()) << "read " << k;
    const std::string& msg = loaded.status().message();
    EXPECT_NE(msg.find("Input/output error (injected)"), std::string::npos) << "read " << k << ": " << msg;
    EXPECT_NE(msg.find(dir + "/"), std::string::npos) << "read " << k << ": " << msg;
    paths.insert(env.reads().back());
  }
  EXPECT_GE(paths.size(), 5u);
  env.FailRead(0);
  auto again = LoadCheckpoint(dir, 0, 1, &env);
  ASSERT_TRUE(again.ok()) << again.status().message();
  EXPECT_EQ(Scores(*again->model), scores);
}

// A save killed midway leaves DIR.tmp-<pid>; the next save into the same
// parent removes it once that process is gone, and keeps a live process's.
// A pid that names no live process.
pid_t DeadPid() {
  pid_t child = ::fork();
  if (child == 0) ::_exit(0);
  EXPECT_GT(child, 0);
  ::waitpid(child, nullptr, 0);
  return child;
}

TEST(CheckpointFaults, StaleStagingOfDeadProcessesIsRemoved) {
  const std::string parent = testing::TempDir() + "/stale";
  sfs::create_directories(parent);
  const pid_t child = DeadPid(), other_child = DeadPid();
  const std::string dead = parent + "/ck.tmp-" + std::to_string(child);
  const std::string alive = parent + "/ck.tmp-1";  // init, always running
  const std::string other = parent + "/other.tmp-" + std::to_string(child);
  // Named like a staging directory, but holding a file a save never writes.
  const std::string users = parent + "/ck.tmp-" + std::to_string(other_child);
  for (const auto& d : {dead, alive, other, users}) {
    sfs::create_directories(d);
    ASSERT_TRUE(fs::WriteFileAtomic(d + "/dense.bin", "partial").ok());
  }
  ASSERT_TRUE(fs::WriteFileAtomic(dead + "/embeddings-0-of-2.bin.tmp.77", "partial").ok());
  ASSERT_TRUE(fs::WriteFileAtomic(users + "/notes.txt", "keep me").ok());
  // A plain file under such a name is not a staging directory either.
  const std::string file = parent + "/ck.tmp-" + std::to_string(DeadPid());
  ASSERT_TRUE(fs::WriteFileAtomic(file, "a user's file").ok());
  auto m = TinyModel(0);
  ASSERT_TRUE(SaveCheckpoint(parent + "/ck", *m, {}, {}).ok());
  EXPECT_FALSE(sfs::exists(dead));
  EXPECT_TRUE(sfs::exists(alive));
  EXPECT_TRUE(sfs::exists(other));
  EXPECT_EQ(fs::ReadFile(users + "/notes.txt").value(), "keep me");
  EXPECT_EQ(fs::ReadFile(file).value(), "a user's file");
}

// A save replaces only a checkpoint: what else is at the path stays whole.
TEST(CheckpointFaults, SaveNeverReplacesWhatIsNotACheckpoint) {
  const std::string parent = testing::TempDir() + "/notours";
  sfs::create_directories(parent + "/docs/sub");
  ASSERT_TRUE(fs::WriteFileAtomic(parent + "/docs/sub/thesis.tex", "years of work").ok());
  ASSERT_TRUE(fs::WriteFileAtomic(parent + "/data.tsv", "0\t1\n").ok());
  auto m = TinyModel(0);
  Status s = SaveCheckpoint(parent + "/docs", *m, {}, {});
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("'" + parent + "/docs' exists and is not an embark checkpoint (it holds 'sub')"),
            std::string::npos)
      << s.message();
  EXPECT_EQ(fs::ReadFile(parent + "/docs/sub/thesis.tex").value(), "years of work");
  s = SaveCheckpoint(parent + "/data.tsv", *m, {}, {});
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("is not a directory"), std::string::npos) << s.message();
  EXPECT_EQ(fs::ReadFile(parent + "/data.tsv").value(), "0\t1\n");
  // A checkpoint is replaced, a calibrated one (calibration.json) too; one
  // that someone added a file to is not.
  ASSERT_TRUE(SaveCheckpoint(parent + "/ck", *m, {}, {}).ok());
  PlattScaling c;
  c.a = 0.9;
  c.samples = 5000;
  m->set_calibration(c);
  ASSERT_TRUE(SaveCheckpoint(parent + "/ck", *m, {}, {}).ok());
  ASSERT_TRUE(sfs::exists(parent + "/ck/calibration.json"));
  ASSERT_TRUE(SaveCheckpoint(parent + "/ck", *m, {}, {1, 1, 1, 0}).ok());
  ASSERT_TRUE(fs::WriteFileAtomic(parent + "/ck/notes.md", "mine").ok());
  EXPECT_FALSE(SaveCheckpoint(parent + "/ck", *m, {}, {}).ok());
  EXPECT_EQ(fs::ReadFile(parent + "/ck/notes.md").value(), "mine");
  // No staging directory is left by a refused save.
  for (const auto& e : sfs::directory_iterator(parent))
    EXPECT_EQ(e.path().filename().string().find(".tmp-"), std::string::npos) << e.path();
}

// Errors of the injected kinds name their path.
TEST(FaultEnv, ShortWriteWritesPartThenFailsNamingThePath) {
  const std::string path = testing::TempDir() + "/short.bin";
  FaultEnv env(Env::Posix());
  env.FailOp(2, Fault::kShortWrite);  // 1: create, 2: append
  auto f = env.NewWritableFile(path);
  ASSERT_TRUE(f.ok());
  Status s = f.value()->Append("0123456789");
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find(path), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("short write"), std::string::npos) << s.message();
  ASSERT_TRUE(f.value()->Close().ok());
  EXPECT_EQ(fs::ReadFile(path).value(), "01234");
  ASSERT_EQ(env.ops().size(), 3u);
  EXPECT_EQ(env.ops()[2].kind, FaultEnv::OpKind::kClose);
  env.FailOp(1, Fault::kIOError);
  s = env.RenameFile(path, path + ".x");
  EXPECT_NE(s.message().find(path + ".x"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("Input/output error"), std::string::npos) << s.message();
  EXPECT_TRUE(sfs::exists(path));
}

}  // namespace
}  // namespace embark
