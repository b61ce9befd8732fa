#include "kernels/cpu/thread_pool.h"

#include <immintrin.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstdlib>

namespace yard::kernels::cpu {
namespace {

// The pool whose job the current thread is running, to detect nested calls.
thread_local const ThreadPool* tls_running_pool = nullptr;

void FutexWait(const std::atomic<uint32_t>& word, uint32_t expected) {
  // Returns at once if the word no longer holds `expected` (EAGAIN), on a wake, or
  // spuriously; every caller re-checks its condition in a loop.
  syscall(SYS_futex, reinterpret_cast<const uint32_t*>(&word), FUTEX_WAIT_PRIVATE,
          expected, nullptr, nullptr, 0);
}

void FutexWakeAll(std::atomic<uint32_t>& word) {
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(&word), FUTEX_WAKE_PRIVATE, INT_MAX,
          nullptr, nullptr, 0);
}

int ResolveThreadCount(int requested) {
  if (requested > 0) return requested;
  const unsigned hardware = std::thread::hardware_concurrency();
  return hardware == 0 ? 1 : static_cast<int>(hardware);
}

}  // namespace

ThreadPool::ThreadPool(const Options& options)
    : num_threads_(ResolveThreadCount(options.num_threads)),
      spin_microseconds_(std::max(0, options.spin_microseconds)) {
  workers_.reserve(num_threads_ - 1);
  for (int i = 1; i < num_threads_; ++i) {
    workers_.emplace_back([this] { WorkerLoop(); });
  }
}

ThreadPool::~ThreadPool() {
  stop_.store(true, std::memory_order_seq_cst);
  epoch_.fetch_add(1, std::memory_order_seq_cst);
  FutexWakeAll(epoch_);
  for (std::thread& worker : workers_) worker.join();
}

int ThreadPool::NumChunks(int64_t n) const {
  if (n <= 0) return 0;
  return static_cast<int>(std::min<int64_t>(n, num_threads_));
}

bool ThreadPool::SpinWhileEquals(const std::atomic<uint32_t>& word,
                                 uint32_t value) const {
  if (spin_microseconds_ == 0) return word.load(std::memory_order_acquire) != value;
  const auto deadline = std::chrono::steady_clock::now() +
                        std::chrono::microseconds(spin_microseconds_);
  while (true) {
    // Reading the clock costs ~20 ns; check it once per batch of pause loops.
    for (int i = 0; i < 64; ++i) {
      if (word.load(std::memory_order_acquire) != value) return true;
      _mm_pause();
    }
    if (std::chrono::steady_clock::now() >= deadline) return false;
  }
}

bool ThreadPool::TryClaim(uint32_t epoch, int* chunk) {
  uint64_t word = claim_.load(std::memory_order_acquire);
  while (true) {
    if (static_cast<uint32_t>(word >> 32) != epoch) return false;
    const uint32_t next = static_cast<uint32_t>(word);
    // May read a newer job's count; then the compare-and-swap below fails.
    if (next >= static_cast<uint32_t>(job_chunks_.load(std::memory_order_relaxed))) {
      return false;
    }
    if (claim_.compare_exchange_weak(word, word + 1, std::memory_order_acq_rel,
                                     std::memory_order_acquire)) {
      *chunk = static_cast<int>(next);
      return true;
    }
  }
}

void ThreadPool::RunChunk(int chunk) {
  // Stable: the job cannot finish, so no newer job can be posted, before this chunk
  // is counted done.
  const int64_t n = job_n_.load(std::memory_order_relaxed);
  const int chunks = job_chunks_.load(std::memory_order_relaxed);
  (*job_.load(std::memory_order_relaxed))(chunk, ChunkBegin(n, chunks, chunk),
                                          ChunkBegin(n, chunks, chunk + 1));
  if (done_.fetch_add(1, std::memory_order_seq_cst) + 1 == static_cast<uint32_t>(chunks) &&
      caller_sleeping_.load(std::memory_order_seq_cst)) {
    FutexWakeAll(done_);
  }
}

