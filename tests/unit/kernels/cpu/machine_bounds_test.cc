// Smoke tests: the measurements run on small sizes and return plausible rates (they
// are judged for accuracy by the benchmarks, on an idle machine).
#include "gtest/gtest.h"
#include "kernels/cpu/memory_bandwidth.h"
#include "kernels/cpu/peak_flops.h"
#include "kernels/cpu/thread_pool.h"

namespace yard::kernels::cpu {
namespace {

TEST(MachineBoundsTest, ReadBandwidthIsPlausible) {
  ThreadPool pool(ThreadPool::Options{.num_threads = 2});
  const double bandwidth = MeasureReadBandwidth(
      BandwidthOptions{.bytes = size_t{64} << 20, .repetitions = 2, .pool = &pool});
  EXPECT_GT(bandwidth, 1e8);   // 0.1 GB/s
  EXPECT_LT(bandwidth, 1e13);  // 10 TB/s
}

TEST(MachineBoundsTest, PeakFlopsArePlausible) {
  ThreadPool pool(ThreadPool::Options{.num_threads = 1});
  const PeakFlops peak = MeasurePeakFlops(&pool, 0.02, 1);
  EXPECT_GT(peak.fp32_flops_per_second, 1e9);
  EXPECT_LT(peak.fp32_flops_per_second, 1e14);
  if (peak.bf16_flops_per_second > 0) {
    EXPECT_GT(peak.bf16_flops_per_second, 1e9);
  }
}

}  // namespace
}  // namespace yard::kernels::cpu
