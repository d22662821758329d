// Arrays as a data source (embark/arrays.h): samples encoded from arrays
// equal those the file parsers produce from the same values written as
// text, training from arrays equals training from the file bit for bit, the
// run's history (history.json), Stop and the history hook, the reliability
// diagram, and the shuffle window's independence of the source's blocks.
#include "data/arrays.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <charconv>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <random>
#include <sstream>

#include <nlohmann/json.hpp>

#include "data/pipeline.h"
#include "embark/embark.h"
#include "metrics/metrics.h"
#include "test_util.h"
#include "util/fs.h"

namespace embark {
namespace {

namespace stdfs = std::filesystem;

const float kNaN = std::numeric_limits<float>::quiet_NaN();

// The samples the file parser makes of `text` (a CSV file's header included).
Batch ParseText(const DataSpec& spec, const std::string& text) {
  Batch b;
  b.Reset(spec.num_dense, spec.num_fields);
  Chunk c;
  c.file = "data.txt";
  c.text = text;
  std::vector<BadLine> bad;
  if (spec.format == Format::kCsv) {
    auto plan = MakeColumnPlan(spec, text.substr(0, text.find('\n')), "data.txt");
    EXPECT_TRUE(plan.ok()) << plan.status().message();
    if (!plan.ok()) return b;
    ParseChunk(c, spec, &plan.value(), 1, &b, &bad);
  } else {
    ParseChunk(c, spec, nullptr, 0, &b, &bad);
  }
  for (const BadLine& l : bad) ADD_FAILURE() << l.message;
  return b;
}

Batch Encode(const DataSpec& spec, const ArrayData& a) {
  Batch b;
  b.Reset(spec.num_dense, spec.num_fields);
  auto enc = ArrayEncoder::Make(spec, a, a.labels != nullptr);
  EXPECT_TRUE(enc.ok()) << enc.status().message();
  if (!enc.ok()) return b;
  Status s = (*enc)->Append(0, a.rows, &b);
  EXPECT_TRUE(s.ok()) << s.message();
  return b;
}

// Exactly the same samples (floats compared bit for bit).
void ExpectSameBatch(const Batch& a, const Batch& b) {
  ASSERT_EQ(a.num_dense, b.num_dense);
  ASSERT_EQ(a.num_fields, b.num_fields);
  ASSERT_EQ(a.size(), b.size());
  EXPECT_EQ(a.labels, b.labels);
  ASSERT_EQ(a.dense.size(), b.dense.size());
  if (!a.dense.empty()) EXPECT_EQ(std::memcmp(a.dense.data(), b.dense.data(), a.dense.size() * sizeof(float)), 0);
  EXPECT_EQ(a.offsets, b.offsets);
  EXPECT_EQ(a.keys, b.keys);
  ASSERT_EQ(a.values.size(), b.values.size());
  if (!a.values.empty()) EXPECT_EQ(std::memcmp(a.values.data(), b.values.data(), a.values.size() * sizeof(float)), 0);
}

// A float exactly as text ("" for NaN): nine significant digits read back
// as the same float, and the values used below are exact in decimal.
std::string Num(float x) {
  if (std::isnan(x)) return "";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.9g", static_cast<double>(x));
  return buf;
}

std::string MakeError(const DataSpec& spec, const ArrayData& a, bool labels = true) {
  auto e = ArrayEncoder::Make(spec, a, labels);
  return e.ok() ? std::string("(no error)") : e.status().message();
}

std::string AppendError(const DataSpec& spec, const ArrayData& a) {
  auto e = ArrayEncoder::Make(spec, a, a.labels != nullptr);
  if (!e.ok()) return "Make: " + e.status().message();
  Batch b;
  b.Reset(spec.num_dense, spec.num_fields);
  Status s = (*e)->Append(0, a.rows, &b);
  return s.ok() ? std::string("(no error)") : s.message();
}

#define EXPECT_HAS(text, part) EXPECT_NE((text).find(part), std::string::npos) << (text)

// Columns of a CSV schema with numeric, categorical and a multi column.
struct CsvCase {
  size_t rows = 0;
  std::vector<float> labels, dense;  // dense: 2 columns
  std::vector<int64_t> ids;          // 2 columns
  std::vector<int64_t> indptr{0}, indices;
  ArrayData arrays() const {
    ArrayData a;
    a.rows = rows;
    a.labels = labels.data();
    a.dense = dense.data();
    a.dense_cols = 2;
    a.ids = ids.data();
    a.id_cols = 2;
    a.indptr = indptr.data();
    a.indices = indices.data();
    a.nnz = indices.size();
    return a;
  }
};

CsvCase MakeCsvCase(size_t rows, uint32_t seed) {
  std::mt19937 rng(seed);
  CsvCase c;
  c.rows = rows;
  for (size_t r = 0; r < rows; ++r) {
    c.labels.push_back(static_cast<float>(rng() % 2));
    for (int d = 0; d < 2; ++d)
      c.dense.push_back(rng() % 10 == 0 ? kNaN : static_cast<float>(static_cast<int>(rng() % 400) - 100) / 8.0f);
    // Negative ids included: hashed as their decimal text, "-7".
    for (int f = 0; f < 2; ++f) c.ids.push_back(static_cast<int64_t>(rng() % 1000) - 500);
    const int tags = static_cast<int>(rng() % 4);  // 0: an empty column
    for (int t = 0; t < tags; ++t) c.indices.push_back(static_cast<int64_t>(rng() % 50) - 10);
    c.indptr.push_back(static_cast<int64_t>(c.indices.size()));
  }
  return c;
}

// The same values as a CSV file: label,n0,n1,u,i,tags.
std::string CsvText(const CsvCase& c, char tag_sep) {
  std::string s = "label,n0,n1,u,i,tags\n";
  for (size_t r = 0; r < c.rows; ++r) {
    for (const std::string& v : {Num(c.labels[r]), Num(c.dense[2 * r]), Num(c.dense[2 * r + 1]),
                                 std::to_string(c.ids[2 * r]), std::to_string(c.ids[2 * r + 1])})
      s.append(v).append(",");
    for (int64_t j = c.indptr[r]; j < c.indptr[r + 1]; ++j) {
      if (j > c.indptr[r]) s.push_back(tag_sep);
      s.append(std::to_string(c.indices[j]));
    }
    s += "\n";
  }
  return s;
}

DataSpec CsvSpec(char tag_sep) {
  CsvSchema s;
  s.label = "label";
  s.numeric = {"n0", "n1"};
  s.categorical = {"u", "i"};
  s.multi = {{"tags", std::string(1, tag_sep)}};
  return DataSpec::Csv(s);
}

TEST(ArrayEncoder, CsvArraysEncodeAsTheFileParses) {
  const CsvCase c = MakeCsvCase(400, 1);
  const DataSpec spec = CsvSpec('|');
  const Batch file = ParseText(spec, CsvText(c, '|'));
  ASSERT_EQ(file.size(), 400u);
  ExpectSameBatch(Encode(spec, c.arrays()), file);
  // NaN is missing: 0 after the transform, as an empty field in the file.
  size_t nan_row = 0;
  while (!std::isnan(c.dense[2 * nan_row])) ++nan_row;
  EXPECT_EQ(file.dense[2 * nan_row], 0.0f);
}

// Any float, written as its shortest text ("0.1" for 0.1f, as numpy and
// pandas write float32 and std::to_chars does): the file parser reads that
// text as a double, which is not (double)0.1f; the arrays encode as the file.
TEST(ArrayEncoder, AnyFloatEncodesAsItsShortestTextParses) {
  CsvSchema schema;
  schema.label = "label";
  schema.numeric = {"x"};
  schema.categorical = {"c"};
  const DataSpec spec = DataSpec::Csv(schema);
  std::mt19937 rng(8);
  std::uniform_real_distribution<float> u(-5, 100);
  const size_t rows = 3000;
  std::vector<float> labels(rows, 1.0f), dense;
  std::vector<int64_t> ids(rows, 1);
  std::string text = "label,x,c\n";
  for (size_t r = 0; r < rows; ++r) {
    dense.push_back(r == 0 ? 0.1f : (r == 1 ? 1e20f : u(rng)));
    char buf[64];
    auto end = std::to_chars(buf, buf + sizeof buf, dense.back()).ptr;
    text.append("1,").append(buf, end).append(",1\n");
  }
  ArrayData a;
  a.rows = rows;
  a.labels = labels.data();
  a.dense = dense.data();
  a.dense_cols = 1;
  a.ids = ids.data();
  a.id_cols = 1;
  const Batch file = ParseText(spec, text);
  ASSERT_EQ(file.size(), rows);
  ExpectSameBatch(Encode(spec, a), file);
}

TEST(ArrayEncoder, CsvMultiColumnSeparatedBySpacesHoldsIdsNotIndexValuePairs) {
  // A CSV multi column may be separated by ' ' (one character): its
  // tokens are ids, not libsvm's index:value.
  const CsvCase c = MakeCsvCase(200, 2);
  const DataSpec spec = CsvSpec(' ');
  const Batch file = ParseText(spec, CsvText(c, ' '));
  ASSERT_EQ(file.size(), 200u);
  ExpectSameBatch(Encode(spec, c.arrays()), file);
}

TEST(ArrayEncoder, CsvMultiColumnSeparatedBySpacesRefusesWeights) {
  CsvCase c = MakeCsvCase(20, 3);
  std::vector<float> weights(c.indices.size(), 1.0f);
  weights.back() = 2.0f;
  ArrayData a = c.arrays();
  a.values = weights.data();
  const std::string e = AppendError(CsvSpec(' '), a);
  EXPECT_HAS(e, "weight 2");
  EXPECT_HAS(e, "without weights");
}

TEST(RowEncoder, CsvMultiColumnSeparatedBySpacesEncodesAsTheFileParses) {
  // What `embark serve` sends through RowEncoder: "a b" is two ids, as in a file.
  const DataSpec spec = CsvSpec(' ');
  const Batch file = ParseText(spec, "label,n0,n1,u,i,tags\n0,1,2,u1,i1,a b\n");
  ASSERT_EQ(file.size(), 1u);
  RowEncoder enc(spec);
  std::vector<RawValue> raw;
  for (const InputField& f : enc.inputs()) {
    if (f.kind == InputField::kNumber) raw.push_back({RawValue::kNumber, f.name == "n0" ? 1.0 : 2.0, {}});
    else if (f.name == "tags") raw.push_back({RawValue::kString, 0, "a b"});
    else raw.push_back({RawValue::kString, 0, f.name == "u" ? "u1" : "i1"});
  }
  Batch b;
  b.Reset(spec.num_dense, spec.num_fields);
  const std::string err = enc.Append(raw.data(), &b);
  ASSERT_EQ(err, "");
  b.labels.back() = file.labels[0];
  ExpectSameBatch(b, file);
}

TEST(ArrayEncoder, UnsignedIdsAbove2To63HashAsTheirDecimalText) {
  CsvSchema s;
  s.label = "label";
  s.categorical = {"u", "i"};
  const DataSpec spec = DataSpec::Csv(s);
  const std::vector<uint64_t> ids = {(uint64_t{1} << 63) + 5, std::numeric_limits<uint64_t>::max(), 0, 42};
  const std::vector<float> labels = {1, 0};
  ArrayData a;
  a.rows = 2;
  a.labels = labels.data();
  a.ids = ids.data();
  a.id_cols = 2;
  a.ids_unsigned = true;
  const Batch file = ParseText(spec, "label,u,i\n1,9223372036854775813,18446744073709551615\n0,0,42\n");
  ASSERT_EQ(file.size(), 2u);
  ExpectSameBatch(Encode(spec, a), file);
  // The same bits read as int64 are other ids (their negative text).
  a.ids_unsigned = false;
  EXPECT_NE(Encode(spec, a).keys, file.keys);
}

TEST(ArrayEncoder, CriteoIdsAreEightDigitLowercaseHex) {
  const DataSpec spec = DataSpec::Criteo();
  const size_t rows = 300;
  std::mt19937 rng(3);
  std::vector<float> labels, dense;
  std::vector<uint64_t> ids;
  std::string text;
  for (size_t r = 0; r < rows; ++r) {
    labels.push_back(static_cast<float>(rng() % 2));
    text += Num(labels.back());
    for (int d = 0; d < 13; ++d) {
      // Counts, some missing, some negative (clamped to 0 by the transform).
      dense.push_back(rng() % 8 == 0 ? kNaN : static_cast<float>(static_cast<int>(rng() % 100) - 5));
      text.append("\t").append(Num(dense.back()));
    }
    for (int f = 0; f < 26; ++f) {
      ids.push_back(f == 0 ? rng() % 16 : rng());  // short ids are zero-padded
      char hex[32];
      std::snprintf(hex, sizeof hex, "%08" PRIx64, ids.back());
      text.append("\t").append(hex);
    }
    text += "\n";
  }
  ArrayData a;
  a.rows = rows;
  a.labels = labels.data();
  a.dense = dense.data();
  a.dense_cols = 13;
  a.ids = ids.data();
  a.id_cols = 26;
  a.ids_unsigned = true;
  const Batch file = ParseText(spec, text);
  ASSERT_EQ(file.size(), rows);
  ExpectSameBatch(Encode(spec, a), file);
}

TEST(ArrayEncoder, LibffmIdsAreFieldIdOne) {
  const DataSpec spec = DataSpec::Libffm(3);
  const size_t rows = 300;
  std::mt19937 rng(4);
  std::vector<float> labels;
  std::vector<int64_t> ids;
  std::string text;
  for (size_t r = 0; r < rows; ++r) {
    labels.push_back(static_cast<float>(rng() % 2));
    text += Num(labels.back());
    for (int f = 0; f < 3; ++f) {
      ids.push_back(static_cast<int64_t>(rng() % 100000));
      text.append(" ").append(std::to_string(f)).append(":").append(std::to_string(ids.back())).append(":1");
    }
    text += "\n";
  }
  ArrayData a;
  a.rows = rows;
  a.labels = labels.data();
  a.ids = ids.data();
  a.id_cols = 3;
  const Batch file = ParseText(spec, text);
  ASSERT_EQ(file.size(), rows);
  ExpectSameBatch(Encode(spec, a), file);
}

TEST(ArrayEncoder, LibsvmCsrWithWeightsIsIndexValue) {
  const DataSpec spec = DataSpec::Libsvm();
  const size_t rows = 300;
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> weight(-3, 3);
  std::vector<float> labels, values;
  std::vector<int64_t> indptr{0};
  std::vector<uint64_t> indices;
  std::string text;
  for (size_t r = 0; r < rows; ++r) {
    labels.push_back(static_cast<float>(rng() % 2));
    text += Num(labels.back());
    const int n = static_cast<int>(rng() % 6);  // some rows hold no feature
    for (int j = 0; j < n; ++j) {
      indices.push_back(j == 0 && r % 7 == 0 ? (uint64_t{1} << 63) + r : rng() % 5000);
      values.push_back(weight(rng));  // any float: nine digits read back exactly
      text.append(" ").append(std::to_string(indices.back())).append(":").append(Num(values.back()));
    }
    indptr.push_back(static_cast<int64_t>(indices.size()));
    text += "\n";
  }
  ArrayData a;
  a.rows = rows;
  a.labels = labels.data();
  a.indptr = indptr.data();
  a.indices = indices.data();
  a.indices_unsigned = true;
  a.values = values.data();
  a.nnz = indices.size();
  const Batch file = ParseText(spec, text);
  ASSERT_EQ(file.size(), rows);
  const Batch arrays = Encode(spec, a);
  ExpectSameBatch(arrays, file);
  // Weights are kept, not 1.
  EXPECT_NE(std::count(arrays.values.begin(), arrays.values.end(), 1.0f), static_cast<long>(arrays.values.size()));
}

// --- errors ---

TEST(ArrayEncoder, WrongColumnCountsNameWhatTheSpecReads) {
  CsvCase c = MakeCsvCase(10, 6);
  const DataSpec spec = CsvSpec('|');
  ArrayData a = c.arrays();
  a.dense_cols = 1;
  std::string e = MakeError(spec, a);
  EXPECT_HAS(e, "2 numeric column(s) (n0, n1)");
  EXPECT_HAS(e, "the array has 1");
  a = c.arrays();
  a.id_cols = 3;
  e = MakeError(spec, a);
  EXPECT_HAS(e, "2 categorical id column(s) (u, i)");
  EXPECT_HAS(e, "the array has 3");
  a = c.arrays();
  a.indptr = nullptr;
  EXPECT_HAS(MakeError(spec, a), "multi-valued field tags");
  a = c.arrays();
  a.labels = nullptr;
  EXPECT_HAS(MakeError(spec, a), "label");
  EXPECT_EQ(MakeError(spec, a, false), "(no error)");
  // A CSR matrix where the spec has no multi-valued field.
  std::vector<int64_t> ids(26, 1);
  std::vector<float> dense(13, 1), label{1};
  ArrayData cr = c.arrays();
  cr.rows = 1;
  cr.labels = label.data();
  cr.dense = dense.data();
  cr.dense_cols = 13;
  cr.ids = ids.data();
  cr.id_cols = 26;
  EXPECT_HAS(MakeError(DataSpec::Criteo(), cr), "no multi-valued field");
}

TEST(ArrayEncoder, BadRowsNameTheRow) {
  CsvCase c = MakeCsvCase(10, 7);
  const DataSpec spec = CsvSpec('|');
  c.labels[4] = 0.5f;
  EXPECT_HAS(AppendError(spec, c.arrays()), "row 4: label");
  c = MakeCsvCase(10, 7);
  c.indptr[3] = static_cast<int64_t>(c.indices.size()) + 5;  // past nnz
  std::string e = AppendError(spec, c.arrays());
  EXPECT_HAS(e, "row 2");
  EXPECT_HAS(e, "indptr[3]");
  c = MakeCsvCase(10, 7);
  std::vector<float> two(c.indices.size(), 1.0f);
  two.back() = 2.0f;
  ArrayData a = c.arrays();
  a.values = two.data();
  size_t bad_row = 0;  // the row holding the last entry
  while (c.indptr[bad_row + 1] < static_cast<int64_t>(c.indices.size())) ++bad_row;
  e = AppendError(spec, a);
  EXPECT_HAS(e, "row " + std::to_string(bad_row) + ":");
  EXPECT_HAS(e, "weight 2");
  EXPECT_HAS(e, "without weights");
  // A bad row leaves the rows before it in the batch, and nothing of itself.
  auto enc = ArrayEncoder::Make(spec, a, true);
  ASSERT_TRUE(enc.ok());
  Batch b;
  b.Reset(spec.num_dense, spec.num_fields);
  EXPECT_FALSE((*enc)->Append(0, 10, &b).ok());
  EXPECT_EQ(b.size(), bad_row);
  EXPECT_EQ(b.offsets.size(), bad_row * spec.num_fields + 1);

  // Criteo ids are hexadecimal: a negative one is refused.
  std::vector<int64_t> ids(2 * 26, 5);
  ids[26 + 3] = -1;
  std::vector<float> dense(2 * 13, 1), labels{0, 1};
  ArrayData cr;
  cr.rows = 2;
  cr.labels = labels.data();
  cr.dense = dense.data();
  cr.dense_cols = 13;
  cr.ids = ids.data();
  cr.id_cols = 26;
  e = AppendError(DataSpec::Criteo(), cr);
  EXPECT_HAS(e, "row 1");
  EXPECT_HAS(e, "negative");
}

TEST(ArraySpec, NewModelSpecFromColumns) {
  std::vector<float> dense(4, 1);
  std::vector<int64_t> ids(6, 1), indptr{0, 0};
  ArrayData a;
  a.rows = 2;
  a.dense = dense.data();
  a.dense_cols = 2;
  a.ids = ids.data();
  a.id_cols = 3;
  auto spec = ArraySpec(a);
  ASSERT_TRUE(spec.ok()) << spec.status().message();
  EXPECT_EQ(spec->format, Format::kCsv);
  EXPECT_EQ(spec->dense_names, (std::vector<std::string>{"d0", "d1"}));
  EXPECT_EQ(spec->field_names, (std::vector<std::string>{"c0", "c1", "c2"}));
  EXPECT_EQ(spec->csv.label, "label");

  ArrayData named = a;
  named.dense_names = {"price", "age"};
  named.id_names = {"user", "item", "age"};
  EXPECT_HAS(ArraySpec(named).status().message(), "'age' is given twice");
  named.id_names = {"user", "item,x", "shop"};
  EXPECT_HAS(ArraySpec(named).status().message(), "comma");
  named.id_names = {"user", "label", "shop"};
  EXPECT_HAS(ArraySpec(named).status().message(), "'label' is given twice");
  named.id_names = {"user"};
  EXPECT_HAS(ArraySpec(named).status().message(), "id names: 1 for 3 columns");

  ArrayData csr = a;
  csr.indptr = indptr.data();
  EXPECT_HAS(ArraySpec(csr).status().message(), "CSR");
  csr.dense_cols = 0;
  csr.id_cols = 0;
  auto svm = ArraySpec(csr);
  ASSERT_TRUE(svm.ok()) << svm.status().message();
  EXPECT_EQ(svm->format, Format::kLibsvm);
}

// --- training from arrays and from a file ---

// label, d0..d2, c0..c2: clicks follow c0.
struct Table {
  size_t rows = 0;
  std::vector<float> labels, dense;
  std::vector<int64_t> ids;
  ArrayData arrays() const {
    ArrayData a;
    a.rows = rows;
    a.labels = labels.data();
    a.dense = dense.data();
    a.dense_cols = 3;
    a.ids = ids.data();
    a.id_cols = 3;
    return a;
  }
  std::string Csv() const {
    std::string s = "label,d0,d1,d2,c0,c1,c2\n";
    for (size_t r = 0; r < rows; ++r) {
      s += Num(labels[r]);
      for (int d = 0; d < 3; ++d) s.append(",").append(Num(dense[3 * r + d]));
      for (int f = 0; f < 3; ++f) s.append(",").append(std::to_string(ids[3 * r + f]));
      s += "\n";
    }
    return s;
  }
};

Table MakeTable(size_t rows, uint32_t seed) {
  std::mt19937 rng(seed);
  Table t;
  t.rows = rows;
  for (size_t r = 0; r < rows; ++r) {
    const int64_t c0 = static_cast<int64_t>(rng() % 20) - 5;
    t.labels.push_back((rng() % 100) < (c0 % 2 == 0 ? 80u : 15u) ? 1.0f : 0.0f);
    for (int d = 0; d < 3; ++d)
      t.dense.push_back(rng() % 10 == 0 ? kNaN : static_cast<float>(static_cast<int>(rng() % 160)) / 4.0f);
    t.ids.push_back(c0);
    t.ids.push_back(static_cast<int64_t>(rng() % 300));
    t.ids.push_back(static_cast<int64_t>(rng() % 50) - 25);
  }
  return t;
}

const char* kSchema = "label = \"label\"\nnumeric = [\"d0\", \"d1\", \"d2\"]\ncategorical = [\"c0\", \"c1\", \"c2\"]\n";

TrainOptions SmallRun(const std::string& out, const std::string& shuffle_window, int epochs = 2) {
  TrainOptions o;
  o.out_dir = out;
  for (auto [k, v] : std::vector<std::pair<std::string, std::string>>{{"model", "deepfm"},
                                                                      {"embedding_dim", "4"},
                                                                      {"mlp", "8,8"},
                                                                      {"threads", "1"},
                                                                      {"deterministic", "true"},
                                                                      {"batch_size", "100"},
                                                                      {"seed", "3"},
                                                                      {"shuffle_window", shuffle_window},
                                                                      {"epochs", std::to_string(epochs)}})
    EXPECT_TRUE(o.Set(k, v).ok()) << k;
  return o;
}

Result<TrainReport> Train(const TrainOptions& o) {
  auto t = Trainer::Open(o);
  if (!t.ok()) return t.status();
  return (*t)->Fit();
}

std::string Bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

std::vector<float> PredictRows(const std::string& dir, const ArrayData& rows) {
  auto p = Predictor::Open(dir);
  EXPECT_TRUE(p.ok()) << p.status().message();
  if (!p.ok()) return {};
  Batch b;
  Status s = (*p)->Encode(rows, 0, rows.rows, &b);
  EXPECT_TRUE(s.ok()) << s.message();
  std::vector<float> out(b.size());
  s = (*p)->Predict(b, out.data());
  EXPECT_TRUE(s.ok()) << s.message();
  return out;
}

void ExpectArraysTrainAsTheFile(const std::string& shuffle_window) {
  const std::string dir = testing::TempDir() + "/window" + shuffle_window;
  // 6000 rows: the file comes as one block, the arrays as blocks of 4096
  // and 1904, so a window that took whole blocks would differ.
  const Table train = MakeTable(6000, 11), valid = MakeTable(600, 12);
  const std::string train_csv = testing::WriteTemp("train" + shuffle_window + ".csv", train.Csv());
  const std::string valid_csv = testing::WriteTemp("valid" + shuffle_window + ".csv", valid.Csv());
  const std::string schema = testing::WriteTemp("schema.toml", kSchema);

  TrainOptions from_file = SmallRun(dir + "/file", shuffle_window);
  from_file.train_files = {train_csv};
  from_file.valid_files = {valid_csv};
  from_file.schema_file = schema;
  auto a = Train(from_file);
  ASSERT_TRUE(a.ok()) << a.status().message();

  // A new model from arrays alone: the spec of label, d0.., c0.. (ArraySpec).
  TrainOptions from_arrays = SmallRun(dir + "/arrays", shuffle_window);
  from_arrays.train_arrays = train.arrays();
  from_arrays.valid_arrays = valid.arrays();
  auto b = Train(from_arrays);
  ASSERT_TRUE(b.ok()) << b.status().message();

  EXPECT_EQ(a->samples, 12000u);
  EXPECT_EQ(b->samples, a->samples);
  EXPECT_EQ(b->steps, a->steps);
  EXPECT_EQ(std::memcmp(&a->final_loss, &b->final_loss, sizeof(double)), 0);
  // Validation from arrays gives the file's metrics.
  ASSERT_TRUE(a->has_valid && b->has_valid);
  EXPECT_EQ(a->valid.count, 600u);
  EXPECT_EQ(b->valid.count, a->valid.count);
  EXPECT_EQ(b->valid.auc, a->valid.auc);
  EXPECT_EQ(b->valid.logloss, a->valid.logloss);
  EXPECT_EQ(b->valid.ctr, a->valid.ctr);
  EXPECT_GT(a->valid.auc, 0.6);  // it learned something

  const std::vector<float> pa = PredictRows(dir + "/file", valid.arrays());
  const std::vector<float> pb = PredictRows(dir + "/arrays", valid.arrays());
  ASSERT_EQ(pa.size(), 600u);
  ASSERT_EQ(pb.size(), pa.size());
  EXPECT_EQ(std::memcmp(pa.data(), pb.data(), pa.size() * sizeof(float)), 0);
  // Every weight file of the checkpoints, byte for byte.
  int bins = 0;
  for (const auto& e : stdfs::directory_iterator(dir + "/file")) {
    const std::string name = e.path().filename().string();
    if (e.path().extension() != ".bin") continue;
    ++bins;
    EXPECT_EQ(Bytes(e.path().string()), Bytes(dir + "/arrays/" + name)) << name;
  }
  EXPECT_TRUE(stdfs::exists(dir + "/file/dense.bin"));
  EXPECT_GE(bins, 2);
}

TEST(ArrayTraining, EqualsTrainingOnTheFileWithoutShuffling) { ExpectArraysTrainAsTheFile("0"); }

TEST(ArrayTraining, EqualsTrainingOnTheFileWithAShuffleWindow) { ExpectArraysTrainAsTheFile("1000"); }

TEST(ArrayTraining, EvaluateArraysEqualsEvaluateFile) {
  const std::string dir = testing::TempDir() + "/evaluate";
  const Table train = MakeTable(1500, 21), valid = MakeTable(500, 22);
  TrainOptions o = SmallRun(dir, "0", 1);
  o.train_arrays = train.arrays();
  auto t = Trainer::Open(o);
  ASSERT_TRUE(t.ok()) << t.status().message();
  ASSERT_TRUE((*t)->Fit().ok());
  const std::string valid_csv = testing::WriteTemp("evaluate.csv", valid.Csv());
  auto from_arrays = (*t)->Evaluate(valid.arrays());
  auto from_file = (*t)->Evaluate(std::vector<std::string>{valid_csv});
  ASSERT_TRUE(from_arrays.ok()) << from_arrays.status().message();
  ASSERT_TRUE(from_file.ok()) << from_file.status().message();
  EXPECT_EQ(from_arrays->count, 500u);
  EXPECT_EQ(from_arrays->auc, from_file->auc);
  EXPECT_EQ(from_arrays->logloss, from_file->logloss);
  auto p = Predictor::Open(dir);
  ASSERT_TRUE(p.ok()) << p.status().message();
  auto pm = (*p)->Evaluate(valid.arrays());
  auto pf = (*p)->Evaluate(std::vector<std::string>{valid_csv});
  ASSERT_TRUE(pm.ok() && pf.ok());
  EXPECT_EQ(pm->auc, pf->auc);
  EXPECT_EQ(pm->logloss, pf->logloss);
}

// --- history ---

nlohmann::json HistoryOf(const std::string& dir) {
  auto text = fs::ReadFile(dir + "/history.json");
  EXPECT_TRUE(text.ok()) << text.status().message();
  return text.ok() ? nlohmann::json::parse(*text) : nlohmann::json();
}

nlohmann::json TrainerJson(const std::string& dir) {
  return nlohmann::json::parse(fs::ReadFile(dir + "/trainer.json").value());
}

TEST(History, ValidationRecordsAndTheReliabilityDiagram) {
  const std::string dir = testing::TempDir() + "/history_valid";
  const Table train = MakeTable(2000, 31), valid = MakeTable(700, 32);
  TrainOptions o = SmallRun(dir, "1000");  // 20 steps an epoch
  ASSERT_TRUE(o.Set("eval_every", "7").ok());
  o.train_arrays = train.arrays();
  o.valid_arrays = valid.arrays();
  std::vector<std::string> seen;
  o.on_history = [&](const std::string& r) {
    seen.push_back(r);
    return true;
  };
  auto t = Trainer::Open(o);
  ASSERT_TRUE(t.ok()) << t.status().message();
  auto rep = (*t)->Fit();
  ASSERT_TRUE(rep.ok()) << rep.status().message();
  EXPECT_FALSE(rep->stopped);

  const nlohmann::json h = HistoryOf(dir);
  EXPECT_EQ(h.at("version"), 1);
  EXPECT_EQ(h.at("model"), "deepfm");
  const auto& records = h.at("records");
  // Steps 7, 14, 20 (epoch end), 21, 28, 35, 40 (epoch end).
  ASSERT_EQ(records.size(), 7u) << h.dump();
  ASSERT_EQ(seen.size(), records.size());
  int64_t last = 0;
  for (size_t i = 0; i < records.size(); ++i) {
    const auto& r = records[i];
    EXPECT_EQ(nlohmann::json::parse(seen[i]), r);
    EXPECT_GT(r.at("step").get<int64_t>(), last);
    last = r.at("step").get<int64_t>();
    EXPECT_EQ(r.at("samples").get<uint64_t>(), static_cast<uint64_t>(std::min<int64_t>(last * 100, 4000)));
    const double auc = r.at("valid").at("auc").get<double>();
    EXPECT_GT(auc, 0.0);
    EXPECT_LT(auc, 1.0);
    EXPECT_EQ(r.at("valid").at("count"), 700);
    EXPECT_TRUE(r.contains("train_loss"));
  }
  EXPECT_EQ(records[2].at("step"), 20);
  EXPECT_EQ(records[2].at("epoch"), 1);
  EXPECT_EQ(records.back().at("step"), 40);
  EXPECT_EQ(records.back().at("epoch"), 2);
  EXPECT_EQ(records.back().at("valid").at("auc").get<double>(), rep->valid.auc);

  const auto& rel = h.at("reliability");
  EXPECT_EQ(rel.at("step"), 40);
  uint64_t count = 0;
  double last_pred = -1;
  for (const auto& b : rel.at("buckets")) {
    count += b.at("count").get<uint64_t>();
    EXPECT_GE(b.at("mean_pred").get<double>(), last_pred);  // by ascending prediction
    last_pred = b.at("mean_pred").get<double>();
    EXPECT_GE(b.at("ctr").get<double>(), 0.0);
    EXPECT_LE(b.at("ctr").get<double>(), 1.0);
  }
  EXPECT_EQ(rel.at("buckets").size(), 20u);
  EXPECT_EQ(count, 700u);

  // The trainer, a predictor and the file agree.
  EXPECT_EQ((*t)->History(), fs::ReadFile(dir + "/history.json").value());
  auto p = Predictor::Open(dir);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ((*p)->History(), fs::ReadFile(dir + "/history.json").value());
  auto v = VerifyCheckpoint(dir);
  EXPECT_TRUE(v.ok()) << v.status().message();
  // A checkpoint holding history.json may be replaced by the next save.
  EXPECT_TRUE(fs::CheckReplaceable(dir).ok()) << fs::CheckReplaceable(dir).message();
}

// An epoch ending on a multiple of eval_every was validated at that step:
// the same model is not validated again (one record per step).
TEST(History, AnEpochEndingOnEvalEveryIsValidatedOnce) {
  const std::string dir = testing::TempDir() + "/history_once";
  const Table train = MakeTable(2000, 33), valid = MakeTable(300, 34);
  TrainOptions o = SmallRun(dir, "0");  // 20 steps an epoch
  ASSERT_TRUE(o.Set("eval_every", "10").ok());
  o.train_arrays = train.arrays();
  o.valid_arrays = valid.arrays();
  ASSERT_TRUE(Train(o).ok());
  const auto records = HistoryOf(dir).at("records");
  ASSERT_EQ(records.size(), 4u) << records.dump();
  for (size_t i = 0; i < records.size(); ++i) {
    EXPECT_EQ(records[i].at("step"), 10 * static_cast<int>(i + 1));
    EXPECT_TRUE(records[i].contains("train_loss"));
  }
}

TEST(History, OneRecordPerEpochWithoutValidationAndResumeAppends) {
  const std::string dir = testing::TempDir() + "/history_epochs";
  const Table train = MakeTable(1000, 41);
  TrainOptions o = SmallRun(dir + "/a", "0");
  o.train_arrays = train.arrays();
  auto rep = Train(o);
  ASSERT_TRUE(rep.ok()) << rep.status().message();
  const nlohmann::json h = HistoryOf(dir + "/a");
  const auto& records = h.at("records");
  ASSERT_EQ(records.size(), 2u) << h.dump();
  for (int e = 0; e < 2; ++e) {
    EXPECT_EQ(records[e].at("epoch"), e + 1);
    EXPECT_EQ(records[e].at("step"), 10 * (e + 1));
    EXPECT_GT(records[e].at("train_loss").get<double>(), 0.0);
    EXPECT_FALSE(records[e].contains("valid"));
  }
  EXPECT_FALSE(h.contains("reliability"));

  // Resumed for a third epoch: the old records stay, one is added.
  TrainOptions r = SmallRun(dir + "/b", "0", 3);
  r.resume_from = dir + "/a";
  r.train_arrays = train.arrays();
  auto rep2 = Train(r);
  ASSERT_TRUE(rep2.ok()) << rep2.status().message();
  const nlohmann::json h2 = HistoryOf(dir + "/b");
  ASSERT_EQ(h2.at("records").size(), 3u) << h2.dump();
  EXPECT_EQ(h2.at("records")[0], records[0]);
  EXPECT_EQ(h2.at("records")[1], records[1]);
  EXPECT_EQ(h2.at("records")[2].at("epoch"), 3);
  EXPECT_EQ(h2.at("records")[2].at("step"), 30);
  EXPECT_GE(h2.at("records")[2].at("seconds").get<double>(), records[1].at("seconds").get<double>());
  auto v = VerifyCheckpoint(dir + "/b");
  ASSERT_TRUE(v.ok()) << v.status().message();
  EXPECT_EQ(v->epochs_done, 3);

  // Resumed into its own directory (the save replaces a checkpoint holding history.json).
  TrainOptions same = SmallRun(dir + "/b", "0", 4);
  same.resume_from = dir + "/b";
  same.train_arrays = train.arrays();
  auto rep3 = Train(same);
  ASSERT_TRUE(rep3.ok()) << rep3.status().message();
  EXPECT_EQ(HistoryOf(dir + "/b").at("records").size(), 4u);

  // A changed history.json is refused by the manifest.
  std::string text = fs::ReadFile(dir + "/b/history.json").value();
  const size_t at = text.find("\"epoch\":1");
  ASSERT_NE(at, std::string::npos) << text;
  text[at + 8] = '7';
  {
    std::ofstream(dir + "/b/history.json", std::ios::binary | std::ios::trunc) << text;
  }
  auto bad = VerifyCheckpoint(dir + "/b");
  ASSERT_FALSE(bad.ok());
  EXPECT_HAS(bad.status().message(), "history.json");
}

// --- stopping ---

TEST(Stop, OnHistoryReturningFalseStopsMidEpochAndAResumeFinishes) {
  const std::string dir = testing::TempDir() + "/stop_history";
  const Table train = MakeTable(2000, 51), valid = MakeTable(300, 52);
  TrainOptions o = SmallRun(dir + "/a", "1000");
  ASSERT_TRUE(o.Set("eval_every", "5").ok());
  o.train_arrays = train.arrays();
  o.valid_arrays = valid.arrays();
  int calls = 0;
  o.on_history = [&](const std::string&) {
    ++calls;
    return false;
  };
  auto rep = Train(o);
  ASSERT_TRUE(rep.ok()) << rep.status().message();
  EXPECT_TRUE(rep->stopped);
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(rep->steps, 5);
  EXPECT_EQ(rep->samples, 500u);
  const nlohmann::json st = TrainerJson(dir + "/a");
  EXPECT_EQ(st.at("epochs_done"), 0) << st.dump();
  EXPECT_EQ(st.at("epoch_samples"), 500) << st.dump();
  EXPECT_EQ(HistoryOf(dir + "/a").at("records").size(), 1u);

  // The resume goes on from sample 500 and finishes both epochs.
  TrainOptions r = SmallRun(dir + "/b", "1000");
  r.resume_from = dir + "/a";
  r.train_arrays = train.arrays();
  r.valid_arrays = valid.arrays();
  auto rep2 = Train(r);
  ASSERT_TRUE(rep2.ok()) << rep2.status().message();
  EXPECT_FALSE(rep2->stopped);
  EXPECT_EQ(rep2->samples, 3500u);
  auto v = VerifyCheckpoint(dir + "/b");
  ASSERT_TRUE(v.ok()) << v.status().message();
  EXPECT_EQ(v->epochs_done, 2);
  EXPECT_EQ(v->samples, 4000u);
  EXPECT_EQ(v->epoch_samples, 0u);
  EXPECT_EQ(v->step, 40);
  const nlohmann::json h = HistoryOf(dir + "/b");
  ASSERT_EQ(h.at("records").size(), 8u) << h.dump();  // steps 5, 10, ..., 40
  EXPECT_EQ(h.at("records")[0].at("step"), 5);
  EXPECT_EQ(h.at("records")[1].at("step"), 10);

  // Stopped and resumed, it trained what a run never stopped trains.
  TrainOptions whole = SmallRun(dir + "/whole", "1000");
  ASSERT_TRUE(whole.Set("eval_every", "5").ok());
  whole.train_arrays = train.arrays();
  whole.valid_arrays = valid.arrays();
  ASSERT_TRUE(Train(whole).ok());
  int bins = 0;
  for (const auto& e : stdfs::directory_iterator(dir + "/whole")) {
    if (e.path().extension() != ".bin") continue;
    ++bins;
    EXPECT_EQ(Bytes(e.path().string()), Bytes(dir + "/b/" + e.path().filename().string())) << e.path();
  }
  EXPECT_GE(bins, 2);
}

TEST(Stop, StopFromOnStepFinishesThatStep) {
  const std::string dir = testing::TempDir() + "/stop_step";
  const Table train = MakeTable(2000, 61);
  TrainOptions o = SmallRun(dir, "0");
  o.train_arrays = train.arrays();
  Trainer* trainer = nullptr;
  int steps = 0;
  o.on_step = [&] {
    if (++steps == 3) trainer->Stop();
  };
  auto t = Trainer::Open(o);
  ASSERT_TRUE(t.ok()) << t.status().message();
  trainer = t->get();
  auto rep = trainer->Fit();
  ASSERT_TRUE(rep.ok()) << rep.status().message();
  EXPECT_TRUE(rep->stopped);
  EXPECT_EQ(rep->steps, 3);
  EXPECT_EQ(steps, 3);
  auto v = VerifyCheckpoint(dir);
  ASSERT_TRUE(v.ok()) << v.status().message();
  EXPECT_EQ(v->step, 3);
  EXPECT_EQ(v->epochs_done, 0);
  EXPECT_EQ(v->epoch_samples, 300u);
  // The stop leaves a record of the steps since the last one.
  const nlohmann::json h = HistoryOf(dir);
  ASSERT_EQ(h.at("records").size(), 1u);
  EXPECT_EQ(h.at("records")[0].at("step"), 3);
  EXPECT_TRUE(h.at("records")[0].contains("train_loss"));
}

// --- reliability ---

TEST(Reliability, EqualCountBucketsByAscendingPrediction) {
  const std::vector<double> p = {0.9, 0.1, 0.5, 0.3};
  const std::vector<float> y = {1, 0, 1, 0};
  auto two = Reliability(p, y, 2);
  ASSERT_EQ(two.size(), 2u);
  EXPECT_EQ(two[0].count, 2u);
  EXPECT_DOUBLE_EQ(two[0].mean_pred, 0.2);
  EXPECT_DOUBLE_EQ(two[0].ctr, 0.0);
  EXPECT_EQ(two[1].count, 2u);
  EXPECT_DOUBLE_EQ(two[1].mean_pred, 0.7);
  EXPECT_DOUBLE_EQ(two[1].ctr, 1.0);
  // Nearly equal counts: 4 over 3 buckets.
  auto three = Reliability({0.9, 0.1, 0.5, 0.3}, {0, 1, 1, 0}, 3);
  ASSERT_EQ(three.size(), 3u);
  EXPECT_EQ(three[0].count + three[1].count + three[2].count, 4u);
  EXPECT_DOUBLE_EQ(three[0].mean_pred, 0.1);
  EXPECT_DOUBLE_EQ(three[0].ctr, 1.0);
  EXPECT_DOUBLE_EQ(three[2].mean_pred, 0.7);
  EXPECT_DOUBLE_EQ(three[2].ctr, 0.5);
  // Fewer samples than buckets: one bucket each.
  auto few = Reliability({0.4, 0.2, 0.6}, {1, 0, 1}, 20);
  ASSERT_EQ(few.size(), 3u);
  for (const auto& b : few) EXPECT_EQ(b.count, 1u);
  EXPECT_DOUBLE_EQ(few[0].mean_pred, 0.2);
  EXPECT_DOUBLE_EQ(few[1].mean_pred, 0.4);
  EXPECT_DOUBLE_EQ(few[2].mean_pred, 0.6);
  EXPECT_TRUE(Reliability({}, {}, 20).empty());
}

// --- the shuffle window ---

// The samples of `all` in blocks of `block` (input order).
class BlockSource : public SampleSource {
 public:
  BlockSource(const Batch& all, size_t block) : all_(all), block_(block) {}
  Result<bool> Next(Batch* out) override {
    if (pos_ >= all_.size()) return false;
    out->Reset(all_.num_dense, all_.num_fields);
    for (size_t end = std::min(all_.size(), pos_ + block_); pos_ < end; ++pos_) out->AppendFrom(all_, pos_);
    return true;
  }

