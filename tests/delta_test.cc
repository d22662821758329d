#include "checkpoint/delta.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>

#include "checkpoint/checkpoint.h"
#include "test_util.h"
#include "util/fs.h"

namespace embark {
namespace {

namespace sfs = std::filesystem;

std::unique_ptr<Model> SmallModel() {
  TrainConfig cfg;
  cfg.model = "fm";
  cfg.embedding_dim = 4;
  return Model::Create(cfg, DataSpec::Criteo()).value();
}

// Updates every table's rows of `keys` with a gradient of `g`, and nudges
// the dense weights, as a training step would.
void Train(Model* m, const std::vector<uint64_t>& keys, float g) {
  for (int t = 0; t < m->num_tables(); ++t) {
    std::vector<float> grads(keys.size() * m->table(t)->dim(), g);
    ASSERT_TRUE(m->table(t)->Update(keys.data(), keys.size(), grads.data()).ok());
  }
  for (size_t i = 0; i < m->params().size(); ++i) m->params().data()[i] += g * 0.001f * static_cast<float>(i % 7);
}

// Every row of every table, in key order.
std::vector<std::map<uint64_t, std::vector<float>>> Rows(const Model& m) {
  std::vector<std::map<uint64_t, std::vector<float>>> out(m.num_tables());
  for (int t = 0; t < m.num_tables(); ++t) {
    auto it = m.table(t)->NewIterator();
    RowBatch b;
    const size_t w = m.table(t)->row_width();
    while (it->Next(&b).value())
      for (size_t i = 0; i < b.size(); ++i)
        out[t][b.keys[i]] = std::vector<float>(b.rows.begin() + i * w, b.rows.begin() + (i + 1) * w);
  }
  return out;
}

std::vector<float> Dense(const Model& m) { return {m.params().data(), m.params().data() + m.params().size()}; }

class DeltaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::TempDir() + "/online";
    sfs::remove_all(dir_);
    model_ = SmallModel();
    Train(model_.get(), {1, 2, 3, 4}, 0.5f);
    state_.step = 10;
    state_.samples = 100;
    state_.snapshot_id = "snap-1";
    ASSERT_TRUE(SaveCheckpoint(dir_, *model_, opt_, state_).ok());
  }
  // Trains `keys` and writes delta `seq` holding them.
  void Delta(uint64_t seq, const std::vector<uint64_t>& keys, const std::string& base = "snap-1") {
    Train(model_.get(), keys, 0.25f * static_cast<float>(seq));
    DeltaInfo info;
    info.seq = seq;
    info.base = base;
    info.written_unix = 1e9;
    info.newest_sample_unix = 1e9 - 1;
    info.state = state_;
    info.state.step = 10 + static_cast<int64_t>(seq);
    info.state.stream_position = R"({"file":"part-1","offset":)" + std::to_string(seq * 100) + "}";
    std::vector<std::vector<uint64_t>> k(model_->num_tables(), keys);
    auto w = WriteDelta(dir_, *model_, k, opt_, info);
    ASSERT_TRUE(w.ok()) << w.status().message();
  }
  std::string dir_;
  std::unique_ptr<Model> model_;
  DenseOptState opt_;
  TrainerState state_;
};

TEST_F(DeltaTest, SnapshotPlusDeltasLoadsAsTheTrainedModel) {
  Delta(1, {2, 5, 6});
  Delta(2, {6, 7});
  EXPECT_EQ(ListDeltas(dir_).value(), (std::vector<uint64_t>{1, 2}));
  auto ck = LoadCheckpoint(dir_);
  ASSERT_TRUE(ck.ok()) << ck.status().message();
  EXPECT_TRUE(ck->delta_error.ok()) << ck->delta_error.message();
  EXPECT_EQ(ck->deltas_applied, 2u);
  EXPECT_EQ(Rows(*ck->model), Rows(*model_));
  EXPECT_EQ(Dense(*ck->model), Dense(*model_));
  EXPECT_EQ(ck->state.delta_seq, 2u);
  EXPECT_EQ(ck->state.step, 12);
  EXPECT_EQ(ck->state.snapshot_id, "snap-1");
  EXPECT_EQ(ck->state.stream_position, R"({"file":"part-1","offset":200})");
}

// A delta's trainer.json holds the counters, not the history: the loaded
// model keeps its snapshot's history.json with the deltas' counters.
TEST_F(DeltaTest, DeltasKeepTheSnapshotsHistory) {
  state_.history = {R"({"epoch":1,"step":10})"};
  state_.reliability = R"({"buckets":[],"step":10})";
  ASSERT_TRUE(SaveCheckpoint(dir_, *model_, opt_, state_).ok());
  state_.history.clear();
  state_.reliability.clear();
  Delta(1, {2, 5});
  Delta(2, {6});
  auto ck = LoadCheckpoint(dir_);
  ASSERT_TRUE(ck.ok()) << ck.status().message();
  ASSERT_TRUE(ck->delta_error.ok()) << ck->delta_error.message();
  EXPECT_EQ(ck->deltas_applied, 2u);
  EXPECT_EQ(ck->state.step, 12);
  EXPECT_EQ(ck->state.history, (std::vector<std::string>{R"({"epoch":1,"step":10})"}));
  EXPECT_EQ(ck->state.reliability, R"({"buckets":[],"step":10})");
}

