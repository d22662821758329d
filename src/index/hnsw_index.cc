// The HNSW index over hnswlib 0.6.2. hnswlib's headers define non-inline
// globals (nmslib/hnswlib#407), so this is the one file of embark that
// includes them.
#include <algorithm>
#include <atomic>
#include <cstring>
#include <cmath>
#include <fstream>
#include <mutex>
#include <shared_mutex>
#include <thread>
#include <unordered_map>
#include <vector>

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wunused-variable"
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wtype-limits"
#pragma GCC diagnostic ignored "-Wclass-memaccess"
#include <hnswlib/hnswlib.h>
#pragma GCC diagnostic pop

#include "index/index.h"
#include "index/index_dir.h"
#include "index/lock.h"
#include "util/hash.h"
#include "util/json.h"

namespace embark {
namespace {

static_assert(sizeof(hnswlib::labeltype) == sizeof(uint64_t), "item ids are hnswlib labels");
using Graph = hnswlib::HierarchicalNSW<float>;

constexpr char kGraphFile[] = "hnsw.bin";
constexpr char kRawFile[] = "hnswlib_raw.bin";  // saveIndex's output, before it is adopted
constexpr char kAliasFile[] = "aliases.bin";    // (alias, representative) pairs, u64 each
constexpr float kNoScore = -std::numeric_limits<float>::infinity();

// The fixed-size head of hnswlib 0.6.2's saveIndex file (hnswalg.h).
#pragma pack(push, 1)
struct GraphHeader {
  uint64_t offset_level0, max_elements, cur_element_count, size_data_per_element, label_offset, offset_data;
  int32_t maxlevel;
  uint32_t enterpoint_node;
  uint64_t max_m, max_m0, m;
  double mult;
  uint64_t ef_construction;
};
#pragma pack(pop)
static_assert(sizeof(GraphHeader) == 96);

float Dot(const float* a, const float* b, int dim) {
  float s = 0;
  for (int i = 0; i < dim; ++i) s += a[i] * b[i];
  return s;
}

class HnswImpl final : public HnswIndex {
 public:
  HnswImpl(int dim, const HnswOptions& o) : dim_(dim), opts_(o), space_(static_cast<size_t>(dim)) {}

  // A new empty graph of `capacity` items.
  Status Create(size_t capacity) {
    try {
      graph_ = std::make_unique<Graph>(&space_, capacity, opts_.M, opts_.ef_construction);
    } catch (const std::exception& e) {
      return Status::InvalidArgument(std::string("hnsw index: cannot allocate (") + e.what() + ")");
    }
    graph_->setEf(opts_.ef_search);
    return Status::OK();
  }

  // The graph of a checked hnswlib file.
  Status Load(const std::string& path, size_t count) {
    try {
      graph_ = std::make_unique<Graph>(&space_, path, false, count);
    } catch (const std::exception& e) {
      return Status::Corruption(path + ": hnswlib refused it (" + e.what() + ")");
    }
    // hnswlib's loading constructor leaves the tombstone count unset.
    graph_->num_deleted_ = 0;
    for (size_t i = 0; i < graph_->cur_element_count; ++i)
      if (graph_->isMarkedDeleted(static_cast<hnswlib::tableint>(i))) ++graph_->num_deleted_;
    graph_->setEf(opts_.ef_search);
    return Status::OK();
  }

  int dim() const override { return dim_; }
  size_t size() const override {
    std::shared_lock lock(mu_);
    return graph_->cur_element_count + rep_of_.size();
  }
  std::string kind() const override { return "hnsw"; }
  int ef_search() const override {
    std::shared_lock lock(mu_);
    return opts_.ef_search;
  }
  Status set_ef_search(int ef) override {
    if (ef < 1) return Status::InvalidArgument("hnsw index: ef_search must be positive, not " + std::to_string(ef));
    std::unique_lock lock(mu_);
    opts_.ef_search = ef;
    graph_->setEf(static_cast<size_t>(ef));
    return Status::OK();
  }

