#include "util/thread_pool.h"

namespace embark {

ThreadPool::ThreadPool(int threads) {
  for (int i = 1; i < threads; ++i) workers_.emplace_back([this] { WorkerLoop(); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    stop_ = true;
  }
  cv_work_.notify_all();
  for (auto& t : workers_) t.join();
}

void ThreadPool::Run(size_t n, Task fn) {
  if (n == 0) return;
  if (workers_.empty() || n == 1) {
    for (size_t i = 0; i < n; ++i) fn(i);
    return;
  }
  std::unique_lock<std::mutex> lk(mu_);
  fn_ = &fn;
  next_ = 0;
  total_ = n;
  done_ = 0;
  ++generation_;
  cv_work_.notify_all();
  while (next_ < total_) {
    size_t i = next_++;
    lk.unlock();
    fn(i);
    lk.lock();
    ++done_;
  }
  cv_done_.wait(lk, [&] { return done_ == total_; });
  fn_ = nullptr;
}

void ThreadPool::WorkerLoop() {
  uint64_t seen = 0;
  std::unique_lock<std::mutex> lk(mu_);
  for (;;) {
    cv_work_.wait(lk, [&] { return stop_ || (generation_ != seen && next_ < total_); });
    if (stop_) return;
    seen = generation_;
    while (fn_ != nullptr && next_ < total_) {
      size_t i = next_++;
      const auto* fn = fn_;
      lk.unlock();
      (*fn)(i);
      lk.lock();
      if (++done_ == total_) cv_done_.notify_all();
    }
  }
}

}  // namespace embark
