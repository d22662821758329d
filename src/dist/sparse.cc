#include "dist/sparse.h"

#include <algorithm>
#include <cstring>
#include <numeric>

#include "util/hash.h"

namespace embark {

void StepRows::Index() {
  size_t cap = 16;
  while (cap < keys.size() * 2) cap *= 2;
  slots.assign(cap, 0);
  for (size_t i = 0; i < keys.size(); ++i) {
    size_t s = Mix64(keys[i]) & (cap - 1);
    while (slots[s] != 0) s = (s + 1) & (cap - 1);
    slots[s] = static_cast<uint32_t>(i + 1);
  }
}

int64_t StepRows::Find(uint64_t key) const {
  if (slots.empty()) return -1;
  const size_t mask = slots.size() - 1;
  for (size_t s = Mix64(key) & mask;; s = (s + 1) & mask) {
    if (slots[s] == 0) return -1;
    if (keys[slots[s] - 1] == key) return slots[s] - 1;
  }
}

Status StagedRows::Gather(int table, const uint64_t* keys, size_t n, float* out, bool) {
  const int d = dims_[table];
  if (step_ == nullptr) return Status::InvalidArgument("distributed step: no rows are staged");
  const std::vector<float>& rows = step_->rows[table];
  for (size_t i = 0; i < n; ++i) {
    const int64_t k = step_->Find(keys[i]);
    if (k < 0) return Status::InvalidArgument("distributed step: key " + std::to_string(keys[i]) + " was not staged");
    std::memcpy(out + i * d, rows.data() + k * d, sizeof(float) * d);
  }
  return Status::OK();
}

Status StagedRows::Scatter(int table, const uint64_t* keys, size_t n, const float* grads) {
  const int d = dims_[table];
  if (step_ == nullptr) return Status::InvalidArgument("distributed step: no rows are staged");
  std::vector<float>& g = step_->grads[table];
  for (size_t i = 0; i < n; ++i) {
    const int64_t k = step_->Find(keys[i]);
    if (k < 0) return Status::InvalidArgument("distributed step: key " + std::to_string(keys[i]) + " was not staged");
    std::lock_guard<std::mutex> lk(mu_[k & 63]);
    for (int j = 0; j < d; ++j) g[k * d + j] += grads[i * d + j];
  }
  return Status::OK();
}

int SparseExchange::Width() const {
  int w = 0;
  for (const RowStore* t : tables_) w += t->dim();
  return w;
}

Status SparseExchange::Fetch(std::vector<uint64_t> keys, bool has_batch, bool create, StepRows* step) {
  const int N = comm_->size();
  const int T = static_cast<int>(tables_.size()), W = Width();
  step->keys = std::move(keys);
  const size_t U = step->keys.size();
  // Requests: this rank's keys, grouped by owner.
  std::vector<std::vector<uint32_t>> mine(N);
  for (size_t i = 0; i < U; ++i) mine[OwnerOf(step->keys[i], N)].push_back(static_cast<uint32_t>(i));
  send_.assign(N, Bytes());
  for (int p = 0; p < N; ++p) {
    AppendOne(&send_[p], static_cast<uint8_t>(has_batch));
    AppendOne(&send_[p], static_cast<uint64_t>(mine[p].size()));
    for (uint32_t i : mine[p]) AppendOne(&send_[p], step->keys[i]);
    if (p != comm_->rank()) bytes_ += send_[p].size();
  }
  EMBARK_RETURN_IF_ERROR(comm_->Exchange(send_, &recv_));
  // As owner: look up every key asked for, in one call per table.
  std::vector<uint64_t> asked;
  std::vector<size_t> count(N);
  bool any = false;
  for (int q = 0; q < N; ++q) {
    BytesReader in(recv_[q]);
    uint8_t has = 0;
    uint64_t n = 0;
    if (!in.ReadOne(&has) || !in.ReadOne(&n) || !in.LeftIs(n, sizeof(uint64_t)))
      return Status::Corruption("sparse fetch: malformed request from rank " + std::to_string(q));
    any |= has != 0;
    count[q] = n;
    const size_t at = asked.size();
    asked.resize(at + n);
    in.Read(asked.data() + at, n);
  }
  // Each asked key's rows, table after table: rows[i * W + offset of table].
  std::vector<float> rows(asked.size() * W), buf;
  const Access access = create ? Access::kTrain : Access::kRead;
  for (int t = 0, off = 0; t < T; off += tables_[t]->dim(), ++t) {
    const int d = tables_[t]->dim();
    buf.resize(asked.size() * d);
    if (!asked.empty()) EMBARK_RETURN_IF_ERROR(tables_[t]->Get(asked.data(), asked.size(), buf.data(), access));
    for (size_t i = 0; i < asked.size(); ++i)
      std::memcpy(rows.data() + i * W + off, buf.data() + i * d, sizeof(float) * d);
  }
  send_.assign(N, Bytes());
  for (size_t q = 0, at = 0; q < static_cast<size_t>(N); at += count[q], ++q) {
    Append(&send_[q], rows.data() + at * W, count[q] * W);
    if (static_cast<int>(q) != comm_->rank()) bytes_ += send_[q].size();
  }
  EMBARK_RETURN_IF_ERROR(comm_->Exchange(send_, &recv_));
  // Our rows, from each owner, back into key order.
  step->rows.resize(T);
  step->grads.resize(T);
  for (int t = 0; t < T; ++t) {
    step->rows[t].assign(U * tables_[t]->dim(), 0.0f);
    step->grads[t].assign(U * tables_[t]->dim(), 0.0f);
  }
  for (int p = 0; p < N; ++p) {
    const size_t n = mine[p].size();
    if (recv_[p].size() != n * W * sizeof(float))
      return Status::Corruption("sparse fetch: malformed rows from rank " + std::to_string(p));
    const float* r = reinterpret_cast<const float*>(recv_[p].data());
    for (size_t j = 0; j < n; ++j) {
      const uint32_t i = mine[p][j];
      for (int t = 0, off = 0; t < T; off += tables_[t]->dim(), ++t) {
        const int d = tables_[t]->dim();
        std::memcpy(step->rows[t].data() + static_cast<size_t>(i) * d, r + j * W + off, sizeof(float) * d);
      }
    }
  }
  step->any = any;
  step->Index();
  return Status::OK();
}

Status SparseExchange::Push(const StepRows& step) {
  const int N = comm_->size();
  const int T = static_cast<int>(tables_.size()), W = Width();
  const size_t U = step.keys.size();
  std::vector<std::vector<uint32_t>> mine(N);
  for (size_t i = 0; i < U; ++i) mine[OwnerOf(step.keys[i], N)].push_back(static_cast<uint32_t>(i));
  send_.assign(N, Bytes());
  // Per destination: n, n keys, then per key its gradients table after table.
  for (int p = 0; p < N; ++p) {
    AppendOne(&send_[p], static_cast<uint64_t>(mine[p].size()));
    for (uint32_t i : mine[p]) AppendOne(&send_[p], step.keys[i]);
    for (uint32_t i : mine[p])
      for (int t = 0; t < T; ++t) {
        const int d = tables_[t]->dim();
        Append(&send_[p], step.grads[t].data() + static_cast<size_t>(i) * d, d);
      }
    if (p != comm_->rank()) bytes_ += send_[p].size();
  }
  EMBARK_RETURN_IF_ERROR(comm_->Exchange(send_, &recv_));
  // As owner: sum what every rank sent per key, then one optimizer step per row.
  std::vector<uint64_t> keys;
  std::vector<const float*> grad_of;  // per received key: its W gradient floats
  for (int q = 0; q < N; ++q) {
    BytesReader in(recv_[q]);
    uint64_t n = 0;
    if (!in.ReadOne(&n) || !in.LeftIs(n, sizeof(uint64_t) + sizeof(float) * W))
      return Status::Corruption("sparse push: malformed gradients from rank " + std::to_string(q));
    const size_t at = keys.size();
    keys.resize(at + n);
    in.Read(keys.data() + at, n);
    const float* g = reinterpret_cast<const float*>(recv_[q].data() + sizeof(uint64_t) + n * sizeof(uint64_t));
    for (size_t j = 0; j < n; ++j) grad_of.push_back(g + j * W);
  }
  std::vector<uint32_t> order(keys.size());
  std::iota(order.begin(), order.end(), 0u);
  // Stable, so a key's gradients are summed in rank order on every run.
  std::stable_sort(order.begin(), order.end(), [&](uint32_t a, uint32_t b) { return keys[a] < keys[b]; });
  std::vector<uint64_t> ukeys;
  std::vector<float> sum;  // W floats per unique key
  for (size_t j = 0; j < order.size(); ++j) {
    const uint32_t i = order[j];
    if (ukeys.empty() || ukeys.back() != keys[i]) {
      ukeys.push_back(keys[i]);
      sum.resize(sum.size() + W, 0.0f);
    }
    float* s = sum.data() + sum.size() - W;
    for (int k = 0; k < W; ++k) s[k] += grad_of[i][k];
  }
  if (ukeys.empty()) return Status::OK();
  std::vector<float> g;
  for (int t = 0, off = 0; t < T; off += tables_[t]->dim(), ++t) {
    const int d = tables_[t]->dim();
    g.resize(ukeys.size() * d);
    for (size_t u = 0; u < ukeys.size(); ++u)
      std::memcpy(g.data() + u * d, sum.data() + u * W + off, sizeof(float) * d);
    EMBARK_RETURN_IF_ERROR(tables_[t]->Update(ukeys.data(), ukeys.size(), g.data()));
  }
  return Status::OK();
}

}  // namespace embark
