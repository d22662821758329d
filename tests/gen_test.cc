#include "gen/gen.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "test_util.h"

namespace embark {
namespace {

std::string Slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST(Gen, RefusesCountsItCannotHoldBeforeWritingAnything) {
  const std::string dir = testing::TempDir();
  GenOptions g;
  g.out = dir + "/train.tsv";
  for (uint64_t rows : {uint64_t{0}, kMaxGenRows + 1, ~uint64_t{0} - 4}) {
    g.rows = rows;
    auto r = Generate(g);
    ASSERT_FALSE(r.ok()) << rows;
    EXPECT_NE(r.status().message().find("--rows: " + std::to_string(rows) + " is out of range"), std::string::npos)
        << r.status().message();
  }
  g.rows = 10;
  g.valid_rows = kMaxGenRows + 1;
  g.valid_out = dir + "/valid.tsv";
  EXPECT_FALSE(Generate(g).ok());
  EXPECT_TRUE(std::filesystem::is_empty(dir));  // no file, no temporary
}

TEST(Gen, ValidationFileIsASecondPathAskedForWithItsRows) {
  const std::string dir = testing::TempDir();
  GenOptions g;
  g.rows = 20;
  g.out = dir + "/train.tsv";
  ASSERT_TRUE(Generate(g).ok());
  const std::string train = Slurp(g.out);

  g.valid_out = dir + "/valid.tsv";  // without valid_rows
  auto no_rows = Generate(g);
  ASSERT_FALSE(no_rows.ok());
  EXPECT_NE(no_rows.status().message().find("--valid-out needs --valid-rows"), std::string::npos);

  g.valid_rows = 5;
  for (const std::string& same : {g.out, dir + "/./train.tsv"}) {
    g.valid_out = same;
    auto r = Generate(g);
    ASSERT_FALSE(r.ok()) << same;
    EXPECT_NE(r.status().message().find("is the --out file"), std::string::npos) << r.status().message();
  }
  EXPECT_EQ(Slurp(g.out), train);
  EXPECT_FALSE(std::filesystem::exists(dir + "/valid.tsv"));

  // A directory is refused before any row is drawn.
  g.valid_out = dir;
  auto is_dir = Generate(g);
  ASSERT_FALSE(is_dir.ok());
  EXPECT_NE(is_dir.status().message().find("--valid-out '" + dir + "' is a directory"), std::string::npos)
      << is_dir.status().message();
}

}  // namespace
}  // namespace embark
