// Serving's row encoder against the file parsers (a row must become the same
// sample either way) and the infer request codec.
#include <gtest/gtest.h>

#include <algorithm>

#include <nlohmann/json.hpp>

#include "data/parse.h"
#include "retrieval/retrieval.h"
#include "serve/request.h"
#include "serve/server.h"
#include "serve/topk.h"
#include "test_util.h"
#include "util/log.h"

namespace embark {
namespace {

Batch ParseLines(const DataSpec& spec, const std::string& text, bool header) {
  Chunk c;
  c.file = "t";
  c.text = text;
  Batch b;
  b.Reset(spec.num_dense, spec.num_fields);
  std::vector<BadLine> bad;
  ColumnPlan plan;
  if (spec.format == Format::kCsv) {
    auto p = MakeColumnPlan(spec, text.substr(0, text.find('\n')), "t");
    EXPECT_TRUE(p.ok());
    plan = p.value();
  }
  ParseChunk(c, spec, &plan, header ? 1 : 0, &b, &bad);
  EXPECT_TRUE(bad.empty()) << bad.front().message;
  return b;
}

void ExpectSameSamples(const Batch& a, const Batch& b) {
  EXPECT_EQ(a.dense, b.dense);
  EXPECT_EQ(a.offsets, b.offsets);
  EXPECT_EQ(a.keys, b.keys);
  EXPECT_EQ(a.values, b.values);
}

RawValue S(std::string_view t) { return {RawValue::kString, 0, t}; }
RawValue N(double x) { return {RawValue::kNumber, x, {}}; }
RawValue Missing() { return {}; }

TEST(RowEncoder, CsvRowEqualsTheParsedLine) {
  CsvSchema s;
  s.label = "y";
  s.numeric = {"age"};
  s.categorical = {"user", "city"};
  s.multi = {{"tags", "|"}};
  s.trim = true;
  DataSpec spec = DataSpec::Csv(s);
  Batch parsed = ParseLines(spec, "y,age,user,city,tags\n1, 31.5 ,42,,a| b |c\n0,,u7,paris,\n", true);
  RowEncoder enc(spec);
  ASSERT_EQ(enc.inputs().size(), 4u);
  EXPECT_EQ(enc.inputs()[3].kind, InputField::kTokens);
  Batch built;
  built.Reset(spec.num_dense, spec.num_fields);
  RawValue r1[] = {S(" 31.5 "), N(42), Missing(), S("a| b |c")};  // integer 42 hashes as "42"
  RawValue r2[] = {Missing(), S("u7"), S("paris"), S("")};
  ASSERT_EQ(enc.Append(r1, &built), "");
  ASSERT_EQ(enc.Append(r2, &built), "");
  ExpectSameSamples(parsed, built);
  RawValue bad[] = {S("abc"), N(1), Missing(), Missing()};
  EXPECT_NE(enc.Append(bad, &built).find("field age"), std::string::npos);
  EXPECT_EQ(built.size(), 2u) << "a refused row appends nothing";
  EXPECT_EQ(built.offsets.size(), 2 * spec.num_fields + 1u);
}

TEST(RowEncoder, LibffmRowEqualsTheParsedLine) {
  DataSpec spec = DataSpec::Libffm(3);
  Batch parsed = ParseLines(spec, "1 0:5:1 2:9:0.5 0:6:2\n", false);
  RowEncoder enc(spec);
  Batch built;
  built.Reset(spec.num_dense, spec.num_fields);
  RawValue r[] = {S("5:1 6:2"), Missing(), S("9:0.5")};
  ASSERT_EQ(enc.Append(r, &built), "");
  ExpectSameSamples(parsed, built);
  RawValue bad[] = {S("5"), Missing(), Missing()};
  EXPECT_NE(enc.Append(bad, &built).find("field field0: #1"), std::string::npos);
}

TEST(InferRequest, ParsesColumnsAndRefusesBadOnes) {
  DataSpec spec = DataSpec::Libffm(2);
  RowEncoder enc(spec);
  serve::InferRequest req;
  Batch b;
  std::string ok = R"({"id":"q","inputs":[{"name":"field0","datatype":"BYTES","shape":[2],"data":["1:1",null]},
                      {"name":"field1","datatype":"BYTES","shape":[2,1],"data":[["2:1"],[""]]}]})";
  ASSERT_EQ(serve::ParseInferRequest(ok, enc, &req, &b), "");
  EXPECT_EQ(req.id, "q");
  EXPECT_EQ(req.rows, 2u);
  EXPECT_EQ(b.size(), 2u);
  EXPECT_EQ(b.keys.size(), 2u);
  std::string bad = R"({"inputs":[{"name":"field0","datatype":"BYTES","shape":[1],"data":["1:x"]},
                       {"name":"field1","datatype":"BYTES","shape":[1],"data":["2:1"]}]})";
  std::string err = serve::ParseInferRequest(bad, enc, &req, &b);
  EXPECT_NE(err.find("row 0: field field0"), std::string::npos) << err;
  EXPECT_EQ(b.size(), 0u);
  const float p[] = {0.25f, 0.123456789f};
  EXPECT_EQ(serve::InferResponseJson("m", "3", "", p, 2),
            R"({"model_name":"m","model_version":"3","outputs":[{"name":"probability","datatype":"FP32","shape":[2],"data":[0.25,0.123456791]}]})");
}