  // Items whose vector equals, bit for bit, one already in the graph (items
  // known only by their side features, say, share one vector) are kept
  // once: the graph holds one representative and the others are its
  // aliases, given back with it. Many identical vectors in the graph would
  // crowd every search that reaches them out of the rest of the catalogue.
  Status Add(const uint64_t* ids, const float* vectors, size_t n) override {
    EMBARK_RETURN_IF_ERROR(index::CheckAdd(dim_, ids, vectors, n));
    std::unique_lock lock(mu_);
    const size_t d = static_cast<size_t>(dim_);
    // The last vector of each id in the batch: ids in the graph are updated
    // in place (one at a time: hnswlib 0.6.2 races updates against
    // inserts), new vectors inserted, in parallel when asked, and vectors
    // already present (in the graph, or earlier in this batch) make aliases.
    std::unordered_map<uint64_t, size_t> last;
    last.reserve(n);
    for (size_t i = 0; i < n; ++i) last[ids[i]] = i;
    std::vector<size_t> fresh, updates;
    std::unordered_map<uint64_t, size_t> pending;  // vector hash -> a fresh item of this batch
    std::vector<std::pair<uint64_t, std::vector<float>>> promote;  // aliases to insert as representatives
    try {
      for (size_t i = 0; i < n; ++i) {
        if (last[ids[i]] != i) continue;
        const uint64_t id = ids[i];
        const float* v = vectors + i * d;
        if (auto a = rep_of_.find(id); a != rep_of_.end()) {
          // An alias with a new vector leaves its group and comes in anew.
          std::vector<uint64_t>& group = aliases_[a->second];
          group.erase(std::find(group.begin(), group.end(), id));
          if (group.empty()) aliases_.erase(a->second);
          rep_of_.erase(a);
        }
        if (auto row = graph_->label_lookup_.find(id); row != graph_->label_lookup_.end()) {
          const float* old = Vector(row->second);
          if (std::memcmp(old, v, d * sizeof(float)) == 0) continue;
          Unhash(old, id);
          PromoteAlias(id, old, &promote);
          updates.push_back(i);
          continue;
        }
        const uint64_t h = Checksum(v, d * sizeof(float));
        if (auto r = by_hash_.find(h); r != by_hash_.end()) {
          const auto row = graph_->label_lookup_.find(r->second);
          if (row != graph_->label_lookup_.end() && std::memcmp(Vector(row->second), v, d * sizeof(float)) == 0) {
            AddAlias(id, r->second);
            continue;
          }
        }
        if (auto p = pending.find(h); p != pending.end() && std::memcmp(vectors + p->second * d, v, d * sizeof(float)) == 0) {
          AddAlias(id, ids[p->second]);
          continue;
        }
        pending.emplace(h, i);
        fresh.push_back(i);
      }
      const size_t needed = graph_->cur_element_count + fresh.size() + promote.size();
      if (needed > graph_->max_elements_) graph_->resizeIndex(std::max(needed, 2 * graph_->max_elements_));
      for (auto& [alias, old] : promote) graph_->addPoint(old.data(), alias);
      for (size_t i : updates) {
        graph_->addPoint(vectors + i * d, ids[i]);
        by_hash_.emplace(Checksum(vectors + i * d, d * sizeof(float)), ids[i]);
      }
    } catch (const std::exception& e) {
      return Status::InvalidArgument(std::string("hnsw index: Add failed (") + e.what() + ")");
    }
    const size_t threads = std::clamp<size_t>(opts_.add_threads, 1, std::max<size_t>(1, fresh.size() / 64));
    std::atomic<size_t> next{0};
    std::mutex err_mu;
    std::string err;
    auto work = [&] {
      for (size_t j; (j = next.fetch_add(1)) < fresh.size();) {
        try {
          graph_->addPoint(vectors + fresh[j] * d, ids[fresh[j]]);
        } catch (const std::exception& e) {
          std::lock_guard g(err_mu);
          if (err.empty()) err = e.what();
          next = fresh.size();
        }
      }
    };
    std::vector<std::thread> pool;
    for (size_t t = 1; t < threads; ++t) pool.emplace_back(work);
    work();
    for (auto& t : pool) t.join();
    if (!err.empty()) return Status::InvalidArgument("hnsw index: Add failed (" + err + ")");
    for (const auto& [h, i] : pending) by_hash_.emplace(h, ids[i]);
    return Status::OK();
  }