 private:
  const Batch& all_;
  size_t block_;
  size_t pos_ = 0;
};

std::vector<std::vector<float>> Batches(const Batch& all, size_t block, uint64_t seed) {
  StreamOptions so;
  so.batch_size = 32;
  so.shuffle_window = 50;
  so.seed = seed;
  BatchStream s(std::make_unique<BlockSource>(all, block), so);
  std::vector<std::vector<float>> out;
  Batch b;
  for (;;) {
    auto r = s.Next(&b);
    EXPECT_TRUE(r.ok()) << r.status().message();
    if (!r.ok() || !*r) break;
    out.push_back(b.dense);  // a sample's dense value is its index
    EXPECT_EQ(b.keys.size(), b.size());
    for (size_t i = 0; i < b.size(); ++i) EXPECT_EQ(b.keys[i], static_cast<uint64_t>(b.dense[i]) * 7919);
  }
  return out;
}

TEST(ShuffleWindow, BatchesDoNotDependOnTheSourceBlockSizes) {
  Batch all;
  all.Reset(1, 1);
  for (int i = 0; i < 1000; ++i) {
    all.labels.push_back(static_cast<float>(i % 2));
    all.dense.push_back(static_cast<float>(i));
    all.keys.push_back(static_cast<uint64_t>(i) * 7919);
    all.values.push_back(1);
    all.offsets.push_back(static_cast<uint32_t>(all.keys.size()));
  }
  const auto big = Batches(all, 1000, 9);
  ASSERT_EQ(big.size(), 32u);  // 1000 / 32, rounded up
  EXPECT_EQ(Batches(all, 7, 9), big);
  EXPECT_EQ(Batches(all, 1, 9), big);
  EXPECT_EQ(Batches(all, 64, 9), big);
  // Shuffled, within windows of 50: a permutation, each sample in its window.
  std::vector<float> flat;
  for (const auto& b : big) flat.insert(flat.end(), b.begin(), b.end());
  ASSERT_EQ(flat.size(), 1000u);
  std::vector<float> sorted = flat;
  std::sort(sorted.begin(), sorted.end());
  for (int i = 0; i < 1000; ++i) ASSERT_EQ(sorted[i], static_cast<float>(i));
  bool moved = false;
  for (int i = 0; i < 1000; ++i) {
    EXPECT_EQ(static_cast<int>(flat[i]) / 50, i / 50) << i;
    moved |= flat[i] != static_cast<float>(i);
  }
  EXPECT_TRUE(moved);
  EXPECT_NE(Batches(all, 7, 10), big);  // another seed, another order
}

}  // namespace
}  // namespace embark
