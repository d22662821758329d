// The exact index: every item scored by sgemm, the reference that the
// approximate indexes are measured against.
#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <mutex>
#include <shared_mutex>
#include <unordered_map>
#include <vector>

#include "index/index.h"
#include "index/index_dir.h"
#include "index/lock.h"

namespace embark {
namespace {

constexpr size_t kQueryBatch = 64;   // queries per sgemm
constexpr size_t kItemBlock = 4096;  // items per sgemm: the scores of a batch stay in cache
constexpr float kNoScore = -std::numeric_limits<float>::infinity();

struct Hit {
  float score;
  uint64_t id;
};
// Higher score first; among equal scores the smaller id.
inline bool Better(const Hit& a, const Hit& b) { return a.score > b.score || (a.score == b.score && a.id < b.id); }

// The k best of a stream of hits: candidates at or above the k-th best so far
// are kept, and cut back to k whenever 2k have gathered.
class TopK {
 public:
  explicit TopK(size_t k) : k_(k) { hits_.reserve(std::min<size_t>(2 * k, 1 << 16)); }
  void Push(float score, uint64_t id) {
    if (score < floor_) return;
    hits_.push_back({score, id});
    if (hits_.size() >= 2 * k_) Cut();
  }
  // Best first into ids/scores[0..k), the rest kNoItem / -inf.
  void Write(uint64_t* ids, float* scores) {
    if (hits_.size() > k_) Cut();
    std::sort(hits_.begin(), hits_.end(), Better);
    for (size_t i = 0; i < k_; ++i) {
      ids[i] = i < hits_.size() ? hits_[i].id : kNoItem;
      scores[i] = i < hits_.size() ? hits_[i].score : kNoScore;
    }
  }

 private:
  void Cut() {
    std::nth_element(hits_.begin(), hits_.begin() + (k_ - 1), hits_.end(), Better);
    hits_.resize(k_);
    floor_ = hits_[k_ - 1].score;  // the k-th best: nth_element put the better ones before it
  }
  size_t k_;
  float floor_ = kNoScore;
  std::vector<Hit> hits_;
};

class ExactIndex final : public VectorIndex {
 public:
  explicit ExactIndex(int dim) : dim_(dim) {}

  int dim() const override { return dim_; }
  size_t size() const override {
    std::shared_lock lock(mu_);
    return ids_.size();
  }
  std::string kind() const override { return "exact"; }

  Status Add(const uint64_t* ids, const float* vectors, size_t n) override {
    EMBARK_RETURN_IF_ERROR(index::CheckAdd(dim_, ids, vectors, n));
    std::unique_lock lock(mu_);
    AddLocked(ids, vectors, n);
    return Status::OK();
  }

  Status Search(const float* queries, size_t nq, int k, uint64_t* ids, float* scores) const override {
    EMBARK_RETURN_IF_ERROR(index::CheckSearch(dim_, queries, nq, k, ids, scores));
    std::shared_lock lock(mu_);
    const size_t items = ids_.size(), d = static_cast<size_t>(dim_);
    std::vector<float> block(std::min(nq, kQueryBatch) * std::min(std::max<size_t>(items, 1), kItemBlock));
    std::vector<TopK> tops;
    for (size_t q0 = 0; q0 < nq; q0 += kQueryBatch) {
      const size_t qn = std::min(kQueryBatch, nq - q0);
      tops.assign(qn, TopK(static_cast<size_t>(k)));
      for (size_t i0 = 0; i0 < items; i0 += kItemBlock) {
        const size_t in = std::min(kItemBlock, items - i0);
        // block[qn x in] = queries[qn x d] * items[in x d]^T
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(qn), static_cast<int>(in), dim_, 1.0f,
                    queries + q0 * d, dim_, vectors_.data() + i0 * d, dim_, 0.0f, block.data(), static_cast<int>(in));
        for (size_t q = 0; q < qn; ++q) {
          const float* s = block.data() + q * in;
          for (size_t i = 0; i < in; ++i) tops[q].Push(std::isnan(s[i]) ? kNoScore : s[i], ids_[i0 + i]);
        }
      }
      for (size_t q = 0; q < qn; ++q) tops[q].Write(ids + (q0 + q) * k, scores + (q0 + q) * k);
    }
    return Status::OK();
  }

  Status Save(const std::string& dir, const std::map<std::string, std::string>& extra) const override {
    std::shared_lock lock(mu_);
    EMBARK_ASSIGN_OR_RETURN(auto w, index::IndexDirWriter::Begin(dir));
    EMBARK_RETURN_IF_ERROR(w->WriteFile("ids.bin", {Bytes(ids_)}));
    EMBARK_RETURN_IF_ERROR(w->WriteFile("vectors.bin", {Bytes(vectors_)}));
    index::Manifest m;
    m.kind = kind();
    m.dim = dim_;
    m.count = ids_.size();
    EMBARK_RETURN_IF_ERROR(w->WriteExtra(extra));
    return w->Commit(m);
  }

