#include "kernels/cpu/thread_pool.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace yard::kernels::cpu {
namespace {

// Records which chunk ran each index, and fails on an index run twice.
std::vector<int> Owners(ThreadPool& pool, int64_t n) {
  std::vector<std::atomic<int>> owner(n);
  for (auto& o : owner) o.store(-1);
  pool.ParallelForChunks(n, [&](int chunk, int64_t begin, int64_t end) {
    EXPECT_LE(begin, end);
    for (int64_t i = begin; i < end; ++i) {
      EXPECT_EQ(owner[i].exchange(chunk), -1) << "index " << i << " ran twice";
    }
  });
  std::vector<int> result;
  for (auto& o : owner) result.push_back(o.load());
  return result;
}

TEST(ThreadPoolTest, CoversEveryIndexOnceWithStaticChunks) {
  for (int threads : {1, 2, 3, 8}) {
    ThreadPool pool(ThreadPool::Options{.num_threads = threads});
    EXPECT_EQ(pool.num_threads(), threads);
    for (int64_t n : {0, 1, 2, 3, 7, 64, 1001}) {
      const std::vector<int> owners = Owners(pool, n);
      const int chunks = pool.NumChunks(n);
      EXPECT_EQ(chunks, std::min<int64_t>(n, threads));
      for (int64_t i = 0; i < n; ++i) {
        ASSERT_GE(owners[i], 0) << "index " << i << " never ran";
        // The documented partition: chunk c owns [n*c/chunks, n*(c+1)/chunks).
        const int c = owners[i];
        EXPECT_GE(i, ThreadPool::ChunkBegin(n, chunks, c));
        EXPECT_LT(i, ThreadPool::ChunkBegin(n, chunks, c + 1));
      }
    }
  }
}

TEST(ThreadPoolTest, DefaultUsesAllHardwareThreads) {
  ThreadPool pool;
  const unsigned hardware = std::thread::hardware_concurrency();
  EXPECT_EQ(pool.num_threads(), hardware == 0 ? 1 : static_cast<int>(hardware));
}

// The only test here that touches the process-wide pool: it must be configured first.
TEST(ThreadPoolTest, DefaultPoolTakesTheConfiguredCountBeforeFirstUse) {
  EXPECT_TRUE(ConfigureDefaultThreadPool(5));
  EXPECT_TRUE(ConfigureDefaultThreadPool(3));  // not made yet: the last count wins
  EXPECT_EQ(DefaultThreadPool().num_threads(), 3);
  EXPECT_EQ(&DefaultThreadPool(), &DefaultThreadPool());
  EXPECT_TRUE(ConfigureDefaultThreadPool(3));   // what it already has
  EXPECT_FALSE(ConfigureDefaultThreadPool(5));  // too late: unchanged
  EXPECT_EQ(DefaultThreadPool().num_threads(), 3);
}

TEST(ThreadPoolTest, ChunksRunOnPoolThreadsOnly) {
  ThreadPool pool(ThreadPool::Options{.num_threads = 3});
  std::vector<std::thread::id> ids(3);
  for (int call = 0; call < 100; ++call) {
    pool.ParallelForChunks(3, [&](int chunk, int64_t, int64_t) {
      ids[chunk] = std::this_thread::get_id();
      // Long enough that the workers, once awake, claim chunks too.
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    });
  }
  std::sort(ids.begin(), ids.end());
  EXPECT_LE(std::unique(ids.begin(), ids.end()) - ids.begin(), 3);
}

TEST(ThreadPoolTest, CallerDoesNotWaitForABusyWorker) {
  // Workers that block at once (no spinning) are usually still waking up when the
  // caller has claimed every chunk itself: such calls complete without them, and the
  // late worker's claims on a finished job fail harmlessly.
  ThreadPool pool(ThreadPool::Options{.num_threads = 2, .spin_microseconds = 0});
  std::atomic<int> ran{0};
  for (int call = 0; call < 200; ++call) {
    pool.ParallelFor(2, [&](int64_t begin, int64_t end) { ran += end - begin; });
  }
  EXPECT_EQ(ran.load(), 400);
}

TEST(ThreadPoolTest, ManyShortCallsWithSpinningAndBlockingWorkers) {
  for (int spin : {0, 100}) {
    ThreadPool pool(ThreadPool::Options{.num_threads = 4, .spin_microseconds = spin});
    std::atomic<int64_t> sum{0};
    for (int call = 0; call < 5000; ++call) {
      pool.ParallelFor(4, [&](int64_t begin, int64_t end) {
        for (int64_t i = begin; i < end; ++i) sum.fetch_add(i + 1);
      });
    }
    EXPECT_EQ(sum.load(), 5000 * 10);
  }
}

TEST(ThreadPoolTest, WorkersThatFellAsleepWakeUp) {
  ThreadPool pool(ThreadPool::Options{.num_threads = 2, .spin_microseconds = 1});
  for (int call = 0; call < 20; ++call) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
    std::atomic<int> ran{0};
    pool.ParallelFor(2, [&](int64_t begin, int64_t end) { ran += end - begin; });
    EXPECT_EQ(ran.load(), 2);
  }
}

TEST(ThreadPoolTest, NestedCallsRunInline) {
  ThreadPool pool(ThreadPool::Options{.num_threads = 2});
  std::atomic<int> inner{0};
  pool.ParallelFor(2, [&](int64_t, int64_t) {
    pool.ParallelFor(10, [&](int64_t begin, int64_t end) { inner += end - begin; });
  });
  EXPECT_EQ(inner.load(), 20);
}

TEST(ThreadPoolTest, ConcurrentCallersAreSerialized) {
  ThreadPool pool(ThreadPool::Options{.num_threads = 2});
  std::atomic<int64_t> total{0};
  std::vector<std::thread> callers;
  for (int t = 0; t < 4; ++t) {
    callers.emplace_back([&] {
      for (int call = 0; call < 500; ++call) {
        pool.ParallelFor(100, [&](int64_t begin, int64_t end) { total += end - begin; });
      }
    });
  }
  for (std::thread& caller : callers) caller.join();
  EXPECT_EQ(total.load(), 4 * 500 * 100);
}

}  // namespace
}  // namespace yard::kernels::cpu
