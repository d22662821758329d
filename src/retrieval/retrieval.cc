#include "retrieval/retrieval.h"

#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <functional>
#include <unordered_map>

#include <nlohmann/json.hpp>

#include "data/parse.h"
#include "data/pipeline.h"
#include "data/source.h"
#include "train/trainer.h"
#include "util/hash.h"

namespace embark {
namespace {

Status NeedsTwoTower(const Model& model) {
  if (model.tower_dim() > 0) return Status::OK();
  return Status::InvalidArgument("model '" + model.config().model +
                                 "' is a ranking model: retrieval needs a two_tower model (docs/retrieval.md)");
}

std::unique_ptr<BatchStream> OpenRows(const Model& model, const std::vector<std::string>& files,
                                      int64_t max_bad_lines) {
  ReadOptions ro;
  ro.max_bad_lines = max_bad_lines;
  StreamOptions so;
  so.batch_size = 4096;
  return OpenStream(files, model.spec(), ro, so);
}

// Every batch of `files` with its user or item vectors ([n, dim] in *vec)
// and each sample's item key: fn(batch, vec, keys).
Status ForEachEmbedded(const Model& model, const std::vector<std::string>& files, ThreadPool* pool,
                       int64_t max_bad_lines, bool users,
                       const std::function<Status(const Batch&, const std::vector<float>&, const std::vector<uint64_t>&)>& fn) {
  const size_t T = static_cast<size_t>(model.tower_dim());
  auto stream = OpenRows(model, files, max_bad_lines);
  auto ws = Workspaces(model, pool);
  std::vector<float> vec;
  std::vector<uint64_t> keys;
  Batch batch;
  for (;;) {
    EMBARK_ASSIGN_OR_RETURN(bool more, stream->Next(&batch));
    if (!more) return Status::OK();
    vec.resize(batch.size() * T);
    keys.resize(batch.size());
    EMBARK_RETURN_IF_ERROR(
        EmbedBatch(model, batch, pool, ws, users ? vec.data() : nullptr, users ? nullptr : vec.data(), keys.data()));
    EMBARK_RETURN_IF_ERROR(fn(batch, vec, keys));
  }
}

struct ItemRow {
  std::string name, row;
};

// The item_id text and the row of every item of a CSV file (its first row),
// by the key the text hashes to; the header line into *header.
Status ReadItemRows(const DataSpec& spec, int field, const std::string& file,
                    std::unordered_map<uint64_t, ItemRow>* items, std::string* header) {
  const CsvSchema& s = spec.csv;
  EMBARK_ASSIGN_OR_RETURN(auto src, OpenSource(file));
  LineChunker chunker(file, std::move(src));
  Chunk chunk;
  std::vector<std::string> cols;
  int column = -1;
  if (!s.header) {
    for (size_t c = 0; c < s.columns.size(); ++c)
      if (s.columns[c] == s.item_id) column = static_cast<int>(c);
  }
  bool first = true;
  for (;;) {
    EMBARK_ASSIGN_OR_RETURN(bool more, chunker.Next(&chunk));
    if (!more) break;
    std::string_view text = chunk.text;
    uint64_t line_no = chunk.first_line;
    while (!text.empty()) {
      const size_t nl = text.find('\n');
      std::string_view line = text.substr(0, nl);
      text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
      const uint64_t at = line_no++;
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      if (first && s.header) {
        first = false;
        *header = std::string(line);
        if (!SplitCsvLine(line, s.separator, &cols)) return Status::ParseError(file + ":1: unterminated quote");
        for (size_t c = 0; c < cols.size(); ++c)
          if (TrimBlanks(cols[c]) == s.item_id) column = static_cast<int>(c);
        if (column < 0) return Status::InvalidArgument(file + ":1: no column '" + s.item_id + "' (the item_id)");
        continue;
      }
      first = false;
      if (TrimBlanks(line).empty()) continue;
      if (column < 0) return Status::InvalidArgument(file + ": the schema names no column '" + s.item_id + "'");
      if (!SplitCsvLine(line, s.separator, &cols) || static_cast<int>(cols.size()) <= column) continue;  // the parser reports it
      std::string_view v = cols[column];
      if (s.trim) v = TrimBlanks(v);
      if (v.empty()) continue;
      if (v.find_first_of("\t\n") != std::string_view::npos)
        return Status::InvalidArgument(file + ":" + std::to_string(at) + ": field " + s.item_id +
                                       ": an item id may not hold a tab");
      items->emplace(FeatureKey(static_cast<uint32_t>(field), v, spec.hash_salt, spec.key_hash),
                     ItemRow{std::string(v), std::string(line)});
    }
  }
  return Status::OK();
}

}  // namespace

Status EmbedBatch(const Model& model, const Batch& batch, ThreadPool* pool,
                  const std::vector<std::unique_ptr<Workspace>>& ws, float* users, float* items, uint64_t* keys) {
  EMBARK_RETURN_IF_ERROR(NeedsTwoTower(model));
  const size_t n = batch.size(), T = static_cast<size_t>(model.tower_dim()), K = 2 * T;
  const size_t parts = std::min(ws.size(), n);
  std::vector<Status> st(parts);
  pool->ParallelFor(parts, [&](size_t i) {
    auto [b, e] = Range(n, parts, i);
    Workspace* w = ws[i].get();
    w->outputs.resize((e - b) * K);
    st[i] = model.Forward(batch, b, e, false, nullptr, w, w->outputs.data());
    if (!st[i].ok()) return;
    for (size_t k = b; k < e; ++k) {
      const float* o = w->outputs.data() + (k - b) * K;
      if (users) std::copy(o, o + T, users + k * T);
      if (items) std::copy(o + T, o + K, items + k * T);
    }
    if (keys) model.ItemKeys(batch, b, e, keys + b);
  });
  for (const Status& s : st) EMBARK_RETURN_IF_ERROR(s);
  return Status::OK();
}

Result<ItemCatalogue> EmbedItems(const Model& model, const std::vector<std::string>& files, ThreadPool* pool,
                                 int64_t max_bad_lines) {
  EMBARK_RETURN_IF_ERROR(NeedsTwoTower(model));
  EMBARK_ASSIGN_OR_RETURN(TowerFields towers, TowersOf(model.spec()));
  std::unordered_map<uint64_t, ItemRow> rows;
  ItemCatalogue cat;
  for (const std::string& f : files) {
    std::string header;
    EMBARK_RETURN_IF_ERROR(ReadItemRows(model.spec(), towers.item_id_field, f, &rows, &header));
    if (&f == &files.front()) cat.header = header;
    if (header != cat.header)
      return Status::InvalidArgument(f + ":1: the header differs from " + files.front() + "'s");
  }
  cat.dim = model.tower_dim();
  const size_t T = static_cast<size_t>(cat.dim);
  std::unordered_map<uint64_t, size_t> seen;
  EMBARK_RETURN_IF_ERROR(ForEachEmbedded(
      model, files, pool, max_bad_lines, false,
      [&](const Batch& batch, const std::vector<float>& vec, const std::vector<uint64_t>& keys) -> Status {
        for (size_t i = 0; i < batch.size(); ++i) {
          if (keys[i] == 0 || !seen.emplace(keys[i], cat.keys.size()).second) continue;
          auto it = rows.find(keys[i]);
          if (it == rows.end())
            return Status::InvalidArgument("an item of the input has no row with its item_id text (" +
                                           model.spec().csv.item_id + ")");
          cat.keys.push_back(keys[i]);
          cat.names.push_back(it->second.name);
          cat.rows.push_back(it->second.row);
          cat.vectors.insert(cat.vectors.end(), vec.begin() + i * T, vec.begin() + (i + 1) * T);
        }
        return Status::OK();
      }));
  if (cat.size() == 0)
    return Status::InvalidArgument("no items in " + (files.empty() ? std::string("the input") : files.front()) +
                                   ": no row has a value in the item_id column '" + model.spec().csv.item_id + "'");
  return cat;
}

Result<Queries> EmbedQueries(const Model& model, const std::vector<std::string>& files, ThreadPool* pool,
                             int64_t max_bad_lines) {
  EMBARK_RETURN_IF_ERROR(NeedsTwoTower(model));
  Queries q;
  q.dim = model.tower_dim();
  const size_t T = static_cast<size_t>(q.dim);
  EMBARK_RETURN_IF_ERROR(ForEachEmbedded(
      model, files, pool, max_bad_lines, true,
      [&](const Batch& batch, const std::vector<float>& vec, const std::vector<uint64_t>& keys) -> Status {
        for (size_t i = 0; i < batch.size(); ++i) {
          if (!(batch.labels[i] > 0) || keys[i] == 0) continue;
          q.items.push_back(keys[i]);
          q.users.insert(q.users.end(), vec.begin() + i * T, vec.begin() + (i + 1) * T);
        }
        return Status::OK();
      }));
  return q;
}

Result<std::vector<float>> EmbedUsers(const Model& model, const std::vector<std::string>& files, ThreadPool* pool,
                                      int64_t max_bad_lines) {
  EMBARK_RETURN_IF_ERROR(NeedsTwoTower(model));
  std::vector<float> users;
  EMBARK_RETURN_IF_ERROR(ForEachEmbedded(model, files, pool, max_bad_lines, true,
                                         [&](const Batch&, const std::vector<float>& vec, const std::vector<uint64_t>&) {
                                           users.insert(users.end(), vec.begin(), vec.end());
                                           return Status::OK();
                                         }));
  return users;
}

Result<RetrievalMetrics> EvaluateRetrieval(const VectorIndex& index, const Queries& q, const std::vector<int>& ks,
                                           ThreadPool* pool) {
  if (ks.empty()) return Status::InvalidArgument("no K to evaluate at");
  if (q.dim != index.dim())
    return Status::InvalidArgument("the index has dim " + std::to_string(index.dim()) + ", the model's vectors " +
                                   std::to_string(q.dim));
  RetrievalMetrics m;
  m.ks = ks;
  std::sort(m.ks.begin(), m.ks.end());
  m.ks.erase(std::unique(m.ks.begin(), m.ks.end()), m.ks.end());
  if (m.ks.front() < 1) return Status::InvalidArgument("K must be at least 1");
  const int kmax = m.ks.back();
  const size_t n = q.size(), T = static_cast<size_t>(q.dim);
  std::vector<int> rank(n, 0);  // 0: not in the top kmax
  const auto t0 = std::chrono::steady_clock::now();
  constexpr size_t kBlock = 256;
  const size_t blocks = (n + kBlock - 1) / kBlock;
  std::vector<Status> st(blocks);
  pool->ParallelFor(blocks, [&](size_t b) {
    const size_t lo = b * kBlock, hi = std::min(n, lo + kBlock);
    std::vector<uint64_t> ids((hi - lo) * kmax);
    std::vector<float> scores(ids.size());
    st[b] = index.Search(q.users.data() + lo * T, hi - lo, kmax, ids.data(), scores.data());
    if (!st[b].ok()) return;
    for (size_t i = lo; i < hi; ++i)
      for (int r = 0; r < kmax; ++r)
        if (ids[(i - lo) * kmax + r] == q.items[i]) {
          rank[i] = r + 1;
          break;
        }
  });
  for (const Status& s : st) EMBARK_RETURN_IF_ERROR(s);
  m.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  m.queries = n;
  m.recall.assign(m.ks.size(), 0);
  m.ndcg.assign(m.ks.size(), 0);
  for (size_t i = 0; i < n; ++i) {
    if (rank[i] == 0) continue;
    for (size_t j = 0; j < m.ks.size(); ++j)
      if (rank[i] <= m.ks[j]) {
        m.recall[j] += 1;
        m.ndcg[j] += 1.0 / std::log2(1.0 + rank[i]);
      }
  }
  for (size_t j = 0; j < m.ks.size() && n > 0; ++j) {
    m.recall[j] /= static_cast<double>(n);
    m.ndcg[j] /= static_cast<double>(n);
  }
  return m;
}

Result<std::unique_ptr<VectorIndex>> BuildIndex(const ItemCatalogue& items, const std::string& kind,
                                                const HnswOptions& hnsw) {
  std::unique_ptr<VectorIndex> idx;
  if (kind == "exact") {
    EMBARK_ASSIGN_OR_RETURN(idx, NewExactIndex(items.dim));
  } else if (kind == "hnsw") {
    // Capacity grows with Add, to what the graph holds (items with a vector
    // seen before are aliases, not nodes).
    EMBARK_ASSIGN_OR_RETURN(auto h, NewHnswIndex(items.dim, hnsw));
    idx = std::move(h);
  } else {
    return Status::InvalidArgument("unknown index kind '" + kind + "' (expected hnsw or exact)");
  }
  EMBARK_RETURN_IF_ERROR(idx->Add(items.keys.data(), items.vectors.data(), items.size()));
  return idx;
}

std::map<std::string, std::string> IndexExtras(const ItemCatalogue& items, const std::string& source_json) {
  std::string tsv, csv = items.header.empty() ? "" : items.header + "\n";
  char key[24];
  for (size_t i = 0; i < items.size(); ++i) {
    std::snprintf(key, sizeof(key), "%016" PRIx64 "\t", items.keys[i]);
    tsv += key;
    tsv += items.names[i];
    tsv += '\n';
    csv += items.rows[i];
    csv += '\n';
  }
  return {{"items.tsv", tsv}, {"items.csv", csv}, {"source.json", source_json}};
}

Result<ItemCatalogue> ReadIndexItems(const std::string& dir) {
  EMBARK_ASSIGN_OR_RETURN(std::string tsv, ReadIndexFile(dir, "items.tsv"));
  EMBARK_ASSIGN_OR_RETURN(std::string csv, ReadIndexFile(dir, "items.csv"));
  EMBARK_ASSIGN_OR_RETURN(std::string source, ReadIndexFile(dir, "source.json"));
  ItemCatalogue cat;
  const std::string where = dir + "/items.tsv";
  size_t at = 0, line = 1;
  while (at < tsv.size()) {
    const size_t nl = tsv.find('\n', at);
    if (nl == std::string::npos) return Status::Corruption(where + ":" + std::to_string(line) + ": no final newline");
    const std::string_view l(tsv.data() + at, nl - at);
    uint64_t key = 0;
    if (l.size() < 17 || l[16] != '\t' || std::sscanf(std::string(l.substr(0, 16)).c_str(), "%16" SCNx64, &key) != 1)
      return Status::Corruption(where + ":" + std::to_string(line) + ": expected 16 hex digits, a tab and a name");
    cat.keys.push_back(key);
    cat.names.emplace_back(l.substr(17));
    at = nl + 1;
    ++line;
  }
  std::vector<std::string> lines;
  for (size_t a = 0; a < csv.size();) {
    const size_t nl = csv.find('\n', a);
    if (nl == std::string::npos) return Status::Corruption(dir + "/items.csv: no final newline");
    lines.emplace_back(csv.substr(a, nl - a));
    a = nl + 1;
  }
  const size_t skip = lines.size() == cat.size() + 1 ? 1 : 0;
  if (lines.size() != cat.size() + skip)
    return Status::Corruption(dir + "/items.csv: " + std::to_string(lines.size()) + " lines for " +
                              std::to_string(cat.size()) + " items");
  if (skip) cat.header = lines[0];
  cat.rows.assign(lines.begin() + static_cast<std::ptrdiff_t>(skip), lines.end());
  try {
    cat.dim = nlohmann::json::parse(source).at("tower_dim").get<int>();
  } catch (const std::exception& e) {
    return Status::Corruption(dir + "/source.json: " + e.what());
  }
  return cat;
}

}  // namespace embark