  size_t memory_bytes() const override {
    std::shared_lock lock(mu_);
    // The hash map: a node (key, row, next pointer, cached hash) per item and a bucket pointer.
    return vectors_.capacity() * sizeof(float) + ids_.capacity() * sizeof(uint64_t) +
           row_.size() * 32 + row_.bucket_count() * sizeof(void*);
  }

  // Fills a new index from verified files (LoadExact).
  Status Fill(std::vector<uint64_t> ids, std::vector<float> vectors, const std::string& where) {
    ids_ = std::move(ids);
    vectors_ = std::move(vectors);
    row_.reserve(ids_.size());
    for (size_t i = 0; i < ids_.size(); ++i)
      if (ids_[i] == kNoItem || !row_.emplace(ids_[i], i).second)
        return Status::Corruption(where + "/ids.bin: item " + std::to_string(i) + " has a reserved or repeated id");
    for (size_t i = 0; i < vectors_.size(); ++i)
      if (!std::isfinite(vectors_[i]))
        return Status::Corruption(where + "/vectors.bin: item " + std::to_string(i / dim_) + " has a non-finite value");
    return Status::OK();
  }

 private:
  template <typename T>
  static std::string_view Bytes(const std::vector<T>& v) {
    return {reinterpret_cast<const char*>(v.data()), v.size() * sizeof(T)};
  }

  void AddLocked(const uint64_t* ids, const float* vectors, size_t n) {
    const size_t d = static_cast<size_t>(dim_);
    // Room for the batch at once (were every id new), growing geometrically.
    if (ids_.size() + n > ids_.capacity()) {
      const size_t rows = std::max(ids_.size() + n, 2 * ids_.capacity());
      ids_.reserve(rows);
      vectors_.reserve(rows * d);
    }
    for (size_t i = 0; i < n; ++i) {
      auto [it, fresh] = row_.emplace(ids[i], ids_.size());
      if (fresh) {
        ids_.push_back(ids[i]);
        vectors_.insert(vectors_.end(), vectors + i * d, vectors + (i + 1) * d);
      } else {
        std::memcpy(vectors_.data() + it->second * d, vectors + i * d, d * sizeof(float));
      }
    }
  }

  const int dim_;
  mutable index::WriterFirstMutex mu_;
  std::vector<float> vectors_;  // row r: the vector of ids_[r]
  std::vector<uint64_t> ids_;
  std::unordered_map<uint64_t, size_t> row_;  // id -> row
};

}  // namespace

Result<std::unique_ptr<VectorIndex>> NewExactIndex(int dim) {
  if (dim < 1 || dim > kMaxIndexDim)
    return Status::InvalidArgument("exact index: dim must be in [1, " + std::to_string(kMaxIndexDim) + "], not " +
                                   std::to_string(dim));
  return std::unique_ptr<VectorIndex>(new ExactIndex(dim));
}

namespace index {

Result<std::unique_ptr<VectorIndex>> LoadExact(const std::string& dir, const Manifest& m) {
  EMBARK_ASSIGN_OR_RETURN(FileEntry ids_e, Listed(m, dir, "ids.bin"));
  EMBARK_ASSIGN_OR_RETURN(FileEntry vec_e, Listed(m, dir, "vectors.bin"));
  const uint64_t want_ids = m.count * sizeof(uint64_t), want_vec = m.count * static_cast<uint64_t>(m.dim) * sizeof(float);
  if (ids_e.bytes != want_ids)
    return Status::Corruption(dir + "/ids.bin: " + std::to_string(ids_e.bytes) + " bytes, an index of " +
                              std::to_string(m.count) + " items needs " + std::to_string(want_ids));
  if (vec_e.bytes != want_vec)
    return Status::Corruption(dir + "/vectors.bin: " + std::to_string(vec_e.bytes) + " bytes, an index of " +
                              std::to_string(m.count) + " items of dim " + std::to_string(m.dim) + " needs " +
                              std::to_string(want_vec) + " (dim mismatch?)");
  std::vector<uint64_t> ids(m.count);
  std::vector<float> vectors(m.count * m.dim);
  EMBARK_RETURN_IF_ERROR(ReadChecked(dir + "/ids.bin", ids_e, reinterpret_cast<char*>(ids.data())));
  EMBARK_RETURN_IF_ERROR(ReadChecked(dir + "/vectors.bin", vec_e, reinterpret_cast<char*>(vectors.data())));
  auto idx = std::make_unique<ExactIndex>(m.dim);
  EMBARK_RETURN_IF_ERROR(idx->Fill(std::move(ids), std::move(vectors), dir));
  return std::unique_ptr<VectorIndex>(std::move(idx));
}

}  // namespace index
}  // namespace embark
