#include "data/source.h"

#include <gtest/gtest.h>
#include <zlib.h>
#include <zstd.h>

#include <string>

#include "test_util.h"

namespace embark {
namespace {

std::string Gzip(const std::string& s) {
  z_stream zs{};
  deflateInit2(&zs, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY);
  std::string out(compressBound(s.size()) + 64, '\0');
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(s.data()));
  zs.avail_in = static_cast<uInt>(s.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  deflate(&zs, Z_FINISH);
  out.resize(zs.total_out);
  deflateEnd(&zs);
  return out;
}

std::string Zstd(const std::string& s) {
  std::string out(ZSTD_compressBound(s.size()), '\0');
  out.resize(ZSTD_compress(out.data(), out.size(), s.data(), s.size(), 3));
  return out;
}

Result<std::string> ReadAll(const std::string& path) {
  EMBARK_ASSIGN_OR_RETURN(auto src, OpenSource(path));
  std::string out;
  char buf[1000];
  for (;;) {
    EMBARK_ASSIGN_OR_RETURN(size_t n, src->Read(buf, sizeof(buf)));
    if (n == 0) break;
    out.append(buf, n);
  }
  return out;
}

std::string Text() {
  std::string s;
  for (int i = 0; i < 20000; ++i) s += "line " + std::to_string(i) + "\n";
  return s;
}

TEST(Source, PlainGzipAndZstdReadTheSameBytes) {
  const std::string text = Text();
  auto plain = testing::WriteTemp("a.txt", text);
  auto gz = testing::WriteTemp("a.txt.gz", Gzip(text));
  auto zst = testing::WriteTemp("a.txt.zst", Zstd(text));
  for (const auto& p : {plain, gz, zst}) {
    auto r = ReadAll(p);
    ASSERT_TRUE(r.ok()) << r.status().message();
    EXPECT_EQ(r.value(), text) << p;
  }
  EXPECT_EQ(OpenSource(gz).value()->compression(), Compression::kGzip);
  EXPECT_EQ(OpenSource(zst).value()->compression(), Compression::kZstd);
  EXPECT_EQ(OpenSource(plain).value()->compression(), Compression::kNone);
}

TEST(Source, ConcatenatedGzipMembersAreRead) {
  auto p = testing::WriteTemp("multi.gz", Gzip("a\nb\n") + Gzip("c\n"));
  EXPECT_EQ(ReadAll(p).value(), "a\nb\nc\n");
}

TEST(Source, TruncatedGzipIsAnError) {
  std::string gz = Gzip(Text());
  auto p = testing::WriteTemp("trunc.gz", gz.substr(0, gz.size() / 2));
  auto r = ReadAll(p);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("truncated gzip"), std::string::npos) << r.status().message();
  EXPECT_NE(r.status().message().find("trunc.gz"), std::string::npos);
}

TEST(Source, TruncatedZstdIsAnError) {
  std::string z = Zstd(Text());
  auto p = testing::WriteTemp("trunc.zst", z.substr(0, z.size() / 2));
  auto r = ReadAll(p);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("truncated zstd"), std::string::npos) << r.status().message();
}

TEST(Source, CorruptGzipIsAnError) {
  std::string gz = Gzip(Text());
  for (size_t i = 20; i < 60; ++i) gz[i] = static_cast<char>(gz[i] ^ 0x5a);
  auto r = ReadAll(testing::WriteTemp("corrupt.gz", gz));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("gzip"), std::string::npos) << r.status().message();
}

TEST(Source, MissingFileNamesThePath) {
  auto r = OpenSource("/nonexistent/embark/file.tsv");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("/nonexistent/embark/file.tsv"), std::string::npos);
}

TEST(Chunker, ChunksHoldWholeLinesWithLineNumbers) {
  const std::string text = Text();
  auto p = testing::WriteTemp("chunks.txt", text);
  LineChunker ch(p, OpenSource(p).value(), 1000);
  Chunk c;
  std::string joined;
  uint64_t expect_line = 1;
  int chunks = 0;
  while (ch.Next(&c).value()) {
    ASSERT_EQ(c.first_line, expect_line);
    ASSERT_EQ(c.text.back(), '\n');
    // The first line of each chunk is "line <first_line - 1>".
    EXPECT_EQ(c.text.substr(0, c.text.find('\n')), "line " + std::to_string(c.first_line - 1));
    expect_line += std::count(c.text.begin(), c.text.end(), '\n');
    joined += c.text;
    ++chunks;
  }
  EXPECT_EQ(joined, text);
  EXPECT_GT(chunks, 10);
}

TEST(Chunker, LastLineWithoutNewlineAndLongLines) {
  std::string text = std::string(5000, 'x') + "\nshort";
  auto p = testing::WriteTemp("long.txt", text);
  LineChunker ch(p, OpenSource(p).value(), 100);
  Chunk c;
  ASSERT_TRUE(ch.Next(&c).value());
  EXPECT_EQ(c.text, std::string(5000, 'x') + "\n");
  ASSERT_TRUE(ch.Next(&c).value());
  EXPECT_EQ(c.text, "short\n");
  EXPECT_EQ(c.first_line, 2u);
  EXPECT_FALSE(ch.Next(&c).value());
}

}  // namespace
}  // namespace embark
