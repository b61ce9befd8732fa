// The machine's sustained memory read bandwidth, measured: the bound that decode (a
// pass over all weights per step) is judged against.
#ifndef SWITCHYARD_KERNELS_CPU_MEMORY_BANDWIDTH_H_
#define SWITCHYARD_KERNELS_CPU_MEMORY_BANDWIDTH_H_

#include <cstddef>
#include <cstdint>

#include "kernels/cpu/thread_pool.h"

namespace yard::kernels::cpu {

struct BandwidthOptions {
  // Far larger than every cache (L3 included), so the sweep reads DRAM.
  size_t bytes = size_t{1} << 30;
  // Passes over the buffer; the best one is reported (the least disturbed by other
  // processes).
  int repetitions = 5;
  // Threads doing the reading; nullptr means DefaultThreadPool() (all cores).
  ThreadPool* pool = nullptr;
  // Time passes with the process's CPU clock divided by the pool size instead of the
  // wall clock: on a machine shared with other processes and a one-thread pool, what
  // the sweep gets while it runs (for comparing kernels timed the same way). Spinning
  // waits count, so it is meaningless for several threads on a busy machine.
  bool process_cpu_time = false;
};

// A buffer of options.bytes, allocated and touched once, that can be swept pass by
// pass: a benchmark on a machine whose load varies can interleave sweep passes with
// its kernel's passes and compare each pair taken under the same conditions.
// Not thread-safe; the pool must outlive it.
class ReadBandwidthProbe {
 public:
  explicit ReadBandwidthProbe(const BandwidthOptions& options = {});
  ~ReadBandwidthProbe();
  ReadBandwidthProbe(const ReadBandwidthProbe&) = delete;
  ReadBandwidthProbe& operator=(const ReadBandwidthProbe&) = delete;

  // Reads the whole buffer once with every thread of the pool, each its own
  // contiguous slice; returns bytes per second.
  double Pass();
  size_t bytes() const { return bytes_; }

 private:
  BandwidthOptions options_;
  ThreadPool& pool_;
  size_t bytes_;
  uint8_t* buffer_;
};

// ReadBandwidthProbe(options), then the best of options.repetitions passes, in bytes
// per second.
double MeasureReadBandwidth(const BandwidthOptions& options = {});

}  // namespace yard::kernels::cpu

#endif  // SWITCHYARD_KERNELS_CPU_MEMORY_BANDWIDTH_H_