// A two-tower model's request: its user columns only (one left out is
// missing in every row), parameters.k, the raw values kept for a ranker.
TEST(InferRequest, RetrievalShapeReadsUserColumnsAndK) {
  CsvSchema s;
  s.label = "y";
  s.numeric = {"age"};
  s.categorical = {"user", "item"};
  s.user = {"user", "age"};
  s.item = {"item"};
  s.item_id = "item";
  DataSpec spec = DataSpec::Csv(s);
  RowEncoder enc(spec);
  serve::RequestShape shape = serve::TopKShape(enc, spec, true);
  ASSERT_EQ(shape.given.size(), 3u);
  EXPECT_EQ(std::count(shape.given.begin(), shape.given.end(), true), 2);
  serve::InferRequest req;
  Batch b;
  std::string body = R"({"inputs":[{"name":"user","datatype":"BYTES","shape":[2],"data":["u1",null]}],
                         "parameters":{"k":7}})";
  ASSERT_EQ(serve::ParseInferRequest(body, enc, shape, &req, &b), "");
  EXPECT_EQ(req.k, 7);
  EXPECT_EQ(b.size(), 2u);
  // The same rows with age and item empty, as a file gives them.
  Batch parsed = ParseLines(spec, "y,age,user,item\n0,,u1,\n0,,,\n", true);
  ExpectSameSamples(parsed, b);
  ASSERT_EQ(req.values.size(), 2 * enc.inputs().size());
  size_t user = 0;
  while (enc.inputs()[user].name != "user") ++user;
  EXPECT_EQ(req.values[user].kind, RawValue::kString);
  EXPECT_EQ(req.texts[user], "u1");
  EXPECT_EQ(req.values[enc.inputs().size() + user].kind, RawValue::kMissing);
  std::string item = R"({"inputs":[{"name":"item","datatype":"BYTES","shape":[1],"data":["i1"]}]})";
  EXPECT_NE(serve::ParseInferRequest(item, enc, shape, &req, &b).find("'item' is not an input"), std::string::npos);
  for (const char* k : {"0", "-3", "2.5", "\"4\""}) {
    std::string bad = std::string(R"({"inputs":[],"parameters":{"k":)") + k + "}}";
    EXPECT_NE(serve::ParseInferRequest(bad, enc, shape, &req, &b).find("'k'"), std::string::npos) << k;
  }
  // A ranking request still needs every input and ignores parameters.
  std::string ranking = R"({"inputs":[{"name":"user","datatype":"BYTES","shape":[1],"data":["u1"]}],
                            "parameters":{"k":"x"}})";
  EXPECT_NE(serve::ParseInferRequest(ranking, enc, &req, &b).find("missing input"), std::string::npos);
}

