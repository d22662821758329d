// ThreadPool::ParallelFor: every index runs once, and index i always runs on
// the same thread, so per-thread state (a trainer share's workspace, a
// store's thread-local scratch) stays with its thread from step to step.
#include "util/thread_pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

namespace embark {
namespace {

TEST(ThreadPool, EveryIndexOnceOnAFixedThread) {
  for (int threads : {1, 2, 3, 4}) {
    ThreadPool pool(threads);
    EXPECT_EQ(pool.size(), threads);
    for (size_t n : {0, 1, 2, 3, 4, 7, 64}) {
      std::vector<std::thread::id> first(n);
      for (int round = 0; round < 50; ++round) {
        std::vector<std::atomic<int>> runs(n);
        std::vector<std::thread::id> who(n);
        pool.ParallelFor(n, [&](size_t i) {
          runs[i].fetch_add(1);
          who[i] = std::this_thread::get_id();
        });
        for (size_t i = 0; i < n; ++i) {
          ASSERT_EQ(runs[i].load(), 1) << "threads " << threads << " n " << n << " i " << i;
          if (round == 0) first[i] = who[i];
          ASSERT_EQ(who[i], first[i]) << "threads " << threads << " n " << n << " i " << i << " moved thread";
        }
        // Indexes T apart share a thread; the caller runs index 0.
        for (size_t i = 0; i < n; ++i)
          if (i >= static_cast<size_t>(threads)) EXPECT_EQ(who[i], who[i - threads]);
        if (n > 0) EXPECT_EQ(who[0], std::this_thread::get_id());
      }
    }
  }
}

}  // namespace
}  // namespace embark
