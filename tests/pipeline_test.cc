#include "data/pipeline.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>

#include <set>

#include "test_util.h"
#include "util/hash.h"

namespace embark {
namespace {

std::string Lines(int n, int bad_every = 0) {
  std::string s;
  for (int i = 0; i < n; ++i) {
    if (bad_every > 0 && i % bad_every == bad_every - 1) {
      s += "oops\n";
      continue;
    }
    s += std::to_string(i % 2) + " " + std::to_string(i) + ":1\n";
  }
  return s;
}

uint64_t FeatureKeyForTest(int i) { return FeatureKey(0, std::to_string(i)); }

ReadOptions SmallChunks() {
  ReadOptions ro;
  ro.chunk_bytes = 256;
  ro.parse_threads = 3;
  return ro;
}

// Returns the feature value-order signature: the keys in stream order.
std::vector<uint64_t> Drain(BatchStream* s, size_t* batches = nullptr) {
  std::vector<uint64_t> keys;
  Batch b;
  size_t n = 0;
  for (;;) {
    auto r = s->Next(&b);
    EXPECT_TRUE(r.ok()) << r.status().message();
    if (!r.ok() || !r.value()) break;
    keys.insert(keys.end(), b.keys.begin(), b.keys.end());
    ++n;
  }
  if (batches) *batches = n;
  return keys;
}

TEST(Pipeline, KeepsFileOrderAcrossParserThreads) {
  auto a = testing::WriteTemp("p1.svm", Lines(500));
  auto b = testing::WriteTemp("p2.svm", Lines(300));
  StreamOptions so;
  so.batch_size = 64;
  auto s = OpenStream({a, b}, DataSpec::Libsvm(), SmallChunks(), so);
  size_t batches = 0;
  auto keys = Drain(s.get(), &batches);
  ASSERT_EQ(keys.size(), 800u);
  EXPECT_EQ(batches, (800 + 63) / 64);
  EXPECT_EQ(keys[0], FeatureKeyForTest(0));
  for (int i = 0; i < 500; ++i) EXPECT_EQ(keys[i], FeatureKeyForTest(i));
  for (int i = 0; i < 300; ++i) EXPECT_EQ(keys[500 + i], FeatureKeyForTest(i));
}

TEST(Pipeline, ShuffleIsSeededAndKeepsEverySample) {
  auto a = testing::WriteTemp("sh.svm", Lines(1000));
  StreamOptions so;
  so.batch_size = 100;
  so.shuffle_window = 300;
  so.seed = 5;
  auto k1 = Drain(OpenStream({a}, DataSpec::Libsvm(), SmallChunks(), so).get());
  auto k2 = Drain(OpenStream({a}, DataSpec::Libsvm(), SmallChunks(), so).get());
  so.seed = 6;
  auto k3 = Drain(OpenStream({a}, DataSpec::Libsvm(), SmallChunks(), so).get());
  EXPECT_EQ(k1, k2);
  EXPECT_NE(k1, k3);
  EXPECT_EQ(std::set<uint64_t>(k1.begin(), k1.end()).size(), 1000u);
  std::vector<uint64_t> in_order;
  for (int i = 0; i < 1000; ++i) in_order.push_back(FeatureKeyForTest(i));
  EXPECT_NE(k1, in_order);
}

// The resume cursor: a stream that skips its first k samples returns the
// rest of the same shuffled order, cut into whole batches from there, for
// any k (inside a shuffle window, at its edge, past the end).
TEST(Pipeline, SkipResumesTheShuffledOrder) {
  auto a = testing::WriteTemp("skip.svm", Lines(1000));
  StreamOptions so;
  so.batch_size = 100;
  so.shuffle_window = 300;
  so.seed = 9;
  const auto all = Drain(OpenStream({a}, DataSpec::Libsvm(), SmallChunks(), so).get());
  ASSERT_EQ(all.size(), 1000u);
  for (uint64_t k : {1, 100, 250, 299, 300, 301, 700, 999, 1000, 1500}) {
    for (size_t batch : {100, 64}) {
      StreamOptions sk = so;
      sk.skip = k;
      sk.batch_size = batch;
      size_t batches = 0;
      const auto rest = Drain(OpenStream({a}, DataSpec::Libsvm(), SmallChunks(), sk).get(), &batches);
      const size_t left = 1000 - std::min<size_t>(k, 1000);
      ASSERT_EQ(rest.size(), left) << "skip " << k;
      EXPECT_TRUE(std::equal(rest.begin(), rest.end(), all.begin() + (1000 - left))) << "skip " << k;
      EXPECT_EQ(batches, (left + batch - 1) / batch) << "skip " << k << ", batch " << batch;
    }
  }
}

TEST(Pipeline, BadLinesFailWithLocationUnlessTolerated) {
  auto a = testing::WriteTemp("bad.svm", Lines(100, 10));  // 10 bad lines
  StreamOptions so;
  ReadOptions ro = SmallChunks();
  auto s = OpenStream({a}, DataSpec::Libsvm(), ro, so);
  Batch b;
  Result<bool> r = true;
  while (r.ok() && r.value()) r = s->Next(&b);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("bad.svm:10:"), std::string::npos) << r.status().message();

  ro.max_bad_lines = 10;
  auto s2 = OpenStream({a}, DataSpec::Libsvm(), ro, so);
  auto keys = Drain(s2.get());
  EXPECT_EQ(keys.size(), 90u);
  EXPECT_EQ(s2->bad_lines().count, 10);
  EXPECT_EQ(s2->bad_lines().examples.size(), 5u);

  ro.max_bad_lines = 9;
  auto s3 = OpenStream({a}, DataSpec::Libsvm(), ro, so);
  r = true;
  while (r.ok() && r.value()) r = s3->Next(&b);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("more than --max-bad-lines=9"), std::string::npos) << r.status().message();
}

TEST(Pipeline, EmptyAndMissingFilesAreErrors) {
  auto empty = testing::WriteTemp("empty.svm", "");
  Batch b;
  auto s = OpenStream({empty}, DataSpec::Libsvm(), SmallChunks(), {});
  auto r = s->Next(&b);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("empty.svm: file is empty"), std::string::npos) << r.status().message();
  auto s2 = OpenStream({"/nonexistent.svm"}, DataSpec::Libsvm(), SmallChunks(), {});
  r = s2->Next(&b);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("cannot open '/nonexistent.svm'"), std::string::npos);
  auto blank = testing::WriteTemp("blank.svm", "\n\n");
  auto s3 = OpenStream({blank}, DataSpec::Libsvm(), SmallChunks(), {});
  r = s3->Next(&b);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("no samples"), std::string::npos) << r.status().message();
}

// Threads of this process, from /proc.
size_t ThreadCount() {
  size_t n = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator("/proc/self/task")) ++n;
  return n;
}

TEST(Pipeline, StopsEarlyWithoutHanging) {
  auto a = testing::WriteTemp("big.svm", Lines(20000));
  StreamOptions so;
  so.batch_size = 10;
  const size_t before = ThreadCount();
  auto s = OpenStream({a}, DataSpec::Libsvm(), SmallChunks(), so);
  Batch b;
  ASSERT_TRUE(s->Next(&b).value());
  EXPECT_GT(ThreadCount(), before);  // the reader, parsers and batcher run
  s.reset();  // destructor must join all threads while they are blocked
  EXPECT_EQ(ThreadCount(), before);
}

}  // namespace
}  // namespace embark
