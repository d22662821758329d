#include "serve/topk.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "checkpoint/checkpoint.h"
#include "retrieval/retrieval.h"

namespace embark::serve {
namespace {

bool Contains(const std::vector<std::string>& list, const std::string& name) {
  return std::find(list.begin(), list.end(), name) != list.end();
}

}  // namespace

Result<std::unique_ptr<Ranker>> LoadRanker(const std::string& dir) {
  EMBARK_ASSIGN_OR_RETURN(auto ck, LoadCheckpoint(dir, 0, 1, Env::Posix(), nullptr));
  if (ck.model->tower_dim() > 0)
    return Status::InvalidArgument("--ranker " + dir + ": model '" + ck.model->config().model +
                                   "' is a retrieval model; the ranker must be a ranking model (lr, fm, deepfm, ...)");
  auto m = std::make_shared<ServedModel>();
  m->model = std::move(ck.model);
  m->model->FreezeForInference();
  m->encoder = std::make_shared<const RowEncoder>(m->model->spec());
  m->version_str = "ranker";
  auto r = std::make_unique<Ranker>();
  for (const InputField& in : m->encoder->inputs()) r->inputs.push_back(in.name);
  r->model = std::move(m);
  return r;
}

Result<std::shared_ptr<ServedIndex>> LoadServedIndex(const std::string& dir, const DataSpec& spec,
                                                     const Ranker* ranker, int64_t version) {
  auto s = std::make_shared<ServedIndex>();
  EMBARK_ASSIGN_OR_RETURN(s->index, LoadIndex(dir));
  EMBARK_ASSIGN_OR_RETURN(ItemCatalogue cat, ReadIndexItems(dir));
  if (cat.dim != s->index->dim())
    return Status::Corruption(dir + "/source.json: tower_dim " + std::to_string(cat.dim) + ", but the index has dim " +
                              std::to_string(s->index->dim()));
  if (cat.size() != s->index->size())
    return Status::Corruption(dir + "/items.tsv: " + std::to_string(cat.size()) + " items, but the index holds " +
                              std::to_string(s->index->size()));
  s->at.reserve(cat.size());
  for (size_t i = 0; i < cat.size(); ++i)
    if (!s->at.emplace(cat.keys[i], static_cast<uint32_t>(i)).second)
      return Status::Corruption(dir + "/items.tsv:" + std::to_string(i + 1) + ": item '" + cat.names[i] +
                                "' is listed twice");
  s->names = std::move(cat.names);
  if (!cat.header.empty()) {
    if (!SplitCsvLine(cat.header, spec.csv.separator, &s->columns))
      return Status::Corruption(dir + "/items.csv:1: unterminated quote");
    for (std::string& c : s->columns) c = std::string(TrimBlanks(c));
  } else {
    s->columns = spec.csv.columns;
  }
  if (ranker != nullptr) {
    const size_t m = ranker->inputs.size();
    std::vector<int> col(m, -1);
    s->has_column.assign(m, false);
    for (size_t j = 0; j < m; ++j)
      for (size_t c = 0; c < s->columns.size(); ++c)
        if (s->columns[c] == ranker->inputs[j]) {
          col[j] = static_cast<int>(c);
          s->has_column[j] = true;
        }
    s->ranker_values.resize(s->names.size() * m);
    std::vector<std::string> cols;
    const size_t first_line = cat.header.empty() ? 1 : 2;
    for (size_t i = 0; i < cat.rows.size(); ++i) {
      if (!SplitCsvLine(cat.rows[i], spec.csv.separator, &cols))
        return Status::Corruption(dir + "/items.csv:" + std::to_string(i + first_line) + ": unterminated quote");
      for (size_t j = 0; j < m; ++j)
        if (col[j] >= 0 && static_cast<size_t>(col[j]) < cols.size()) s->ranker_values[i * m + j] = cols[col[j]];
    }
  }
  s->version_str = std::to_string(version);
  return s;
}

Status CheckServable(const Model& tt, const ServedIndex& idx, const Ranker* ranker) {
  if (tt.tower_dim() != idx.dim())
    return Status::InvalidArgument("the model's tower_dim is " + std::to_string(tt.tower_dim()) +
                                   " but the index's dim is " + std::to_string(idx.dim()) +
                                   ": build the index from this model (embark index)");
  if (ranker == nullptr) return Status::OK();
  for (size_t j = 0; j < ranker->inputs.size(); ++j) {
    const std::string& name = ranker->inputs[j];
    if (Contains(tt.spec().csv.user, name) || idx.has_column[j]) continue;
    return Status::InvalidArgument("the ranker's input column '" + name +
                                   "' is neither a user column of the two_tower model (given by requests) nor a "
                                   "column of the index's catalogue (items.csv)");
  }
  return Status::OK();
}

RequestShape TopKShape(const RowEncoder& enc, const DataSpec& spec, bool ranker) {
  RequestShape shape;
  for (const InputField& in : enc.inputs()) shape.given.push_back(Contains(spec.csv.user, in.name));
  shape.outputs = {"item_ids", "scores"};
  if (ranker) shape.outputs.push_back("retrieval_scores");
  shape.read_k = true;
  shape.keep_values = ranker;
  return shape;
}

std::string TopKOutputsJson(int k, bool ranker) {
  nlohmann::json o = nlohmann::json::array({{{"name", "item_ids"}, {"datatype", "BYTES"}, {"shape", {-1, k}}},
                                            {{"name", "scores"}, {"datatype", "FP32"}, {"shape", {-1, k}}}});
  if (ranker) o.push_back({{"name", "retrieval_scores"}, {"datatype", "FP32"}, {"shape", {-1, k}}});
  return o.dump();
}

Status RetrieveTopK(const Model& model, const ServedIndex& idx, const Batch& batch, int k,
                    std::vector<uint32_t>* items, std::vector<float>* scores) {
  const size_t n = batch.size(), T = static_cast<size_t>(model.tower_dim());
  // The request's own scratch: a handler thread keeps nothing of a large
  // request once it is answered.
  Workspace ws;
  std::vector<float> out(n * 2 * T), users(n * T);
  std::vector<uint64_t> ids;
  EMBARK_RETURN_IF_ERROR(model.Forward(batch, 0, n, false, nullptr, &ws, out.data()));
  for (size_t i = 0; i < n; ++i) std::copy(out.data() + i * 2 * T, out.data() + i * 2 * T + T, users.data() + i * T);
  const size_t nk = n * static_cast<size_t>(k);
  ids.resize(nk);
  scores->resize(nk);
  items->resize(nk);
  EMBARK_RETURN_IF_ERROR(idx.index->Search(users.data(), n, k, ids.data(), scores->data()));
  for (size_t i = 0; i < nk; ++i) {
    auto it = idx.at.find(ids[i]);
    if (it == idx.at.end())
      return Status::Corruption(ids[i] == kNoItem ? "the index found fewer than k = " + std::to_string(k) + " items"
                                                  : "the index holds an item its catalogue (items.tsv) lacks");
    (*items)[i] = it->second;
    (*scores)[i] = model.TowerLogit((*scores)[i]);
  }
  return Status::OK();
}

std::string RankerRows(const Ranker& ranker, const RowEncoder& enc, const DataSpec& spec, const InferRequest& req,
                       const ServedIndex& idx, const std::vector<uint32_t>& items, int k, Batch* out) {
  const RowEncoder& renc = *ranker.model->encoder;
  const size_t m = ranker.inputs.size(), ni = enc.inputs().size();
  std::vector<int> user_at(m, -1);  // the two-tower input a ranker input takes from the request
  for (size_t j = 0; j < m; ++j) {
    if (!Contains(spec.csv.user, ranker.inputs[j])) continue;
    for (size_t i = 0; i < ni; ++i)
      if (enc.inputs()[i].name == ranker.inputs[j]) user_at[j] = static_cast<int>(i);
  }
  out->Reset(renc.num_dense(), renc.num_fields());
  std::vector<RawValue> raw(m);
  for (size_t r = 0; r < req.rows; ++r) {
    for (int c = 0; c < k; ++c) {
      const uint32_t item = items[r * static_cast<size_t>(k) + static_cast<size_t>(c)];
      for (size_t j = 0; j < m; ++j) {
        raw[j] = RawValue{};
        if (user_at[j] >= 0) {
          const size_t at = r * ni + static_cast<size_t>(user_at[j]);
          raw[j] = req.values[at];
          raw[j].text = req.texts[at];
        } else if (idx.has_column[j]) {
          raw[j].kind = RawValue::kString;
          raw[j].text = idx.ranker_values[item * m + j];
        }
      }
      if (auto e = renc.Append(raw.data(), out); !e.empty())
        return "row " + std::to_string(r) + ", candidate '" + idx.names[item] + "': the ranker refuses its " + e;
    }
  }
  return {};
}

void OrderByRanker(size_t n, int k, std::vector<uint32_t>* items, std::vector<float>* probs,
                   std::vector<float>* retrieval_scores) {
  const size_t K = static_cast<size_t>(k);
  std::vector<uint32_t> order(K), it(K);
  std::vector<float> p(K), rs(K);
  for (size_t r = 0; r < n; ++r) {
    uint32_t* ri = items->data() + r * K;
    float* rp = probs->data() + r * K;
    float* rr = retrieval_scores->data() + r * K;
    for (uint32_t c = 0; c < K; ++c) order[c] = c;
    std::stable_sort(order.begin(), order.end(), [&](uint32_t a, uint32_t b) { return rp[a] > rp[b]; });
    for (size_t c = 0; c < K; ++c) {
      it[c] = ri[order[c]];
      p[c] = rp[order[c]];
      rs[c] = rr[order[c]];
    }
    std::copy(it.begin(), it.end(), ri);
    std::copy(p.begin(), p.end(), rp);
    std::copy(rs.begin(), rs.end(), rr);
  }
}

std::string TopKResponseJson(const std::string& model, const std::string& version, const std::string& id,
                             const ServedIndex& idx, const uint32_t* items, const float* scores,
                             const float* retrieval_scores, size_t n, int k) {
  const size_t nk = n * static_cast<size_t>(k);
  const std::string shape = "\"shape\":[" + std::to_string(n) + "," + std::to_string(k) + "],\"data\":[";
  std::string s;
  s.reserve(128 + nk * 28);
  AppendResponseHead(model, version, id, &s);
  s += ",\"outputs\":[{\"name\":\"item_ids\",\"datatype\":\"BYTES\"," + shape;
  for (size_t i = 0; i < nk; ++i) {
    if (i > 0) s += ',';
    AppendJsonString(idx.names[items[i]], &s);
  }
  s += "]},{\"name\":\"scores\",\"datatype\":\"FP32\"," + shape;
  AppendFloats(scores, nk, &s);
  if (retrieval_scores != nullptr) {
    s += "]},{\"name\":\"retrieval_scores\",\"datatype\":\"FP32\"," + shape;
    AppendFloats(retrieval_scores, nk, &s);
  }
  s += "]}],\"parameters\":{\"index_version\":";
  AppendJsonString(idx.version_str, &s);
  s += "}}";
  return s;
}

}  // namespace embark::serve