  Status Search(const float* queries, size_t nq, int k, uint64_t* ids, float* scores) const override {
    EMBARK_RETURN_IF_ERROR(index::CheckSearch(dim_, queries, nq, k, ids, scores));
    std::shared_lock lock(mu_);
    std::vector<std::pair<float, uint64_t>> hits;
    for (size_t q = 0; q < nq; ++q) {
      const float* query = queries + q * dim_;
      hits.clear();
      try {
        auto found = graph_->searchKnn(query, static_cast<size_t>(k));
        for (; !found.empty(); found.pop()) {
          const uint64_t id = found.top().second;
          // The exact inner product (hnswlib's distance is 1 - dot, rounded),
          // also the score of the item's aliases.
          const auto row = graph_->label_lookup_.find(id);
          const float score = Dot(query, Vector(row->second), dim_);
          hits.push_back({score, id});
          if (auto a = aliases_.find(id); a != aliases_.end())
            for (uint64_t alias : a->second) hits.push_back({score, alias});
        }
      } catch (const std::exception& e) {
        return Status::Corruption(std::string("hnsw index: search failed (") + e.what() + ")");
      }
      std::sort(hits.begin(), hits.end(), [](const auto& a, const auto& b) {
        return a.first > b.first || (a.first == b.first && a.second < b.second);
      });
      for (size_t i = 0; i < static_cast<size_t>(k); ++i) {
        ids[q * k + i] = i < hits.size() ? hits[i].second : kNoItem;
        scores[q * k + i] = i < hits.size() ? hits[i].first : kNoScore;
      }
    }
    return Status::OK();
  }

  Status Save(const std::string& dir, const std::map<std::string, std::string>& extra) const override {
    std::shared_lock lock(mu_);
    EMBARK_ASSIGN_OR_RETURN(auto w, index::IndexDirWriter::Begin(dir));
    const std::string raw = w->staging() + "/" + kRawFile;
    try {
      graph_->saveIndex(raw);
    } catch (const std::exception& e) {
      return Status::IOError(raw + ": hnswlib could not write it (" + e.what() + ")");
    }
    EMBARK_RETURN_IF_ERROR(w->AdoptFile(kGraphFile, raw));
    // hnswlib does not check its writes: a short file is caught here.
    EMBARK_ASSIGN_OR_RETURN(const uint64_t bytes, Env::Posix()->GetFileSize(w->staging() + "/" + kGraphFile));
    if (bytes != FileBytes())
      return Status::IOError(w->staging() + "/" + kGraphFile + ": hnswlib wrote " + std::to_string(bytes) +
                             " bytes, expected " + std::to_string(FileBytes()) + " (disk full?)");
    index::Manifest m;
    m.kind = kind();
    m.dim = dim_;
    m.count = graph_->cur_element_count;  // the graph's items; aliases.bin lists the others
    m.params = {{"M", opts_.M}, {"ef_construction", opts_.ef_construction}, {"ef_search", opts_.ef_search},
                {"aliases", rep_of_.size()}};
    if (!rep_of_.empty()) {
      std::vector<std::pair<uint64_t, uint64_t>> pairs(rep_of_.begin(), rep_of_.end());
      std::sort(pairs.begin(), pairs.end());
      std::string bytes;
      bytes.reserve(pairs.size() * 16);
      for (const auto& [alias, rep] : pairs)
        for (uint64_t x : {alias, rep})
          for (int b = 0; b < 8; ++b) bytes.push_back(static_cast<char>(x >> (8 * b)));
      EMBARK_RETURN_IF_ERROR(w->WriteFile(kAliasFile, {bytes}));
    }
    EMBARK_RETURN_IF_ERROR(w->WriteExtra(extra));
    return w->Commit(m);
  }

