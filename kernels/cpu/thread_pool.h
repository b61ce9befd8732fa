// A fixed pool of threads for data-parallel kernels: ParallelFor over all cores.
//
// Built for many short calls (one or more per matmul, thousands per decode step):
// the caller takes part in the work, idle workers spin for a short while before
// blocking on a futex, and a call wakes them with one atomic increment, so a call on
// warm workers costs a few microseconds.
//
// Partitioning is static and depends only on (n, num_threads()): chunk i is
// [n * i / c, n * (i + 1) / c) with c = min(n, num_threads()). Kernels that compute
// each output element inside one chunk, in an order that does not depend on the
// chunk bounds, therefore give bitwise-identical results for any thread count.
// Which thread runs a chunk is not fixed: the caller and the workers claim chunks
// as they arrive, so a worker that is descheduled (other processes on the cores) or
// still waking up does not stall the call; the caller waits only for chunks already
// started.
//
// Thread-safety: ParallelFor may be called from any thread; concurrent calls are
// serialized. A call from inside a running ParallelFor body (nesting) runs its chunks
// one after another on the calling thread instead of deadlocking.
#ifndef SWITCHYARD_KERNELS_CPU_THREAD_POOL_H_
#define SWITCHYARD_KERNELS_CPU_THREAD_POOL_H_

#include <atomic>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/functional/function_ref.h"

namespace yard::kernels::cpu {

class ThreadPool {
 public:
  struct Options {
    // Threads that run chunks, the caller included. 0 means
    // std::thread::hardware_concurrency().
    int num_threads = 0;
    // How long an idle worker (and a caller waiting for the workers) spins before it
    // blocks. Long enough to bridge the gap between the matmuls of one layer, short
    // enough not to burn a core between decode steps.
    int spin_microseconds = 100;
  };

  ThreadPool() : ThreadPool(Options()) {}
  explicit ThreadPool(const Options& options);
  // Joins the workers; no call may be in flight.
  ~ThreadPool();

  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int num_threads() const { return num_threads_; }

  // Calls fn(chunk, begin, end) once per chunk of [0, n), chunk in
  // [0, NumChunks(n)), and returns when all have finished. n <= 0 does nothing.
  void ParallelForChunks(int64_t n,
                         absl::FunctionRef<void(int chunk, int64_t begin, int64_t end)> fn);

  // ParallelForChunks without the chunk index.
  void ParallelFor(int64_t n, absl::FunctionRef<void(int64_t begin, int64_t end)> fn);

  // How many chunks ParallelFor splits [0, n) into: min(n, num_threads()).
  int NumChunks(int64_t n) const;

  // The first index of chunk `chunk` of [0, n) split into `chunks` parts.
  static int64_t ChunkBegin(int64_t n, int chunks, int chunk) {
    return static_cast<int64_t>((static_cast<__int128>(n) * chunk) / chunks);
  }

 private:
  void WorkerLoop();
  // Claims an unstarted chunk of job `epoch`; false when none is left or the job is
  // no longer current.
  bool TryClaim(uint32_t epoch, int* chunk);
  // Runs a claimed chunk and counts it done.
  void RunChunk(int chunk);
  // Spins up to spin_microseconds_ while `word` equals `value`; true if it changed.
  bool SpinWhileEquals(const std::atomic<uint32_t>& word, uint32_t value) const;

  const int num_threads_;
  const int spin_microseconds_;
  std::vector<std::thread> workers_;
  // Serializes callers: one job in flight at a time.
  std::mutex call_mutex_;

  // The job in flight. Written by the caller before it publishes the job in claim_
  // (release); read after a successful claim, when they cannot change until the
  // claimed chunk is done. Atomic (relaxed) only because a late worker may read them
  // while the next job writes them, then fail its claim and ignore what it read.
  std::atomic<absl::FunctionRef<void(int, int64_t, int64_t)>*> job_{nullptr};
  std::atomic<int64_t> job_n_{0};
  std::atomic<int> job_chunks_{0};
  // (epoch << 32) | next unclaimed chunk. Claims are compare-and-swaps on the whole
  // word, so a claim made for an old job can never take a chunk of a newer one.
  std::atomic<uint64_t> claim_{0};
  // Bumped once per job; idle workers wait on it (futex word).
  std::atomic<uint32_t> epoch_{0};
  // Chunks of the current job finished; the caller waits on it (futex word).
  std::atomic<uint32_t> done_{0};
  // Workers blocked (or about to block) on epoch_; the caller skips the wake syscall
  // when none are.
  std::atomic<int> sleeping_workers_{0};
  // Whether the caller is blocked (or about to block) on done_.
  std::atomic<bool> caller_sleeping_{false};
  std::atomic<bool> stop_{false};
};

// The process-wide pool the kernels use when given none: created on first use with
// the count set by ConfigureDefaultThreadPool, else the environment variable
// YARD_NUM_THREADS if set, else all hardware threads.
ThreadPool& DefaultThreadPool();

// Sets the default pool's thread count (0: YARD_NUM_THREADS or all hardware
// threads) before its first use; a worker's --threads flag. False if the pool already
// runs with another count (the call then changes nothing).
bool ConfigureDefaultThreadPool(int num_threads);

}  // namespace yard::kernels::cpu

#endif  // SWITCHYARD_KERNELS_CPU_THREAD_POOL_H_