// An index directory as serving reads it: names by key, the catalogue's
// values of the ranker's columns by header name (quotes honoured), and the
// candidates re-ordered by ranker probability with ties in retrieval order.
TEST(TopK, ServedIndexReadsTheCatalogueForTheRanker) {
  ItemCatalogue cat;
  cat.dim = 2;
  cat.keys = {11, 22, 33};
  cat.names = {"a", "b", "c"};
  cat.vectors = {1, 0, 0, 1, 0.5f, 0.5f};
  cat.header = "label,user,item,genre";
  cat.rows = {"1,u9,a,x", "1,,b,\"y,z\"", "1,,c,"};
  auto idx = BuildIndex(cat, "exact");
  ASSERT_TRUE(idx.ok()) << idx.status().message();
  const std::string dir = testing::TempDir() + "/served-index";
  ASSERT_TRUE(idx.value()->Save(dir, IndexExtras(cat, R"({"tower_dim": 2})")).ok());
  CsvSchema s;
  s.label = "label";
  s.categorical = {"user", "item", "genre"};
  serve::Ranker ranker;
  ranker.inputs = {"user", "genre", "city"};
  auto served = serve::LoadServedIndex(dir, DataSpec::Csv(s), &ranker, 4);
  ASSERT_TRUE(served.ok()) << served.status().message();
  const serve::ServedIndex& si = *served.value();
  EXPECT_EQ(si.dim(), 2);
  EXPECT_EQ(si.version_str, "4");
  EXPECT_EQ(si.names[si.at.at(22)], "b");
  EXPECT_EQ(si.has_column, (std::vector<bool>{true, true, false}));
  EXPECT_EQ(si.ranker_values, (std::vector<std::string>{"u9", "x", "", "", "y,z", "", "", "", ""}));

  std::vector<uint32_t> items = {0, 1, 2, 2, 1, 0};
  std::vector<float> probs = {0.1f, 0.5f, 0.5f, 0.2f, 0.9f, 0.2f}, retrieval = {3, 2, 1, 6, 5, 4};
  serve::OrderByRanker(2, 3, &items, &probs, &retrieval);
  EXPECT_EQ(items, (std::vector<uint32_t>{1, 2, 0, 1, 2, 0}));
  EXPECT_EQ(probs, (std::vector<float>{0.5f, 0.5f, 0.1f, 0.9f, 0.2f, 0.2f}));
  EXPECT_EQ(retrieval, (std::vector<float>{2, 1, 3, 5, 6, 4}));
  const std::string json = serve::TopKResponseJson("m", "1", "", si, items.data(), probs.data(), retrieval.data(), 2, 3);
  nlohmann::json j = nlohmann::json::parse(json);
  EXPECT_EQ(j["outputs"][0]["data"], (nlohmann::json{"b", "c", "a", "b", "c", "a"}));
  EXPECT_EQ(j["outputs"][2]["shape"], (nlohmann::json{2, 3}));
  EXPECT_EQ(j["parameters"]["index_version"], "4");
}

// Every JSON the server writes is valid JSON whatever bytes it carries:
// names from the training schema, ids and model names from the client.
TEST(InferRequest, JsonOutputIsEscapedAndValid) {
  CsvSchema s;
  s.label = "y";
  s.numeric = {"a\"b\\c\n"};
  s.categorical = {"bad\xff\xfeutf8"};
  RowEncoder enc(DataSpec::Csv(s));
  std::string meta;
  ASSERT_NO_THROW(meta = serve::ModelMetadataJson("m\"\x01", "1", enc));
  nlohmann::json j = nlohmann::json::parse(meta);
  EXPECT_EQ(j["name"], "m\"\x01");
  EXPECT_EQ(j["inputs"][0]["name"], "a\"b\\c\n");
  EXPECT_EQ(j["inputs"][1]["name"], "bad\xEF\xBF\xBD\xEF\xBF\xBDutf8");  // U+FFFD for each bad byte
  const float p[] = {0.5f};
  j = nlohmann::json::parse(serve::InferResponseJson("m\xff", "1", "id\"\n\xff", p, 1));
  EXPECT_EQ(j["id"], "id\"\n\xEF\xBF\xBD");
  j = nlohmann::json::parse(serve::ErrorJson("unknown model '\xc3' \"x\""));
  EXPECT_EQ(j["error"], "unknown model '\xEF\xBF\xBD' \"x\"");
}

}  // namespace
}  // namespace embark

namespace embark::serve {
namespace {

// A failed bind says why, in the system's words.
TEST(Server, BindFailureSaysWhy) {
  ServerOptions o;
  o.model_dir = std::string(EMBARK_SOURCE_DIR) + "/tests/fixtures/checkpoint_v2/fm";
  o.port = 0;
  o.host = "192.0.2.1";  // TEST-NET-1: an address of no machine here
  Logger log(LogLevel::kWarn);
  Server server(o, log);
  Status st = server.Run();
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("cannot bind to 192.0.2.1: Cannot assign requested address"), std::string::npos)
      << st.message();
}

}  // namespace
}  // namespace embark::serve