  size_t memory_bytes() const override {
    std::shared_lock lock(mu_);
    const Graph& g = *graph_;
    size_t upper = 0;
    for (size_t i = 0; i < g.cur_element_count; ++i) upper += g.element_levels_[i] * g.size_links_per_element_;
    // Per slot of capacity: level 0 (links, vector, label), the upper-level
    // pointer, the level, a lock, and a visited-list entry; the label map
    // (a node and a bucket per item) and the update locks.
    return g.max_elements_ * (g.size_data_per_element_ + sizeof(void*) + sizeof(int) + sizeof(std::mutex) + 2) +
           upper + g.label_lookup_.size() * 32 + g.label_lookup_.bucket_count() * sizeof(void*) +
           g.link_list_update_locks_.size() * sizeof(std::mutex) +
           // aliases (a map node each, and one in their group) and the vectors' hashes
           rep_of_.size() * 48 + aliases_.size() * 56 + by_hash_.size() * 32 + by_hash_.bucket_count() * sizeof(void*);
  }

  // After Load: the aliases of a checked aliases.bin (pairs of u64), each
  // alias not in the graph and its representative in it; then the hash of
  // every vector in the graph.
  Status LoadAliases(const std::string& bytes, const std::string& where) {
    if (bytes.size() % 16 != 0) return Status::Corruption(where + ": not whole (alias, representative) pairs");
    auto u64 = [&bytes](size_t at) {
      uint64_t x = 0;
      for (int b = 0; b < 8; ++b) x |= static_cast<uint64_t>(static_cast<unsigned char>(bytes[at + b])) << (8 * b);
      return x;
    };
    for (size_t at = 0; at < bytes.size(); at += 16) {
      const uint64_t alias = u64(at), rep = u64(at + 8);
      if (alias == kNoItem || graph_->label_lookup_.count(alias) || !graph_->label_lookup_.count(rep) ||
          rep_of_.count(alias))
        return Status::Corruption(where + ": pair " + std::to_string(at / 16) + " is not an alias of an item in the graph");
      AddAlias(alias, rep);
    }
    const size_t d = static_cast<size_t>(dim_);
    for (const auto& [label, row] : graph_->label_lookup_) by_hash_.emplace(Checksum(Vector(row), d * sizeof(float)), label);
    return Status::OK();
  }

 private:
  const float* Vector(hnswlib::tableint row) const { return reinterpret_cast<const float*>(graph_->getDataByInternalId(row)); }

  void AddAlias(uint64_t alias, uint64_t rep) {
    rep_of_[alias] = rep;
    aliases_[rep].push_back(alias);
  }
  // `id`'s vector `old` leaves the graph's node of `id`: the hash stops
  // naming it.
  void Unhash(const float* old, uint64_t id) {
    auto h = by_hash_.find(Checksum(old, static_cast<size_t>(dim_) * sizeof(float)));
    if (h != by_hash_.end() && h->second == id) by_hash_.erase(h);
  }
  // Before `rep` takes a new vector: its first alias, if any, becomes the
  // representative of `old` (queued: inserted with the batch's updates) and
  // takes over the group.
  void PromoteAlias(uint64_t rep, const float* old, std::vector<std::pair<uint64_t, std::vector<float>>>* promote) {
    auto a = aliases_.find(rep);
    if (a == aliases_.end()) return;
    std::vector<uint64_t> group = std::move(a->second);
    aliases_.erase(a);
    const uint64_t heir = group.front();
    rep_of_.erase(heir);
    for (size_t j = 1; j < group.size(); ++j) AddAlias(group[j], heir);
    promote->emplace_back(heir, std::vector<float>(old, old + dim_));
    by_hash_[Checksum(old, static_cast<size_t>(dim_) * sizeof(float))] = heir;
  }

  // The size of saveIndex's file for the graph as it is.
  uint64_t FileBytes() const {
    const Graph& g = *graph_;
    uint64_t n = sizeof(GraphHeader) + g.cur_element_count * g.size_data_per_element_;
    for (size_t i = 0; i < g.cur_element_count; ++i)
      n += sizeof(uint32_t) + (g.element_levels_[i] > 0 ? g.element_levels_[i] * g.size_links_per_element_ : 0);
    return n;
  }