TEST_F(DeltaTest, ACorruptedDeltaIsRefusedAndLaterOnesNotApplied) {
  Delta(1, {5});
  const auto after_one = Rows(*model_);
  const auto dense_one = Dense(*model_);
  Delta(2, {6});
  Delta(3, {7});
  // Flip a byte in the middle of delta 2's table file.
  const std::string f = DeltaDir(dir_, 2) + "/embeddings.bin";
  std::fstream io(f, std::ios::in | std::ios::out | std::ios::binary);
  io.seekp(static_cast<std::streamoff>(sfs::file_size(f) / 2));
  io.put('\x7f');
  io.close();
  auto ck = LoadCheckpoint(dir_);
  ASSERT_TRUE(ck.ok()) << ck.status().message();
  EXPECT_EQ(ck->deltas_applied, 1u);
  EXPECT_FALSE(ck->delta_error.ok());
  EXPECT_NE(ck->delta_error.message().find("embeddings.bin"), std::string::npos) << ck->delta_error.message();
  EXPECT_EQ(Rows(*ck->model), after_one);
  EXPECT_EQ(Dense(*ck->model), dense_one);
  EXPECT_EQ(ck->state.delta_seq, 1u);
  // Open refuses it without touching the model.
  auto before = Rows(*ck->model);
  EXPECT_FALSE(Delta::Open(dir_, 2, *ck->model).ok());
  EXPECT_EQ(Rows(*ck->model), before);
}

TEST_F(DeltaTest, AGapOrAnotherSnapshotsDeltaEndsTheRun) {
  Delta(1, {5});
  Delta(2, {6});
  sfs::remove_all(DeltaDir(dir_, 1));
  auto ck = LoadCheckpoint(dir_);
  ASSERT_TRUE(ck.ok());
  EXPECT_EQ(ck->deltas_applied, 0u);
  EXPECT_NE(ck->delta_error.message().find("delta 1 is missing"), std::string::npos) << ck->delta_error.message();

  SetUp();
  Delta(1, {5}, "another-snapshot");
  ck = LoadCheckpoint(dir_);
  ASSERT_TRUE(ck.ok());
  EXPECT_EQ(ck->deltas_applied, 0u);
  EXPECT_NE(ck->delta_error.message().find("another-snapshot"), std::string::npos) << ck->delta_error.message();
}

TEST_F(DeltaTest, DeltasAlreadyInTheSnapshotAreSkipped) {
  Delta(1, {5});
  Delta(2, {6});
  // A snapshot taken after delta 2 (as online training writes one): the
  // deltas folder goes with the directory it replaces.
  state_.delta_seq = 2;
  state_.snapshot_id = "snap-2";
  ASSERT_TRUE(SaveCheckpoint(dir_, *model_, opt_, state_).ok());
  EXPECT_TRUE(ListDeltas(dir_).value().empty());
  Delta(3, {8}, "snap-2");
  auto ck = LoadCheckpoint(dir_);
  ASSERT_TRUE(ck.ok());
  EXPECT_TRUE(ck->delta_error.ok()) << ck->delta_error.message();
  EXPECT_EQ(ck->deltas_applied, 1u);
  EXPECT_EQ(Rows(*ck->model), Rows(*model_));
}

TEST_F(DeltaTest, KeysNoLongerHeldAreSkipped) {
  Train(model_.get(), {5, 9}, 1.0f);
  const uint64_t gone = 9;
  for (int t = 0; t < model_->num_tables(); ++t) ASSERT_TRUE(model_->table(t)->Erase(&gone, 1).ok());
  DeltaInfo info;
  info.seq = 1;
  info.base = "snap-1";
  std::vector<std::vector<uint64_t>> k(model_->num_tables(), {5, 9});
  ASSERT_TRUE(WriteDelta(dir_, *model_, k, opt_, info).ok());
  auto d = Delta::Open(dir_, 1, *model_);
  ASSERT_TRUE(d.ok()) << d.status().message();
  EXPECT_EQ((*d)->info().rows, static_cast<uint64_t>(model_->num_tables()));  // key 5 in each table
}

TEST_F(DeltaTest, ASaveReplacesAnOnlineDirectoryButNotForeignFilesInDeltas) {
  Delta(1, {5});
  EXPECT_TRUE(fs::CheckReplaceable(dir_).ok());
  std::ofstream(DeltasDir(dir_) + "/notes.txt") << "mine";
  auto st = fs::CheckReplaceable(dir_);
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.message().find("deltas"), std::string::npos) << st.message();
  EXPECT_FALSE(SaveCheckpoint(dir_, *model_, opt_, state_).ok());
  EXPECT_TRUE(sfs::exists(DeltasDir(dir_) + "/notes.txt"));
}

}  // namespace
}  // namespace embark
