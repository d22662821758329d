#include "train/config.h"

#include <gtest/gtest.h>

#include "test_util.h"
#include "util/fs.h"

namespace embark {
namespace {

TEST(Config, TomlSetsParameters) {
  auto path = testing::WriteTemp("c.toml",
                                 "model = \"deepfm\"\nembedding_dim = 8\nmlp = [64, 32]\ndense_lr = 0.01\n"
                                 "deterministic = true\n");
  TrainConfig c;
  ASSERT_TRUE(LoadConfigToml(path, &c).ok());
  EXPECT_EQ(c.model, "deepfm");
  EXPECT_EQ(c.embedding_dim, 8);
  EXPECT_EQ(c.mlp, (std::vector<int>{64, 32}));
  EXPECT_FLOAT_EQ(c.dense_lr, 0.01f);
  EXPECT_TRUE(c.deterministic);
}

TEST(Config, ErrorsNameFileAndKey) {
  TrainConfig c;
  Status s = LoadConfigToml(testing::WriteTemp("u.toml", "embeding_dim = 8\n"), &c);
  EXPECT_NE(s.message().find("u.toml: unknown parameter 'embeding_dim'"), std::string::npos) << s.message();
  s = LoadConfigToml(testing::WriteTemp("r.toml", "embedding_dim = 0\n"), &c);
  EXPECT_NE(s.message().find("'embedding_dim': 0 is out of range [1, 1024]"), std::string::npos) << s.message();
  s = LoadConfigToml(testing::WriteTemp("m.toml", "model = \"gbdt\"\n"), &c);
  EXPECT_NE(s.message().find("'gbdt' is not one of: lr, fm"), std::string::npos) << s.message();
  s = LoadConfigToml(testing::WriteTemp("t.toml", "epochs = [\n"), &c);
  EXPECT_NE(s.message().find("t.toml:"), std::string::npos) << s.message();
}

TEST(Config, TomlRoundTrip) {
  TrainConfig a;
  a.model = "dcnv2";
  a.top_mlp = {3, 2};
  a.sparse_lr = 0.125f;
  auto path = testing::WriteTemp("rt.toml", ConfigToToml(a));
  TrainConfig b;
  ASSERT_TRUE(LoadConfigToml(path, &b).ok());
  EXPECT_EQ(ConfigToToml(b), ConfigToToml(a));
}

TEST(Config, DocsAreGeneratedFromTheDeclarations) {
  auto doc = fs::ReadFile(std::string(EMBARK_SOURCE_DIR) + "/docs/parameters.md");
  ASSERT_TRUE(doc.ok()) << doc.status().message();
  EXPECT_EQ(doc.value(), ParamsMarkdown()) << "regenerate with: build/embark params --markdown > docs/parameters.md";
}

}  // namespace
}  // namespace embark
