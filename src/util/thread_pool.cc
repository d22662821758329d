#include "util/thread_pool.h"

namespace embark {

ThreadPool::ThreadPool(int threads) : threads_(static_cast<size_t>(threads < 1 ? 1 : threads)) {
  for (int i = 1; i < threads; ++i) workers_.emplace_back([this, i] { WorkerLoop(i); });
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
  const size_t T = threads_;
  {
    std::lock_guard<std::mutex> lk(mu_);
    fn_ = &fn;
    total_ = n;
    done_ = 0;
    ++generation_;
  }
  cv_work_.notify_all();
  // Static assignment: index i runs on thread i % T (this thread is 0), so
  // a thread meets the same shares every step and its caches and
  // thread-local scratch stay warm.
  size_t mine = 0;
  for (size_t i = 0; i < n; i += T, ++mine) fn(i);
  std::unique_lock<std::mutex> lk(mu_);
  done_ += mine;
  cv_done_.wait(lk, [&] { return done_ == total_; });
  fn_ = nullptr;
}

void ThreadPool::WorkerLoop(int index) {
  uint64_t seen = 0;
  const size_t T = threads_;
  std::unique_lock<std::mutex> lk(mu_);
  for (;;) {
    cv_work_.wait(lk, [&] { return stop_ || generation_ != seen; });
    if (stop_) return;
    seen = generation_;
    const Task* fn = fn_;
    const size_t n = total_;
    if (fn == nullptr || static_cast<size_t>(index) >= n) continue;
    lk.unlock();
    size_t mine = 0;
    for (size_t i = static_cast<size_t>(index); i < n; i += T, ++mine) (*fn)(i);
    lk.lock();
    done_ += mine;
    if (done_ == total_) cv_done_.notify_all();
  }
}

}  // namespace embark
