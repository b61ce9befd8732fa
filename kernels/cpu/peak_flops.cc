#include "kernels/cpu/peak_flops.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>

#include "kernels/cpu/cpu_features.h"
#include "kernels/cpu/peak_flops_kernels.h"

namespace yard::kernels::cpu {
namespace {

// Best FLOP/s over `repetitions` of: every thread runs `loop` for about `seconds`.
double Measure(ThreadPool& pool, float (*loop)(int64_t, float), double flop_per_instr,
               double seconds, int repetitions) {
  // Calibrate the iteration count on one thread.
  int64_t iterations = 1 << 16;
  while (true) {
    const auto start = std::chrono::steady_clock::now();
    volatile float sink = loop(iterations, 1.0f);
    (void)sink;
    const double took =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (took > seconds / 8 || iterations > (int64_t{1} << 40)) {
      iterations = static_cast<int64_t>(iterations * (seconds / took));
      break;
    }
    iterations *= 4;
  }
  double best = 0.0;
  std::atomic<uint32_t> sink{0};
  for (int rep = 0; rep < repetitions; ++rep) {
    const auto start = std::chrono::steady_clock::now();
    pool.ParallelFor(pool.num_threads(), [&](int64_t begin, int64_t end) {
      for (int64_t t = begin; t < end; ++t) {
        sink.fetch_add(static_cast<uint32_t>(loop(iterations, 1.0f + t)),
                       std::memory_order_relaxed);
      }
    });
    const double took =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const double flop = 12.0 * flop_per_instr * static_cast<double>(iterations) *
                        pool.num_threads();
    best = std::max(best, flop / took);
  }
  return best;
}

}  // namespace

PeakFlops MeasurePeakFlops(ThreadPool* pool, double seconds_per_kind, int repetitions) {
  ThreadPool& p = pool != nullptr ? *pool : DefaultThreadPool();
  PeakFlops peak;
  switch (ActiveIsa()) {
    case Isa::kAvx512:
      peak.bf16_flops_per_second =
          Measure(p, internal::Dpbf16Avx512, 64.0, seconds_per_kind, repetitions);
      peak.fp32_flops_per_second =
          Measure(p, internal::FmaAvx512, 32.0, seconds_per_kind, repetitions);
      break;
    case Isa::kAvx2:
      peak.fp32_flops_per_second =
          Measure(p, internal::FmaAvx2, 16.0, seconds_per_kind, repetitions);
      break;
    case Isa::kScalar:
      break;
  }
  return peak;
}

}  // namespace yard::kernels::cpu
