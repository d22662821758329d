// A fixed pool of worker threads with one blocking primitive, ParallelFor,
// used by the trainer (one task per thread per step) and the data pipeline.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <type_traits>
#include <mutex>
#include <thread>
#include <vector>

namespace embark {

class ThreadPool {
 public:
  explicit ThreadPool(int threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return static_cast<int>(workers_.size()) + 1; }

  // Runs fn(i) for i in [0, n) across the pool and the calling thread; returns
  // when all calls have returned. Index i always runs on the same thread
  // (i % size(); the caller is thread 0). Allocates nothing (fn is called
  // through a reference, never copied into a std::function).
  template <typename Fn>
  void ParallelFor(size_t n, Fn&& fn) {
    using F = std::remove_reference_t<Fn>;
    Run(n, Task{const_cast<void*>(static_cast<const void*>(&fn)),
                [](void* f, size_t i) { (*static_cast<F*>(f))(i); }});
  }

 private:
  struct Task {
    void* fn;
    void (*call)(void*, size_t);
    void operator()(size_t i) const { call(fn, i); }
  };
  void Run(size_t n, Task task);
  void WorkerLoop(int index);

  const size_t threads_;  // workers + the calling thread
  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable cv_work_, cv_done_;
  const Task* fn_ = nullptr;
  size_t total_ = 0, done_ = 0;
  uint64_t generation_ = 0;
  bool stop_ = false;
};

}  // namespace embark
