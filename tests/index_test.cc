#include "index/index.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <filesystem>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <random>
#include <regex>
#include <set>
#include <thread>
#include <unordered_set>

#include <nlohmann/json.hpp>
#include <xxhash.h>

#include "nn/layers.h"
#include "test_util.h"

namespace embark {
namespace {

namespace sfs = std::filesystem;

// OpenBLAS held to the calling thread, as embark's binaries run it (its own
// worker threads are not instrumented: ThreadSanitizer would flag their writes).
class BlasOnCaller : public ::testing::Environment {
  void SetUp() override { InitBlas(); }
};
[[maybe_unused]] ::testing::Environment* const kBlas = ::testing::AddGlobalTestEnvironment(new BlasOnCaller);

std::unique_ptr<VectorIndex> Make(const std::string& kind, int dim, HnswOptions o = {}) {
  if (kind == "exact") return std::move(NewExactIndex(dim).value());
  return std::move(NewHnswIndex(dim, o).value());
}

// n vectors of random unit length.
std::vector<float> UnitVectors(size_t n, int dim, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> g;
  std::vector<float> v(n * dim);
  for (size_t i = 0; i < n; ++i) {
    float norm = 0;
    for (int j = 0; j < dim; ++j) {
      v[i * dim + j] = g(rng);
      norm += v[i * dim + j] * v[i * dim + j];
    }
    for (int j = 0; j < dim; ++j) v[i * dim + j] /= std::sqrt(norm);
  }
  return v;
}

struct Results {
  std::vector<uint64_t> ids;
  std::vector<float> scores;
};

Results Search(const VectorIndex& idx, const std::vector<float>& queries, int k) {
  const size_t nq = queries.size() / idx.dim();
  Results r{std::vector<uint64_t>(nq * k), std::vector<float>(nq * k)};
  Status s = idx.Search(queries.data(), nq, k, r.ids.data(), r.scores.data());
  EXPECT_TRUE(s.ok()) << s.message();
  return r;
}

// The reference of the reference: every item's dot product in a loop,
// sorted by score then id.
Results BruteForce(const std::map<uint64_t, std::vector<float>>& items, const std::vector<float>& queries, int dim, int k) {
  Results r;
  for (size_t q = 0; q < queries.size() / dim; ++q) {
    std::vector<std::pair<float, uint64_t>> all;
    for (const auto& [id, v] : items) {
      float s = 0;
      for (int j = 0; j < dim; ++j) s += queries[q * dim + j] * v[j];
      all.push_back({-s, id});
    }
    std::sort(all.begin(), all.end());
    for (int i = 0; i < k; ++i) {
      r.ids.push_back(i < static_cast<int>(all.size()) ? all[i].second : kNoItem);
      r.scores.push_back(i < static_cast<int>(all.size()) ? -all[i].first : -INFINITY);
    }
  }
  return r;
}

double Recall(const Results& got, const Results& truth, size_t nq, int k) {
  size_t hit = 0;
  for (size_t q = 0; q < nq; ++q) {
    std::unordered_set<uint64_t> t(truth.ids.begin() + q * k, truth.ids.begin() + (q + 1) * k);
    for (int i = 0; i < k; ++i) hit += t.count(got.ids[q * k + i]);
  }
  return static_cast<double>(hit) / (nq * k);
}

// Small integers: every dot product is exact in float, so sgemm and the
// loop agree to the bit and ties are many.
TEST(ExactIndex, EqualsBruteForceWithTiesAndReplacement) {
  const int dim = 8;
  std::mt19937 rng(7);
  std::uniform_int_distribution<int> small(-2, 2);
  auto vec = [&] {
    std::vector<float> v(dim);
    for (float& x : v) x = static_cast<float>(small(rng));
    return v;
  };
  auto idx = Make("exact", dim);
  std::map<uint64_t, std::vector<float>> items;
  // 5000 items (more than one sgemm block), ids scattered, in two calls.
  for (int batch = 0; batch < 2; ++batch) {
    std::vector<uint64_t> ids;
    std::vector<float> vs;
    for (int i = 0; i < 2500; ++i) {
      const uint64_t id = (static_cast<uint64_t>(batch * 2500 + i) * 2654435761u) % 1000003;
      auto v = vec();
      ids.push_back(id);
      vs.insert(vs.end(), v.begin(), v.end());
      items[id] = v;
    }
    ASSERT_TRUE(idx->Add(ids.data(), vs.data(), ids.size()).ok());
  }
  ASSERT_EQ(idx->size(), 5000u);
  // Replace 300 of them, one id twice in the batch (the last vector wins).
  std::vector<uint64_t> ids;
  std::vector<float> vs;
  auto it = items.begin();
  for (int i = 0; i < 300; ++i, std::advance(it, 7)) {
    auto v = vec();
    ids.push_back(it->first);
    vs.insert(vs.end(), v.begin(), v.end());
    it->second = v;
  }
  ids.push_back(ids[0]);
  auto v = vec();
  vs.insert(vs.end(), v.begin(), v.end());
  items[ids[0]] = v;
  ASSERT_TRUE(idx->Add(ids.data(), vs.data(), ids.size()).ok());
  ASSERT_EQ(idx->size(), 5000u);

  std::vector<float> queries;
  for (int q = 0; q < 70; ++q) {  // more than one query batch
    auto qv = vec();
    queries.insert(queries.end(), qv.begin(), qv.end());
  }
  for (int k : {1, 10, 100}) {
    Results got = Search(*idx, queries, k), want = BruteForce(items, queries, dim, k);
    EXPECT_EQ(got.ids, want.ids) << "k " << k;
    EXPECT_EQ(got.scores, want.scores) << "k " << k;
  }
  // A query at a time gives the same as the batch.
  Results batch = Search(*idx, queries, 10);
  for (size_t q = 0; q < 70; ++q) {
    Results one = Search(*idx, std::vector<float>(queries.begin() + q * dim, queries.begin() + (q + 1) * dim), 10);
    EXPECT_TRUE(std::equal(one.ids.begin(), one.ids.end(), batch.ids.begin() + q * 10));
  }
}

TEST(ExactIndex, RandomFloatsAgreeWithLoop) {
  const int dim = 32, k = 20;
  auto idx = Make("exact", dim);
  auto vs = UnitVectors(3000, dim, 1);
  std::map<uint64_t, std::vector<float>> items;
  std::vector<uint64_t> ids(3000);
  for (size_t i = 0; i < ids.size(); ++i) {
    ids[i] = 10 * i + 3;
    items[ids[i]] = std::vector<float>(vs.begin() + i * dim, vs.begin() + (i + 1) * dim);
  }
  ASSERT_TRUE(idx->Add(ids.data(), vs.data(), ids.size()).ok());
  auto queries = UnitVectors(30, dim, 2);
  Results got = Search(*idx, queries, k), want = BruteForce(items, queries, dim, k);
  for (size_t i = 0; i < got.ids.size(); ++i) {
    EXPECT_NEAR(got.scores[i], want.scores[i], 1e-5);
    // Same item, unless two scores are within rounding of each other.
    if (got.ids[i] != want.ids[i]) {
      EXPECT_NEAR(got.scores[i], want.scores[i], 1e-6);
    }
  }
}

TEST(VectorIndex, FewerItemsThanKAndBadArguments) {
  for (std::string kind : {"exact", "hnsw"}) {
    SCOPED_TRACE(kind);
    auto idx = Make(kind, 4);
    std::vector<float> q = {1, 0, 0, 0};
    Results r = Search(*idx, q, 3);
    EXPECT_EQ(r.ids, std::vector<uint64_t>(3, kNoItem));
    EXPECT_TRUE(std::isinf(r.scores[0]) && r.scores[0] < 0);
    const uint64_t ids[2] = {5, 9};
    const float vs[8] = {1, 0, 0, 0, 0.5f, 0, 0, 0};
    ASSERT_TRUE(idx->Add(ids, vs, 2).ok());
    r = Search(*idx, q, 3);
    EXPECT_EQ(r.ids, (std::vector<uint64_t>{5, 9, kNoItem}));
    EXPECT_EQ(r.scores[0], 1.0f);
    EXPECT_EQ(r.scores[1], 0.5f);

    const float nan[4] = {1, NAN, 0, 0};
    const uint64_t one = 11, none = kNoItem;
    Status s = idx->Add(&one, nan, 1);
    EXPECT_EQ(s.code(), Status::Code::kInvalidArgument);
    EXPECT_NE(s.message().find("non-finite"), std::string::npos) << s.message();
    EXPECT_EQ(idx->Add(&none, vs, 1).code(), Status::Code::kInvalidArgument);
    EXPECT_EQ(idx->size(), 2u);
    uint64_t out_id;
    float out_score;
    EXPECT_EQ(idx->Search(q.data(), 1, 0, &out_id, &out_score).code(), Status::Code::kInvalidArgument);
    EXPECT_EQ(idx->Search(nan, 1, 1, &out_id, &out_score).code(), Status::Code::kInvalidArgument);
  }
  EXPECT_FALSE(NewExactIndex(0).ok());
  EXPECT_FALSE(NewHnswIndex(8, HnswOptions{.M = 1}).ok());
}

TEST(HnswIndex, RecallAgainstExact) {
  const int dim = 32;
  const size_t n = 20000, nq = 200;
  auto items = UnitVectors(n, dim, 11);
  std::vector<uint64_t> ids(n);
  for (size_t i = 0; i < n; ++i) ids[i] = 1000 + 3 * i;
  auto exact = Make("exact", dim);
  auto hnsw = NewHnswIndex(dim, {.M = 16, .ef_construction = 200, .ef_search = 200, .initial_capacity = 1000}).value();
  ASSERT_TRUE(exact->Add(ids.data(), items.data(), n).ok());
  // In batches, so the graph grows past its initial capacity several times.
  for (size_t i = 0; i < n; i += 5000) ASSERT_TRUE(hnsw->Add(ids.data() + i, items.data() + i * dim, 5000).ok());
  ASSERT_EQ(hnsw->size(), n);
  auto queries = UnitVectors(nq, dim, 12);
  for (int k : {10, 100}) {
    Results truth = Search(*exact, queries, k), got = Search(*hnsw, queries, k);
    const double recall = Recall(got, truth, nq, k);
    EXPECT_GE(recall, 0.95) << "recall@" << k;
    // The scores are the items' exact inner products, best first.
    for (size_t q = 0; q < nq; ++q)
      for (int i = 0; i < k; ++i) {
        const uint64_t id = got.ids[q * k + i];
        ASSERT_NE(id, kNoItem);
        const float* v = items.data() + (id - 1000) / 3 * dim;
        float s = 0;
        for (int j = 0; j < dim; ++j) s += queries[q * dim + j] * v[j];
        EXPECT_NEAR(got.scores[q * k + i], s, 1e-5);
        if (i > 0) {
          EXPECT_GE(got.scores[q * k + i - 1], got.scores[q * k + i]);
        }
      }
  }
  // A smaller ef finds less (the setting is the index's own and is used).
  Results truth = Search(*exact, queries, 100);
  ASSERT_TRUE(hnsw->set_ef_search(10).ok());
  EXPECT_EQ(hnsw->ef_search(), 10);
  const double low = Recall(Search(*hnsw, queries, 100), truth, nq, 100);
  ASSERT_TRUE(hnsw->set_ef_search(400).ok());
  const double high = Recall(Search(*hnsw, queries, 100), truth, nq, 100);
  EXPECT_LE(low, high);
}

TEST(VectorIndex, AddReplacesAVector) {
  for (std::string kind : {"exact", "hnsw"}) {
    SCOPED_TRACE(kind);
    const int dim = 16;
    const size_t n = 3000;
    auto idx = Make(kind, dim);
    auto items = UnitVectors(n, dim, 21);
    std::vector<uint64_t> ids(n);
    for (size_t i = 0; i < n; ++i) ids[i] = i;
    ASSERT_TRUE(idx->Add(ids.data(), items.data(), n).ok());
    // Item 42 moves to the opposite of where it was.
    std::vector<float> old(items.begin() + 42 * dim, items.begin() + 43 * dim), moved(dim);
    for (int j = 0; j < dim; ++j) moved[j] = -old[j];
    Results before = Search(*idx, old, 10);
    EXPECT_EQ(before.ids[0], 42u);
    const uint64_t id = 42;
    ASSERT_TRUE(idx->Add(&id, moved.data(), 1).ok());
    EXPECT_EQ(idx->size(), n);
    Results at_new = Search(*idx, moved, 10);
    EXPECT_EQ(at_new.ids[0], 42u);
    EXPECT_NEAR(at_new.scores[0], 1.0f, 1e-5);
    Results at_old = Search(*idx, old, 10);
    EXPECT_EQ(std::count(at_old.ids.begin(), at_old.ids.end(), 42u), 0);
    // The other neighbours of the old position are still found.
    EXPECT_EQ(std::vector<uint64_t>(at_old.ids.begin(), at_old.ids.begin() + 9),
              std::vector<uint64_t>(before.ids.begin() + 1, before.ids.end()));
  }
}

// An index of `kind` with 2000 items of dim 16, saved into a fresh directory.
std::string SavedIndex(const std::string& kind, const std::string& name, Results* results = nullptr,
                       std::vector<float>* queries = nullptr) {
  auto idx = Make(kind, 16, {.ef_search = 50});
  auto items = UnitVectors(2000, 16, 31);
  std::vector<uint64_t> ids(2000);
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = 77 * i + 1;
  EXPECT_TRUE(idx->Add(ids.data(), items.data(), ids.size()).ok());
  const std::string dir = testing::TempDir() + "/" + name;
  Status s = idx->Save(dir);
  EXPECT_TRUE(s.ok()) << s.message();
  if (results) {
    *queries = UnitVectors(50, 16, 32);
    *results = Search(*idx, *queries, 20);
  }
  return dir;
}

TEST(IndexFiles, SaveLoadRoundTrip) {
  for (std::string kind : {"exact", "hnsw"}) {
    SCOPED_TRACE(kind);
    Results before;
    std::vector<float> queries;
    const std::string dir = SavedIndex(kind, "round-" + kind, &before, &queries);
    EXPECT_TRUE(sfs::exists(dir + "/MANIFEST.json"));
    auto loaded = LoadIndex(dir, 16);
    ASSERT_TRUE(loaded.ok()) << loaded.status().message();
    VectorIndex& idx = **loaded;
    EXPECT_EQ(idx.kind(), kind);
    EXPECT_EQ(idx.dim(), 16);
    EXPECT_EQ(idx.size(), 2000u);
    if (kind == "hnsw") {
      EXPECT_EQ(dynamic_cast<HnswIndex&>(idx).ef_search(), 50);
    }
    Results after = Search(idx, queries, 20);
    EXPECT_EQ(after.ids, before.ids);
    EXPECT_EQ(after.scores, before.scores);
    // It keeps growing after the load, and saves again over itself.
    auto more = UnitVectors(500, 16, 33);
    std::vector<uint64_t> ids(500);
    for (size_t i = 0; i < ids.size(); ++i) ids[i] = 1000000 + i;
    ASSERT_TRUE(idx.Add(ids.data(), more.data(), ids.size()).ok());
    EXPECT_EQ(idx.size(), 2500u);
    Results found = Search(idx, std::vector<float>(more.begin() + 16, more.begin() + 32), 1);
    EXPECT_EQ(found.ids[0], 1000001u);
    Status s = idx.Save(dir);
    ASSERT_TRUE(s.ok()) << s.message();
    ASSERT_TRUE(LoadIndex(dir).ok());
    EXPECT_EQ(LoadIndex(dir).value()->size(), 2500u);
  }
}

TEST(IndexFiles, EmptyIndexRoundTrip) {
  for (std::string kind : {"exact", "hnsw"}) {
    SCOPED_TRACE(kind);
    const std::string dir = testing::TempDir() + "/empty-" + kind;
    ASSERT_TRUE(Make(kind, 8)->Save(dir).ok());
    auto loaded = LoadIndex(dir);
    ASSERT_TRUE(loaded.ok()) << loaded.status().message();
    EXPECT_EQ(loaded.value()->size(), 0u);
    const uint64_t id = 3;
    const std::vector<float> v(8, 0.5f);
    ASSERT_TRUE(loaded.value()->Add(&id, v.data(), 1).ok());
    EXPECT_EQ(Search(*loaded.value(), v, 2).ids, (std::vector<uint64_t>{3, kNoItem}));
  }
}

// Load's error for `dir`, which must be a refusal.
std::string Refusal(const std::string& dir, int dim = 0) {
  auto r = LoadIndex(dir, dim);
  EXPECT_FALSE(r.ok()) << dir << " was loaded";
  return r.ok() ? "" : r.status().message();
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}
void WriteAll(const std::string& path, const std::string& data) { std::ofstream(path, std::ios::binary) << data; }

TEST(IndexFiles, DamageIsRefusedNamingTheFile) {
  for (std::string kind : {"exact", "hnsw"}) {
    SCOPED_TRACE(kind);
    const std::string payload = kind == "exact" ? "vectors.bin" : "hnsw.bin";
    const std::string good = SavedIndex(kind, "good-" + kind);
    int n = 0;
    auto copy = [&] {
      const std::string dir = good + "-" + std::to_string(n++);
      sfs::copy(good, dir);
      return dir;
    };
    auto expect = [](const std::string& msg, std::initializer_list<const char*> parts) {
      for (const char* p : parts) EXPECT_NE(msg.find(p), std::string::npos) << "'" << p << "' not in: " << msg;
    };

    std::string d = copy();  // a flipped byte in the middle of the payload
    std::string bytes = ReadAll(d + "/" + payload);
    bytes[bytes.size() / 2] ^= 0x10;
    WriteAll(d + "/" + payload, bytes);
    expect(Refusal(d), {payload.c_str(), "checksum mismatch"});

    d = copy();  // truncated
    sfs::resize_file(d + "/" + payload, sfs::file_size(d + "/" + payload) - 100);
    expect(Refusal(d), {payload.c_str(), "truncated"});

    d = copy();  // missing
    sfs::remove(d + "/" + payload);
    expect(Refusal(d), {payload.c_str(), "lacks"});

    d = copy();  // a manifest that is not JSON
    WriteAll(d + "/MANIFEST.json", "{\"format\": \"embark-index\", ");
    expect(Refusal(d), {"MANIFEST.json", "unreadable"});

    d = copy();  // a version this build does not know
    std::string m = ReadAll(good + "/MANIFEST.json");
    WriteAll(d + "/MANIFEST.json", std::regex_replace(m, std::regex("\"version\": 1"), "\"version\": 7"));
    expect(Refusal(d), {"MANIFEST.json", "version 7"});

    d = copy();  // the manifest's dim edited: the files do not fit it
    WriteAll(d + "/MANIFEST.json", std::regex_replace(m, std::regex("\"dim\": 16"), "\"dim\": 8"));
    expect(Refusal(d), {payload.c_str(), "dim mismatch"});

    expect(Refusal(good, 32), {"dim 16", "expected 32"});  // another model's dimension
    EXPECT_TRUE(LoadIndex(good, 16).ok());
    EXPECT_EQ(LoadIndex(testing::TempDir() + "/nothing-here").status().code(), Status::Code::kNotFound);
  }
}

// A manifest that vouches for a tampered graph (size and checksum
// recomputed): the structure check refuses it before hnswlib reads it.
TEST(IndexFiles, ForgedGraphIsRefusedBeforeHnswlibReadsIt) {
  const std::string good = SavedIndex("hnsw", "forged");
  auto forge = [&](const std::string& name, const std::function<void(std::string*)>& edit) {
    const std::string dir = good + "-" + name;
    sfs::copy(good, dir);
    std::string bytes = ReadAll(dir + "/hnsw.bin");
    edit(&bytes);
    WriteAll(dir + "/hnsw.bin", bytes);
    nlohmann::json m = nlohmann::json::parse(ReadAll(dir + "/MANIFEST.json"));
    char hex[20];
    std::snprintf(hex, sizeof(hex), "%016llx", static_cast<unsigned long long>(XXH64(bytes.data(), bytes.size(), 0)));
    m["files"]["hnsw.bin"] = {{"bytes", bytes.size()}, {"xxh64", hex}};
    WriteAll(dir + "/MANIFEST.json", m.dump());
    return Refusal(dir);
  };
  // Item 0's first level-0 link (after the 96-byte header and the list's
  // 4-byte count), to an item that does not exist.
  std::string msg = forge("link", [](std::string* b) {
    const uint32_t far = 1u << 30;
    std::memcpy(b->data() + 96 + 4, &far, sizeof(far));
  });
  EXPECT_NE(msg.find("item 0 has bad links"), std::string::npos) << msg;
  // The header's item count (bytes 16..24).
  msg = forge("count", [](std::string* b) {
    const uint64_t n = uint64_t{1} << 40;
    std::memcpy(b->data() + 16, &n, sizeof(n));
  });
  EXPECT_NE(msg.find("item count"), std::string::npos) << msg;
  // Bytes appended.
  msg = forge("tail", [](std::string* b) { b->append(64, '\0'); });
  EXPECT_NE(msg.find("bytes past the graph"), std::string::npos) << msg;
}

TEST(IndexFiles, SaveReplacesOnlyAnIndex) {
  const std::string dir = testing::TempDir() + "/not-an-index";
  sfs::create_directories(dir);
  WriteAll(dir + "/notes.txt", "mine");
  auto idx = Make("exact", 4);
  Status s = idx->Save(dir);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("notes.txt"), std::string::npos) << s.message();
  EXPECT_EQ(ReadAll(dir + "/notes.txt"), "mine");
  // A checkpoint's manifest is not an index's.
  const std::string ck = testing::TempDir() + "/a-checkpoint";
  sfs::create_directories(ck);
  WriteAll(ck + "/MANIFEST.json", R"({"format": "embark-checkpoint", "version": 2, "files": {}})");
  EXPECT_FALSE(idx->Save(ck).ok());
  EXPECT_TRUE(sfs::exists(ck + "/MANIFEST.json"));
}

// Searches from 4 threads while a fifth adds and replaces items: every
// result is a valid one (ThreadSanitizer runs this too, scripts/test.sh).
// A catalogue where most items share a few vectors (items known only by
// their side features): the HNSW graph keeps each vector once and gives the
// others back as its aliases, so it finds what exact search finds; without
// that, the identical vectors crowd searches out of the rest.
TEST(HnswIndex, IdenticalVectorsAreAliasesAndFoundLikeExact) {
  const int dim = 16;
  auto distinct = UnitVectors(1500, dim, 41), shared = UnitVectors(5, dim, 42);
  std::vector<float> items;
  std::vector<uint64_t> ids;
  for (size_t i = 0; i < 1500; ++i) {
    ids.push_back(10 * i + 3);
    items.insert(items.end(), distinct.begin() + i * dim, distinct.begin() + (i + 1) * dim);
  }
  for (size_t i = 0; i < 3000; ++i) {  // 600 copies of each of 5 vectors
    ids.push_back(100000 + i);
    items.insert(items.end(), shared.begin() + (i % 5) * dim, shared.begin() + (i % 5 + 1) * dim);
  }
  auto exact = Make("exact", dim);
  auto hnsw = Make("hnsw", dim, {.ef_search = 200});
  ASSERT_TRUE(exact->Add(ids.data(), items.data(), ids.size()).ok());
  // In two calls: aliases of vectors from an earlier call and from the same one.
  const size_t half = 2000;
  ASSERT_TRUE(hnsw->Add(ids.data(), items.data(), half).ok());
  ASSERT_TRUE(hnsw->Add(ids.data() + half, items.data() + half * dim, ids.size() - half).ok());
  EXPECT_EQ(hnsw->size(), ids.size());
  // Queries near the shared vectors and elsewhere; k over a group's size.
  auto queries = UnitVectors(40, dim, 43);
  for (int q = 0; q < 10; ++q)
    for (int j = 0; j < dim; ++j) queries[q * dim + j] = shared[(q % 5) * dim + j] + 0.01f * queries[q * dim + j];
  for (int k : {10, 700}) {
    SCOPED_TRACE("k " + std::to_string(k));
    const Results want = Search(*exact, queries, k), got = Search(*hnsw, queries, k);
    EXPECT_GT(Recall(got, want, 40, k), 0.97);
    // Where a shared vector is the best, all 600 of its items come first, smallest id first.
    for (int q = 0; q < 10; ++q) {
      EXPECT_EQ(got.ids[q * k], want.ids[q * k]) << q;
      EXPECT_EQ(got.scores[q * k], got.scores[q * k + std::min(k, 600) - 1]) << q;
    }
  }
  // Saved and loaded: the same answers; the manifest counts the aliases.
  const std::string dir = testing::TempDir() + "/aliases";
  ASSERT_TRUE(hnsw->Save(dir).ok());
  EXPECT_NE(ReadAll(dir + "/MANIFEST.json").find("\"aliases\": 2995"), std::string::npos) << ReadAll(dir + "/MANIFEST.json");
  auto loaded = LoadIndex(dir, dim);
  ASSERT_TRUE(loaded.ok()) << loaded.status().message();
  EXPECT_EQ(loaded.value()->size(), ids.size());
  const Results a = Search(*hnsw, queries, 50), b = Search(*loaded.value(), queries, 50);
  EXPECT_EQ(a.ids, b.ids);
  EXPECT_EQ(a.scores, b.scores);
  // A damaged alias file is refused by name.
  std::string bytes = ReadAll(dir + "/aliases.bin");
  bytes[7] ^= 1;
  WriteAll(dir + "/aliases.bin", bytes);
  EXPECT_NE(Refusal(dir).find("aliases.bin"), std::string::npos);
}

// Replacing vectors in a group: the representative's new vector moves it
// out and an alias takes the group over; an alias's new vector makes it an
// item of its own; every item is where exact search puts it.
TEST(HnswIndex, ReplacingVectorsOfAliasedItems) {
  const int dim = 8;
  auto v = UnitVectors(4, dim, 51);
  auto hnsw = Make("hnsw", dim), exact = Make("exact", dim);
  std::vector<uint64_t> ids = {1, 2, 3, 4, 5};
  std::vector<float> items;
  for (int i = 0; i < 4; ++i) items.insert(items.end(), v.begin(), v.begin() + dim);  // 1..4 share v0
  items.insert(items.end(), v.begin() + dim, v.begin() + 2 * dim);                    // 5 has v1
  for (auto* idx : {hnsw.get(), exact.get()}) ASSERT_TRUE(idx->Add(ids.data(), items.data(), 5).ok());
  // The representative (1) and an alias (3) get new vectors.
  std::vector<uint64_t> change = {1, 3};
  std::vector<float> nv(v.begin() + 2 * dim, v.begin() + 4 * dim);
  for (auto* idx : {hnsw.get(), exact.get()}) ASSERT_TRUE(idx->Add(change.data(), nv.data(), 2).ok());
  EXPECT_EQ(hnsw->size(), 5u);
  const Results want = Search(*exact, v, 5), got = Search(*hnsw, v, 5);
  EXPECT_EQ(got.ids, want.ids);
  for (size_t i = 0; i < want.scores.size(); ++i) EXPECT_NEAR(got.scores[i], want.scores[i], 1e-6) << i;
  // And it survives a save and a load.
  const std::string dir = testing::TempDir() + "/aliases-replaced";
  ASSERT_TRUE(hnsw->Save(dir).ok());
  auto loaded = LoadIndex(dir, dim);
  ASSERT_TRUE(loaded.ok()) << loaded.status().message();
  const Results back = Search(*loaded.value(), v, 5);
  EXPECT_EQ(back.ids, want.ids);
}

TEST(VectorIndex, ConcurrentSearchesWhileAdding) {
  for (std::string kind : {"exact", "hnsw"}) {
    SCOPED_TRACE(kind);
    const int dim = 16, k = 10;
    const size_t n = 4000;
    auto idx = Make(kind, dim, {.M = 8, .ef_construction = 40, .ef_search = 40, .initial_capacity = 64});
    auto items = UnitVectors(n, dim, 41);
    std::atomic<bool> done{false};
    std::atomic<size_t> searches{0}, bad{0};
    std::vector<std::thread> readers;
    for (int t = 0; t < 4; ++t)
      readers.emplace_back([&, t] {
        auto queries = UnitVectors(8, dim, 50 + t);
        std::vector<uint64_t> ids(8 * k);
        std::vector<float> scores(8 * k);
        while (!done) {
          if (!idx->Search(queries.data(), 8, k, ids.data(), scores.data()).ok()) ++bad;
          for (size_t i = 0; i < ids.size(); ++i) {
            const bool found = ids[i] != kNoItem;
            if ((found && ids[i] >= n) || (found && !std::isfinite(scores[i])) ||
                (i % k > 0 && scores[i] > scores[i - 1]))
              ++bad;
          }
          ++searches;
        }
      });
    std::vector<uint64_t> ids(n);
    for (size_t i = 0; i < n; ++i) ids[i] = i;
    for (size_t i = 0; i < n; i += 200) ASSERT_TRUE(idx->Add(ids.data() + i, items.data() + i * dim, 200).ok());
    // Replace the first 200 with the vectors of the last 200.
    ASSERT_TRUE(idx->Add(ids.data(), items.data() + (n - 200) * dim, 200).ok());
    while (searches < 20) std::this_thread::yield();
    done = true;
    for (auto& t : readers) t.join();
    EXPECT_EQ(bad.load(), 0u);
    EXPECT_EQ(idx->size(), n);
  }
}

}  // namespace
}  // namespace embark