void ThreadPool::WorkerLoop() {
  tls_running_pool = this;
  // The epoch as constructed, not as loaded now: a job may already have been posted
  // before this thread got to run.
  uint32_t seen = 0;
  while (true) {
    if (!SpinWhileEquals(epoch_, seen)) {
      // Announce the sleep before re-checking the epoch, so that a caller that bumps
      // the epoch after our check sees sleeping_workers_ > 0 and wakes us
      // (both sides use seq_cst: a store-load pair on two variables).
      sleeping_workers_.fetch_add(1, std::memory_order_seq_cst);
      while (epoch_.load(std::memory_order_seq_cst) == seen) FutexWait(epoch_, seen);
      sleeping_workers_.fetch_sub(1, std::memory_order_relaxed);
    }
    seen = epoch_.load(std::memory_order_acquire);
    if (stop_.load(std::memory_order_acquire)) return;
    int chunk;
    while (TryClaim(seen, &chunk)) RunChunk(chunk);
  }
}

void ThreadPool::ParallelForChunks(
    int64_t n, absl::FunctionRef<void(int chunk, int64_t begin, int64_t end)> fn) {
  const int chunks = NumChunks(n);
  if (chunks == 0) return;
  if (chunks == 1 || tls_running_pool == this) {
    // One chunk, or nested inside our own job: same partition, run serially.
    for (int c = 0; c < chunks; ++c) {
      fn(c, ChunkBegin(n, chunks, c), ChunkBegin(n, chunks, c + 1));
    }
    return;
  }
  std::lock_guard<std::mutex> lock(call_mutex_);
  // Every chunk of the previous job is done: no thread reads these fields now except
  // late workers, whose claims fail on the epoch.
  const uint32_t epoch = epoch_.load(std::memory_order_relaxed) + 1;
  job_.store(&fn, std::memory_order_relaxed);
  job_n_.store(n, std::memory_order_relaxed);
  job_chunks_.store(chunks, std::memory_order_relaxed);
  done_.store(0, std::memory_order_relaxed);
  claim_.store(static_cast<uint64_t>(epoch) << 32, std::memory_order_release);
  epoch_.store(epoch, std::memory_order_seq_cst);
  if (sleeping_workers_.load(std::memory_order_seq_cst) > 0) FutexWakeAll(epoch_);

  const ThreadPool* outer = tls_running_pool;
  tls_running_pool = this;
  int chunk;
  while (TryClaim(epoch, &chunk)) RunChunk(chunk);
  tls_running_pool = outer;

  // Only chunks that workers already claimed are left.
  const uint32_t all = static_cast<uint32_t>(chunks);
  while (true) {
    uint32_t finished = done_.load(std::memory_order_acquire);
    if (finished == all) break;
    if (SpinWhileEquals(done_, finished)) continue;
    // Same store-load handshake as the workers' sleep, mirrored.
    caller_sleeping_.store(true, std::memory_order_seq_cst);
    while ((finished = done_.load(std::memory_order_seq_cst)) != all) {
      FutexWait(done_, finished);
    }
    caller_sleeping_.store(false, std::memory_order_relaxed);
  }
}

void ThreadPool::ParallelFor(int64_t n,
                             absl::FunctionRef<void(int64_t begin, int64_t end)> fn) {
  ParallelForChunks(n, [&fn](int, int64_t begin, int64_t end) { fn(begin, end); });
}

namespace {

// The default pool, made once under its mutex; read lock-free after that.
std::mutex default_pool_mu;
std::atomic<ThreadPool*> default_pool{nullptr};
int default_pool_threads = 0;  // ConfigureDefaultThreadPool's count; 0: not set

// The count a pool made now would have, given a configured count (0: not set).
int DefaultThreadCount(int configured) {
  if (configured > 0) return configured;
  if (const char* env = std::getenv("YARD_NUM_THREADS"); env != nullptr) {
    return ResolveThreadCount(std::max(0, std::atoi(env)));
  }
  return ResolveThreadCount(0);
}

}  // namespace

ThreadPool& DefaultThreadPool() {
  if (ThreadPool* pool = default_pool.load(std::memory_order_acquire)) return *pool;
  std::lock_guard<std::mutex> lock(default_pool_mu);
  if (default_pool.load(std::memory_order_relaxed) == nullptr) {
    default_pool.store(
        new ThreadPool(ThreadPool::Options{.num_threads = DefaultThreadCount(default_pool_threads)}),
        std::memory_order_release);
  }
  return *default_pool.load(std::memory_order_relaxed);
}

bool ConfigureDefaultThreadPool(int num_threads) {
  std::lock_guard<std::mutex> lock(default_pool_mu);
  num_threads = std::max(0, num_threads);
  if (const ThreadPool* pool = default_pool.load(std::memory_order_relaxed)) {
    return pool->num_threads() == DefaultThreadCount(num_threads);
  }
  default_pool_threads = num_threads;
  return true;
}

}  // namespace yard::kernels::cpu
