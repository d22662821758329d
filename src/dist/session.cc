#include "dist/session.h"

#include <algorithm>
#include <chrono>

#include "model/model.h"

namespace embark {
namespace {

double Now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

}  // namespace

CommQueue::CommQueue() : thread_([this] { Loop(); }) {}

CommQueue::~CommQueue() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

std::shared_future<Status> CommQueue::Submit(std::function<Status()> task) {
  std::packaged_task<Status()> t(std::move(task));
  std::shared_future<Status> f = t.get_future().share();
  {
    std::lock_guard<std::mutex> lk(mu_);
    tasks_.push_back(std::move(t));
  }
  cv_.notify_all();
  return f;
}

void CommQueue::Loop() {
  for (;;) {
    std::packaged_task<Status()> t;
    {
      std::unique_lock<std::mutex> lk(mu_);
      cv_.wait(lk, [&] { return stop_ || !tasks_.empty(); });
      if (tasks_.empty()) return;  // stopping, nothing left
      t = std::move(tasks_.front());
      tasks_.pop_front();
    }
    t();
  }
}

namespace {

std::vector<int> Dims(const Model& m) {
  std::vector<int> d;
  for (int t = 0; t < m.num_tables(); ++t) d.push_back(m.table(t)->dim());
  return d;
}

std::vector<RowStore*> Tables(const Model& m) {
  std::vector<RowStore*> t;
  for (int i = 0; i < m.num_tables(); ++i) t.push_back(m.table(i));
  return t;
}

}  // namespace

DistSession::DistSession(Communicator* comm, Model* model, DistOptions opt)
    : comm_(comm), model_(model), opt_(opt), staged_(Dims(*model)) {
  sparse_ = std::make_unique<SparseExchange>(comm_, Tables(*model_));
  dense_ = std::make_unique<DenseAllreduce>(comm_, model_->params().size(), opt_.compression);
}

DistSession::~DistSession() { (void)Drain(); }

Status DistSession::Wait(const std::shared_future<Status>& f) {
  const double t0 = Now();
  Status s = f.get();
  wait_s_ += Now() - t0;
  return s;
}

Status DistSession::Drain() {
  // Every queued task has a future in pending_ or last_; a no-op task
  // queued behind them finishes after all of them.
  Status st = Wait(queue_.Submit([] { return Status::OK(); }));
  for (auto& p : pending_) {
    Status s = p->fetched.get();
    if (st.ok() && !s.ok()) st = s;
  }
  if (last_.valid()) {
    Status s = last_.get();
    if (st.ok() && !s.ok()) st = s;
  }
  return st;
}

std::vector<uint64_t> DistSession::UniqueKeys(const Batch& b) const {
  std::vector<uint64_t> k = b.keys;
  std::sort(k.begin(), k.end());
  k.erase(std::unique(k.begin(), k.end()), k.end());
  return k;
}

void DistSession::Stage(StepRows* rows) { staged_.set_step(rows); }

void DistSession::Slice(const Batch& in, int rank, int size, Batch* out) {
  out->Reset(in.num_dense, in.num_fields);
  const size_t n = in.size();
  for (size_t i = n * rank / size; i < n * (rank + 1) / size; ++i) out->AppendFrom(in, i);
}

Result<bool> DistSession::NextStep(const std::function<Result<bool>(Batch*)>& next, Batch* batch) {
  // A failed fetch or push fails every later operation too (the ranks'
  // sequences of collective calls no longer match), so stop at the first.
  if (last_.valid() && last_.wait_for(std::chrono::seconds(0)) == std::future_status::ready) {
    EMBARK_RETURN_IF_ERROR(last_.get());
  }
  while (pending_.size() < static_cast<size_t>(opt_.staleness) + 1) {
    auto p = std::make_shared<Pending>();
    if (!local_done_) {
      EMBARK_ASSIGN_OR_RETURN(bool more, next(&p->batch));
      if (!more) local_done_ = true;
      p->has = more && p->batch.size() > 0;
    }
    std::vector<uint64_t> keys;
    if (p->has) keys = UniqueKeys(p->batch);
    Pending* raw = p.get();
    p->fetched = queue_.Submit([this, raw, keys = std::move(keys)]() mutable {
      return sparse_->Fetch(std::move(keys), raw->has, true, &raw->rows);
    });
    pending_.push_back(std::move(p));
  }
  current_ = std::move(pending_.front());
  pending_.pop_front();
  EMBARK_RETURN_IF_ERROR(Wait(current_->fetched));
  if (!current_->rows.any) {
    // Every rank is out of input; the fetches queued behind this one are
    // empty on every rank too.
    for (auto& p : pending_) EMBARK_RETURN_IF_ERROR(Wait(p->fetched));
    pending_.clear();
    current_.reset();
    local_done_ = false;
    Stage(nullptr);
    return false;
  }
  Stage(&current_->rows);
  if (current_->has) {
    std::swap(*batch, current_->batch);
  } else {
    batch->Reset(current_->batch.num_dense, current_->batch.num_fields);
  }
  return true;
}

Status DistSession::FinishStep(float* grad, size_t n, double* samples) {
  const double mine = *samples;
  for (size_t i = 0; i < n; ++i) grad[i] *= static_cast<float>(mine);
  double total = mine;
  EMBARK_RETURN_IF_ERROR(Wait(queue_.Submit([&]() {
    const uint64_t before = comm_->bytes_sent();
    Status s = dense_->Sum(grad, &total);
    dense_bytes_ += comm_->bytes_sent() - before;
    return s;
  })));
  const float inv = total > 0 ? static_cast<float>(1.0 / total) : 0.0f;
  for (size_t i = 0; i < n; ++i) grad[i] *= inv;
  *samples = total;
  std::shared_ptr<Pending> cur = std::move(current_);
  last_ = queue_.Submit([this, cur]() { return sparse_->Push(cur->rows); });
  if (opt_.staleness == 0) EMBARK_RETURN_IF_ERROR(Wait(last_));
  return Status::OK();
}

Status DistSession::ScoreSlices(const std::function<Result<bool>(Batch*)>& next,
                                const std::function<Status(const Batch&, float*)>& score, std::vector<double>* probs,
                                std::vector<float>* labels) {
  EMBARK_RETURN_IF_ERROR(Drain());
  std::vector<double> my_probs;
  std::vector<float> my_labels, out;
  Batch global, mine;
  for (;;) {
    EMBARK_ASSIGN_OR_RETURN(bool more, next(&global));
    if (!more) break;
    Slice(global, comm_->rank(), comm_->size(), &mine);
    StepRows rows;
    std::vector<uint64_t> keys = UniqueKeys(mine);
    EMBARK_RETURN_IF_ERROR(Wait(queue_.Submit([&]() { return sparse_->Fetch(std::move(keys), true, false, &rows); })));
    Stage(&rows);
    out.resize(mine.size());
    if (mine.size() > 0) EMBARK_RETURN_IF_ERROR(score(mine, out.data()));
    my_probs.insert(my_probs.end(), out.begin(), out.end());
    my_labels.insert(my_labels.end(), mine.labels.begin(), mine.labels.end());
  }
  Stage(nullptr);
  Bytes msg;
  AppendOne(&msg, static_cast<uint64_t>(my_probs.size()));
  Append(&msg, my_probs.data(), my_probs.size());
  Append(&msg, my_labels.data(), my_labels.size());
  std::vector<Bytes> send(comm_->size(), msg), recv;
  EMBARK_RETURN_IF_ERROR(Wait(queue_.Submit([&]() { return comm_->Exchange(send, &recv); })));
  return ReadScores(recv, probs, labels);
}

Status ReadScores(const std::vector<Bytes>& recv, std::vector<double>* probs, std::vector<float>* labels) {
  probs->clear();
  labels->clear();
  for (size_t p = 0; p < recv.size(); ++p) {
    BytesReader in(recv[p]);
    uint64_t n = 0;
    if (!in.ReadOne(&n) || !in.LeftIs(n, sizeof(double) + sizeof(float)))
      return Status::Corruption("validation: malformed scores from rank " + std::to_string(p));
    const size_t at = probs->size();
    probs->resize(at + n);
    labels->resize(at + n);
    in.Read(probs->data() + at, n);
    in.Read(labels->data() + at, n);
  }
  return Status::OK();
}

DistStats DistSession::stats() const {
  DistStats s;
  s.wait_seconds = wait_s_;
  s.sparse_bytes = sparse_->bytes_sent();
  s.dense_bytes = dense_bytes_;
  return s;
}

}  // namespace embark
