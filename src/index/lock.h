// The lock of an index: searches share it, Add holds it alone.
#pragma once

#include <mutex>
#include <shared_mutex>

namespace embark::index {

// A readers-writer lock that lets a waiting writer in first. glibc's
// shared_mutex prefers readers, so a steady stream of searches would keep an
// Add waiting for ever; here a reader passes a turnstile before sharing the
// lock, and a writer holds the turnstile while it waits and writes.
class WriterFirstMutex {
 public:
  void lock() {
    turnstile_.lock();
    rw_.lock();
  }
  void unlock() {
    rw_.unlock();
    turnstile_.unlock();
  }
  void lock_shared() {
    turnstile_.lock();
    turnstile_.unlock();
    rw_.lock_shared();
  }
  void unlock_shared() { rw_.unlock_shared(); }

 private:
  std::mutex turnstile_;
  std::shared_mutex rw_;
};

}  // namespace embark::index
