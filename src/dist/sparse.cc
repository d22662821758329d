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

StagedTable::StagedTable(std::unique_ptr<EmbeddingTable> local, bool wide) : local_(std::move(local)), wide_(wide) {}

void StagedTable::Lookup(const uint64_t* keys, size_t n, float* out, bool) {
  const int d = dim();
  if (step_ == nullptr) {  // between steps nothing is staged: reads as unseen
    std::memset(out, 0, sizeof(float) * d * n);
    return;
  }
  const std::vector<float>& rows = wide_ ? step_->wide : step_->emb;
  for (size_t i = 0; i < n; ++i) {
    const int64_t k = step_->Find(keys[i]);
    if (k < 0) {
      std::memset(out + i * d, 0, sizeof(float) * d);
    } else {
      std::memcpy(out + i * d, rows.data() + k * d, sizeof(float) * d);
    }
  }
}

void StagedTable::Update(const uint64_t* keys, size_t n, const float* grads) {
  const int d = dim();
  std::vector<float>& g = wide_ ? step_->wide_grad : step_->emb_grad;
  for (size_t i = 0; i < n; ++i) {
    const int64_t k = step_->Find(keys[i]);
    if (k < 0) continue;  // not staged: cannot happen for keys the step looked up
    std::lock_guard<std::mutex> lk(mu_[k & 63]);
    for (int j = 0; j < d; ++j) g[k * d + j] += grads[i * d + j];
  }
}

Status SparseExchange::Fetch(std::vector<uint64_t> keys, bool has_batch, bool create, StepRows* step) {
  const int N = comm_->size();
  const int D = emb_ ? emb_->dim() : 0, W = wide_ ? 1 : 0;
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
    if (!in.ReadOne(&has) || !in.ReadOne(&n) || in.left() != n * sizeof(uint64_t))
      return Status::Corruption("sparse fetch: malformed request from rank " + std::to_string(q));
    any |= has != 0;
    count[q] = n;
    const size_t at = asked.size();
    asked.resize(at + n);
    in.Read(asked.data() + at, n);
  }
  std::vector<float> rows(asked.size() * D), w1(asked.size() * W);
  if (emb_ && !asked.empty()) emb_->Lookup(asked.data(), asked.size(), rows.data(), create);
  if (wide_ && !asked.empty()) wide_->Lookup(asked.data(), asked.size(), w1.data(), create);
  send_.assign(N, Bytes());
  for (size_t q = 0, at = 0; q < static_cast<size_t>(N); at += count[q], ++q) {
    Append(&send_[q], rows.data() + at * D, count[q] * D);
    Append(&send_[q], w1.data() + at * W, count[q] * W);
    if (static_cast<int>(q) != comm_->rank()) bytes_ += send_[q].size();
  }
  EMBARK_RETURN_IF_ERROR(comm_->Exchange(send_, &recv_));
  // Our rows, from each owner, back into key order.
  step->emb.assign(U * D, 0.0f);
  step->wide.assign(U * W, 0.0f);
  for (int p = 0; p < N; ++p) {
    const size_t n = mine[p].size();
    if (recv_[p].size() != n * (D + W) * sizeof(float))
      return Status::Corruption("sparse fetch: malformed rows from rank " + std::to_string(p));
    const float* r = reinterpret_cast<const float*>(recv_[p].data());
    for (size_t j = 0; j < n; ++j) {
      const uint32_t i = mine[p][j];
      std::memcpy(step->emb.data() + static_cast<size_t>(i) * D, r + j * D, sizeof(float) * D);
      if (W) step->wide[i] = r[n * D + j];
    }
  }
  step->emb_grad.assign(U * D, 0.0f);
  step->wide_grad.assign(U * W, 0.0f);
  step->any = any;
  step->Index();
  return Status::OK();
}

Status SparseExchange::Push(const StepRows& step) {
  const int N = comm_->size();
  const int D = emb_ ? emb_->dim() : 0, W = wide_ ? 1 : 0;
  const size_t U = step.keys.size();
  std::vector<std::vector<uint32_t>> mine(N);
  for (size_t i = 0; i < U; ++i) mine[OwnerOf(step.keys[i], N)].push_back(static_cast<uint32_t>(i));
  send_.assign(N, Bytes());
  for (int p = 0; p < N; ++p) {
    AppendOne(&send_[p], static_cast<uint64_t>(mine[p].size()));
    for (uint32_t i : mine[p]) AppendOne(&send_[p], step.keys[i]);
    for (uint32_t i : mine[p]) Append(&send_[p], step.emb_grad.data() + static_cast<size_t>(i) * D, D);
    for (uint32_t i : mine[p]) Append(&send_[p], step.wide_grad.data() + static_cast<size_t>(i) * W, W);
    if (p != comm_->rank()) bytes_ += send_[p].size();
  }
  EMBARK_RETURN_IF_ERROR(comm_->Exchange(send_, &recv_));
  // As owner: sum what every rank sent per key, then one optimizer step per row.
  std::vector<uint64_t> keys;
  std::vector<const float*> eg, wg;
  for (int q = 0; q < N; ++q) {
    BytesReader in(recv_[q]);
    uint64_t n = 0;
    if (!in.ReadOne(&n) || in.left() != n * (sizeof(uint64_t) + sizeof(float) * (D + W)))
      return Status::Corruption("sparse push: malformed gradients from rank " + std::to_string(q));
    const size_t at = keys.size();
    keys.resize(at + n);
    in.Read(keys.data() + at, n);
    const float* g = reinterpret_cast<const float*>(recv_[q].data() + sizeof(uint64_t) + n * sizeof(uint64_t));
    for (size_t j = 0; j < n; ++j) {
      eg.push_back(g + j * D);
      wg.push_back(g + n * D + j * W);
    }
  }
  std::vector<uint32_t> order(keys.size());
  std::iota(order.begin(), order.end(), 0u);
  // Stable, so a key's gradients are summed in rank order on every run.
  std::stable_sort(order.begin(), order.end(), [&](uint32_t a, uint32_t b) { return keys[a] < keys[b]; });
  std::vector<uint64_t> ukeys;
  std::vector<float> ge, gw;
  for (size_t j = 0; j < order.size(); ++j) {
    const uint32_t i = order[j];
    if (ukeys.empty() || ukeys.back() != keys[i]) {
      ukeys.push_back(keys[i]);
      ge.resize(ge.size() + D, 0.0f);
      gw.resize(gw.size() + W, 0.0f);
    }
    float* e = ge.data() + ge.size() - D;
    for (int d = 0; d < D; ++d) e[d] += eg[i][d];
    if (W) gw.back() += wg[i][0];
  }
  if (emb_ && !ukeys.empty()) emb_->Update(ukeys.data(), ukeys.size(), ge.data());
  if (wide_ && !ukeys.empty()) wide_->Update(ukeys.data(), ukeys.size(), gw.data());
  return Status::OK();
}

}  // namespace embark