  const int dim_;
  HnswOptions opts_;
  mutable index::WriterFirstMutex mu_;  // searches share it; Add, set_ef_search hold it alone
  hnswlib::InnerProductSpace space_;  // before graph_: the graph points to it
  std::unique_ptr<Graph> graph_;
  std::unordered_map<uint64_t, uint64_t> rep_of_;                 // alias -> representative (in the graph)
  std::unordered_map<uint64_t, std::vector<uint64_t>> aliases_;   // representative -> its aliases
  std::unordered_map<uint64_t, uint64_t> by_hash_;                // vector hash -> an item of the graph with it
};

Status CheckOptions(int dim, const HnswOptions& o) {
  if (dim < 1 || dim > kMaxIndexDim)
    return Status::InvalidArgument("hnsw index: dim must be in [1, " + std::to_string(kMaxIndexDim) + "], not " +
                                   std::to_string(dim));
  if (o.M < 2 || o.M > 10000) return Status::InvalidArgument("hnsw index: M must be in [2, 10000], not " + std::to_string(o.M));
  if (o.ef_construction < 1 || o.ef_search < 1)
    return Status::InvalidArgument("hnsw index: ef_construction and ef_search must be positive");
  if (o.add_threads < 1) return Status::InvalidArgument("hnsw index: add_threads must be positive");
  return Status::OK();
}

// Checks the structure of a checksummed hnswlib file against its manifest
// before hnswlib reads it: hnswlib trusts the sizes and links in the file,
// and a wrong one makes it allocate wildly or read out of bounds. One
// sequential pass: the header, every item's level-0 links and label, every
// upper-level link list.
Status CheckGraphFile(const std::string& path, uint64_t file_bytes, const index::Manifest& m, int M) {
  std::ifstream in(path, std::ios::binary);
  GraphHeader h;
  if (!in.read(reinterpret_cast<char*>(&h), sizeof(h))) return Status::Corruption(path + ": truncated header");
  const uint64_t links0 = 2 * static_cast<uint64_t>(M) * 4 + 4, links = static_cast<uint64_t>(M) * 4 + 4;
  const uint64_t element = links0 + static_cast<uint64_t>(m.dim) * 4 + 8;
  auto bad = [&](const std::string& what) { return Status::Corruption(path + ": " + what + " does not match MANIFEST.json"); };
  if (h.cur_element_count != m.count) return bad("item count " + std::to_string(h.cur_element_count));
  if (h.size_data_per_element != element || h.offset_data != links0 || h.label_offset != links0 + 4ull * m.dim)
    return bad("element size " + std::to_string(h.size_data_per_element) + " (dim mismatch?)");
  if (h.offset_level0 != 0 || h.m != static_cast<uint64_t>(M) || h.max_m != h.m || h.max_m0 != 2 * h.m)
    return bad("graph degree M " + std::to_string(h.m));
  const bool empty = m.count == 0;
  if (h.maxlevel < (empty ? -1 : 0) || h.maxlevel > 64 || (empty ? h.enterpoint_node != ~0u : h.enterpoint_node >= m.count) ||
      !(h.mult > 0) || !std::isfinite(h.mult))
    return Status::Corruption(path + ": bad graph header (levels, entry point)");
  // Every link list (hnswlib keeps its length in the first 2 of 4 bytes):
  // within the degree, and linking only items that exist.
  auto links_ok = [&](const char* list, uint64_t most) {
    uint16_t n;
    std::memcpy(&n, list, sizeof(n));
    if (n > most) return false;
    for (uint16_t j = 0; j < n; ++j) {
      uint32_t to;
      std::memcpy(&to, list + 4 + 4 * j, sizeof(to));
      if (to >= m.count) return false;
    }
    return true;
  };
  auto truncated = [&] { return Status::Corruption(path + ": truncated graph"); };
  std::vector<char> buf(element);
  for (uint64_t i = 0; i < m.count; ++i) {
    if (!in.read(buf.data(), static_cast<std::streamsize>(element))) return truncated();
    uint64_t label;
    std::memcpy(&label, buf.data() + links0 + 4ull * m.dim, sizeof(label));
    if (!links_ok(buf.data(), 2 * static_cast<uint64_t>(M)) || label == kNoItem)
      return Status::Corruption(path + ": item " + std::to_string(i) + " has bad links or label");
  }
  uint64_t pos = sizeof(h) + m.count * element;
  for (uint64_t i = 0; i < m.count; ++i) {
    uint32_t size = 0;
    if (!in.read(reinterpret_cast<char*>(&size), sizeof(size))) return truncated();
    if (size % links != 0 || size / links > static_cast<uint64_t>(h.maxlevel))
      return Status::Corruption(path + ": item " + std::to_string(i) + " has a bad link list size");
    buf.resize(size);
    if (!in.read(buf.data(), size)) return truncated();
    for (uint64_t l = 0; l < size / links; ++l)
      if (!links_ok(buf.data() + l * links, static_cast<uint64_t>(M)))
        return Status::Corruption(path + ": item " + std::to_string(i) + " has bad links at level " + std::to_string(l + 1));
    pos += 4 + size;
  }
  if (pos != file_bytes) return Status::Corruption(path + ": " + std::to_string(file_bytes - std::min(pos, file_bytes)) + " bytes past the graph");
  return Status::OK();
}

}  // namespace

Result<std::unique_ptr<HnswIndex>> NewHnswIndex(int dim, const HnswOptions& options) {
  EMBARK_RETURN_IF_ERROR(CheckOptions(dim, options));
  auto idx = std::make_unique<HnswImpl>(dim, options);
  EMBARK_RETURN_IF_ERROR(idx->Create(std::max<size_t>(options.initial_capacity, 1)));
  return std::unique_ptr<HnswIndex>(std::move(idx));
}

namespace index {

Result<std::unique_ptr<VectorIndex>> LoadHnsw(const std::string& dir, const Manifest& m) {
  const std::string mpath = dir + "/MANIFEST.json";
  HnswOptions o;
  try {
    const nlohmann::json& p = m.params;
    o.M = IntAt<int>(p, "M", 2, 10000);
    o.ef_construction = IntAt<int>(p, "ef_construction", 1, 1 << 24);
    o.ef_search = IntAt<int>(p, "ef_search", 1, 1 << 24);
  } catch (const std::exception& e) {
    return Status::Corruption(mpath + ": bad hnsw parameters (" + e.what() + ")");
  }
  EMBARK_ASSIGN_OR_RETURN(FileEntry e, Listed(m, dir, kGraphFile));
  const std::string path = dir + "/" + kGraphFile;
  // Every byte checked before hnswlib sees one.
  EMBARK_RETURN_IF_ERROR(ReadChecked(path, e, nullptr));
  EMBARK_RETURN_IF_ERROR(CheckGraphFile(path, e.bytes, m, o.M));
  auto idx = std::make_unique<HnswImpl>(m.dim, o);
  EMBARK_RETURN_IF_ERROR(idx->Load(path, std::max<uint64_t>(m.count, 1)));  // hnswlib cannot allocate 0 slots
  std::string aliases;
  if (m.files.count(kAliasFile)) {
    EMBARK_ASSIGN_OR_RETURN(FileEntry a, Listed(m, dir, kAliasFile));
    aliases.resize(a.bytes);
    EMBARK_RETURN_IF_ERROR(ReadChecked(dir + "/" + kAliasFile, a, aliases.data()));
  }
  uint64_t want = 0;
  try {
    want = m.params.contains("aliases") ? IntAt<uint64_t>(m.params, "aliases") : 0;
  } catch (const std::exception& e) {
    return Status::Corruption(mpath + ": bad hnsw parameters (" + e.what() + ")");
  }
  if (aliases.size() != want * 16)
    return Status::Corruption(dir + "/" + kAliasFile + ": " + std::to_string(aliases.size() / 16) +
                              " aliases, MANIFEST.json says " + std::to_string(want));
  EMBARK_RETURN_IF_ERROR(idx->LoadAliases(aliases, dir + "/" + kAliasFile));
  return std::unique_ptr<VectorIndex>(std::move(idx));
}

}  // namespace index
}  // namespace embark
