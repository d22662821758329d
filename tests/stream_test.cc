// Unbounded line sources and the stream reader (src/stream/).
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>
#include <zlib.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include "stream/reader.h"
#include "stream/source.h"
#include "test_util.h"

namespace embark {
namespace {

namespace sfs = std::filesystem;

void Write(const std::string& path, const std::string& text, bool append = false) {
  std::ofstream f(path, append ? std::ios::app : std::ios::trunc);
  f << text;
}

// Criteo lines with label i % 2 and a first categorical id naming i.
std::string CriteoLines(int from, int to) {
  std::string s;
  for (int i = from; i < to; ++i) {
    s += std::to_string(i % 2);
    for (int d = 0; d < 13; ++d) s += "\t" + std::to_string(d);
    char id[16];
    std::snprintf(id, sizeof(id), "%08x", i);
    s += std::string("\t") + id;
    for (int f = 1; f < 26; ++f) s += "\tabc";
    s += "\n";
  }
  return s;
}

// Every chunk text the source gives within `seconds`.
std::string Drain(LineSource* src, double seconds, std::vector<StreamChunk>* chunks = nullptr) {
  std::string all;
  const auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (std::chrono::steady_clock::now() < until) {
    StreamChunk c;
    auto r = src->Next(&c, 0.05);
    EXPECT_TRUE(r.ok()) << r.status().message();
    if (!r.ok()) break;
    if (r.value()) {
      all += c.text;
      if (chunks) chunks->push_back(c);
    }
  }
  return all;
}

TEST(DirSource, FilesInNameOrderOnceSkippingDotAndTmpNames) {
  const std::string dir = testing::TempDir() + "/in";
  sfs::create_directories(dir);
  Write(dir + "/b", "b1\nb2\n");
  Write(dir + "/a", "a1\n");
  Write(dir + "/.c", "hidden\n");
  Write(dir + "/d.tmp", "partial\n");
  auto src = OpenLineSource(dir).value();
  EXPECT_EQ(Drain(src.get(), 0.3), "a1\nb1\nb2\n");
  // A new file later in name order is read; one earlier than a file
  // consumed already is not.
  Write(dir + "/c", "c1\n");
  Write(dir + "/0", "zero\n");
  EXPECT_EQ(Drain(src.get(), 0.3), "c1\n");
}

TEST(DirSource, ResumesMidFileAtARecordedPositionWithItsHeader) {
  const std::string dir = testing::TempDir() + "/csv";
  sfs::create_directories(dir);
  Write(dir + "/p1", "h\nx1\nx2\nx3\n");
  Write(dir + "/p2", "h\ny1\n");
  nlohmann::json pos;
  {
    auto src = OpenLineSource(dir).value();
    std::vector<StreamChunk> chunks;
    Drain(src.get(), 0.3, &chunks);
    ASSERT_FALSE(chunks.empty());
    EXPECT_TRUE(chunks[0].file_start);
    EXPECT_EQ(chunks[0].header, "h");
    // After "h\nx1\n" of p1: 5 bytes.
    ASSERT_EQ(chunks[0].text.substr(0, 5), "h\nx1\n");
    pos = src->PositionAfter(chunks[0], 5);
    EXPECT_EQ(pos["file"], "p1");
    EXPECT_EQ(pos["offset"], 5);
    EXPECT_EQ(pos["line"], 3);
  }
  auto src = OpenLineSource(dir).value();
  std::string note;
  ASSERT_TRUE(src->Seek(pos, &note).ok());
  EXPECT_TRUE(note.empty()) << note;
  std::vector<StreamChunk> chunks;
  EXPECT_EQ(Drain(src.get(), 0.3, &chunks), "x2\nx3\nh\ny1\n");
  ASSERT_GE(chunks.size(), 2u);
  EXPECT_FALSE(chunks[0].file_start);
  EXPECT_EQ(chunks[0].header, "h");  // a CSV header still known mid-file
  EXPECT_EQ(chunks[0].first_line, 3u);
  EXPECT_TRUE(chunks[1].file_start);
}

TEST(DirSource, ReadsGzipFiles) {
  const std::string dir = testing::TempDir() + "/gz";
  sfs::create_directories(dir);
  gzFile g = gzopen((dir + "/part.gz").c_str(), "wb");
  const std::string text = "g1\ng2\n";
  gzwrite(g, text.data(), static_cast<unsigned>(text.size()));
  gzclose(g);
  auto src = OpenLineSource(dir).value();
  EXPECT_EQ(Drain(src.get(), 0.3), text);
}

TEST(FollowSource, ReadsAppendsWholeLinesOnlyAndStartsOverWhenTruncated) {
  const std::string f = testing::TempDir() + "/grow.txt";
  Write(f, "l1\n");
  auto src = OpenLineSource(f).value();
  EXPECT_EQ(Drain(src.get(), 0.2), "l1\n");
  Write(f, "l2\nl3-part", true);
  EXPECT_EQ(Drain(src.get(), 0.3), "l2\n");  // the unfinished line waits
  Write(f, "ial\n", true);
  std::vector<StreamChunk> chunks;
  EXPECT_EQ(Drain(src.get(), 0.3, &chunks), "l3-partial\n");
  ASSERT_EQ(chunks.size(), 1u);
  EXPECT_EQ(chunks[0].first_line, 3u);
  EXPECT_EQ(src->PositionAfter(chunks[0], chunks[0].text.size())["offset"], 17);
  Write(f, "new\n");  // truncated and rewritten
  EXPECT_EQ(Drain(src.get(), 0.3), "new\n");
  EXPECT_NE(src->TakeNote().find("truncated"), std::string::npos);
}

TEST(PipeSource, LinesFromSuccessiveWritersOfANamedPipe) {
  const std::string p = testing::TempDir() + "/fifo";
  ASSERT_EQ(::mkfifo(p.c_str(), 0600), 0);
  auto src = OpenLineSource(p).value();
  EXPECT_FALSE(src->replayable());
  for (const std::string text : {"w1\nw1b", "w2\n"}) {
    std::thread writer([&] {
      int fd = ::open(p.c_str(), O_WRONLY);
      ASSERT_GE(fd, 0);
      ASSERT_EQ(::write(fd, text.data(), text.size()), static_cast<ssize_t>(text.size()));
      ::close(fd);
    });
    writer.join();
    // A writer's last line counts once it closes, newline or not.
    EXPECT_EQ(Drain(src.get(), 0.4), text.back() == '\n' ? text : text + "\n");
  }
}

TEST(LineSource, RefusesWhatIsNotAStream) {
  EXPECT_FALSE(OpenLineSource(testing::TempDir() + "/absent").ok());
  EXPECT_FALSE(OpenLineSource("/dev/null").ok());  // a character device
}

StreamReaderOptions Opts(size_t batch, double delay) {
  StreamReaderOptions o;
  o.batch_size = batch;
  o.max_delay_s = delay;
  o.max_bad_lines = 5;
  return o;
}

// The batches a reader gives within `seconds`.
std::vector<StreamBatch> Batches(StreamReader* r, double seconds) {
  std::vector<StreamBatch> out;
  const auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (std::chrono::steady_clock::now() < until) {
    StreamBatch b;
    auto got = r->Next(&b, 0.05);
    EXPECT_TRUE(got.ok()) << got.status().message();
    if (!got.ok()) break;
    if (got.value()) out.push_back(std::move(b));
  }
  return out;
}

TEST(StreamReader, FullBatchesThenAPartialOneAfterTheDelayWithPositions) {
  const std::string dir = testing::TempDir() + "/batches";
  sfs::create_directories(dir);
  // 10 samples with a blank and a bad line among them.
  std::string text = CriteoLines(0, 4) + "\n" + "not a criteo line\n" + CriteoLines(4, 10);
  Write(dir + "/p", text);
  StreamReader r(OpenLineSource(dir).value(), DataSpec::Criteo(), Opts(4, 0.2));
  auto bs = Batches(&r, 0.8);
  ASSERT_EQ(bs.size(), 3u);
  EXPECT_EQ(bs[0].batch.size(), 4u);
  EXPECT_EQ(bs[1].batch.size(), 4u);
  EXPECT_EQ(bs[2].batch.size(), 2u);  // went out after max_delay_s
  EXPECT_EQ(r.bad_lines().count, 1);
  // The first batch ends after sample 3's line: 4 lines in.
  EXPECT_EQ(bs[0].position["line"], 5);
  EXPECT_EQ(bs[2].position["offset"], text.size());
  EXPECT_GT(bs[0].newest_unix, 0);
}

TEST(StreamReader, ResumingAtABatchPositionNeitherRepeatsNorSkips) {
  const std::string dir = testing::TempDir() + "/resume";
  sfs::create_directories(dir);
  Write(dir + "/p0", CriteoLines(0, 7));
  Write(dir + "/p1", CriteoLines(7, 12));
  std::vector<float> labels_all;
  nlohmann::json pos;
  {
    StreamReader r(OpenLineSource(dir).value(), DataSpec::Criteo(), Opts(3, 0.2));
    auto bs = Batches(&r, 0.8);
    size_t n = 0;
    for (const auto& b : bs) n += b.batch.size();
    ASSERT_EQ(n, 12u);
    pos = bs[1].position;  // after 6 samples
    for (const auto& b : bs) labels_all.insert(labels_all.end(), b.batch.labels.begin(), b.batch.labels.end());
  }
  auto src = OpenLineSource(dir).value();
  std::string note;
  ASSERT_TRUE(src->Seek(pos, &note).ok());
  StreamReader r(std::move(src), DataSpec::Criteo(), Opts(3, 0.2));
  std::vector<uint64_t> keys;
  size_t n = 0;
  for (const auto& b : Batches(&r, 0.8)) n += b.batch.size();
  EXPECT_EQ(n, 6u);
}

TEST(StreamReader, TooManyBadLinesEndTheStreamWithTheFirstOne) {
  const std::string dir = testing::TempDir() + "/bad";
  sfs::create_directories(dir);
  std::string text;
  for (int i = 0; i < 8; ++i) text += "garbage line " + std::to_string(i) + "\n";
  Write(dir + "/p", text);
  StreamReader r(OpenLineSource(dir).value(), DataSpec::Criteo(), Opts(4, 0.1));
  StreamBatch b;
  Status err;
  for (int i = 0; i < 40 && err.ok(); ++i) {
    auto got = r.Next(&b, 0.05);
    if (!got.ok()) err = got.status();
  }
  ASSERT_FALSE(err.ok());
  EXPECT_NE(err.message().find("p:1"), std::string::npos) << err.message();
}

}  // namespace
}  // namespace embark
