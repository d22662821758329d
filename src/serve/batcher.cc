#include "serve/batcher.h"

#include <future>

namespace embark::serve {

struct Batcher::Item {
  const ServedModel* model;
  const Batch* batch;
  float* probs;
  Status status;
  std::chrono::steady_clock::time_point enqueued;
  std::promise<void> done;
};

Batcher::Batcher(const BatcherOptions& opt, ServerMetrics* metrics) : opt_(opt), metrics_(metrics) {
  if (opt_.max_batch_rows == 0) opt_.max_batch_rows = 1;
  for (int i = 0; i < std::max(1, opt_.workers); ++i) workers_.emplace_back([this] { Work(); });
}

Batcher::~Batcher() { Stop(); }

void Batcher::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  for (auto& t : workers_)
    if (t.joinable()) t.join();
}

Status Batcher::Score(const std::shared_ptr<const ServedModel>& model, const Batch& batch, float* probs) {
  if (batch.size() == 0) return Status::OK();
  Item item{model.get(), &batch, probs, Status::OK(), std::chrono::steady_clock::now(), {}};
  auto done = item.done.get_future();
  {
    std::lock_guard<std::mutex> lock(mu_);
    queue_.push_back(&item);
    queued_rows_ += batch.size();
  }
  cv_.notify_all();
  done.wait();  // `model` stays alive in the caller until then
  return item.status;
}

void Batcher::Work() {
  std::unique_ptr<Workspace> ws = std::make_unique<Workspace>();  // scratch only: fits any model
  Batch merged;
  std::vector<float> logits;
  std::vector<Item*> take;
  for (;;) {
    take.clear();
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return (stop_ && queue_.empty()) || (!collecting_ && !queue_.empty()); });
      if (queue_.empty()) return;
      collecting_ = true;
      const auto deadline = queue_.front()->enqueued + opt_.max_delay;
      while (!stop_ && queued_rows_ < opt_.max_batch_rows && std::chrono::steady_clock::now() < deadline)
        cv_.wait_until(lock, deadline);
      // Requests parsed for different models (around a reload) never share a pass.
      const ServedModel* model = queue_.front()->model;
      size_t rows = 0;
      while (!queue_.empty() && queue_.front()->model == model &&
             (take.empty() || rows + queue_.front()->batch->size() <= opt_.max_batch_rows)) {
        rows += queue_.front()->batch->size();
        take.push_back(queue_.front());
        queue_.pop_front();
      }
      queued_rows_ -= rows;
      collecting_ = false;
    }
    cv_.notify_all();

    const ServedModel* model = take.front()->model;
    const Batch* in = take.front()->batch;
    if (take.size() > 1) {
      merged.Reset(in->num_dense, in->num_fields);
      for (Item* it : take) merged.AppendAll(*it->batch);
      in = &merged;
    }
    const size_t n = in->size();
    logits.resize(n);
    const Status st = model->model->Logits(*in, 0, n, nullptr, ws.get(), logits.data());
    metrics_->ObserveBatch(n);
    size_t at = 0;
    for (Item* it : take) {
      const size_t m = it->batch->size();
      it->status = st;
      for (size_t i = 0; i < m; ++i) it->probs[i] = model->model->Probability(logits[at + i]);
      at += m;
      it->done.set_value();
    }
  }
}

}  // namespace embark::serve
