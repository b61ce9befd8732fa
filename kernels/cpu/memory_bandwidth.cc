#include "kernels/cpu/memory_bandwidth.h"

#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <ctime>

#include "kernels/cpu/cpu_features.h"

namespace yard::kernels::cpu {
namespace {

double Seconds(bool process_cpu_time) {
  if (process_cpu_time) {
    timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
  }
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// XOR-folds [p, p + bytes) with 16-byte loads, 4 independent chains.
uint64_t ReadSliceSse2(const uint8_t* p, size_t bytes) {
  __m128i a = _mm_setzero_si128(), b = a, c = a, d = a;
  for (size_t i = 0; i + 64 <= bytes; i += 64) {
    a = _mm_xor_si128(a, _mm_load_si128(reinterpret_cast<const __m128i*>(p + i)));
    b = _mm_xor_si128(b, _mm_load_si128(reinterpret_cast<const __m128i*>(p + i + 16)));
    c = _mm_xor_si128(c, _mm_load_si128(reinterpret_cast<const __m128i*>(p + i + 32)));
    d = _mm_xor_si128(d, _mm_load_si128(reinterpret_cast<const __m128i*>(p + i + 48)));
  }
  const __m128i all = _mm_xor_si128(_mm_xor_si128(a, b), _mm_xor_si128(c, d));
  return static_cast<uint64_t>(_mm_cvtsi128_si64(all));
}

// The same with 32-byte loads, two cache lines per iteration: the sweep must be at
// least as fast as any kernel's reads, or the "bound" would not bound. Only one
// function needs AVX2, so it is compiled for it by attribute and called after the
// run-time check.
__attribute__((target("avx2"))) uint64_t ReadSliceAvx2(const uint8_t* p, size_t bytes) {
  __m256i a = _mm256_setzero_si256(), b = a, c = a, d = a;
  for (size_t i = 0; i + 128 <= bytes; i += 128) {
    a = _mm256_xor_si256(a, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i)));
    b = _mm256_xor_si256(b, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i + 32)));
    c = _mm256_xor_si256(c, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i + 64)));
    d = _mm256_xor_si256(d, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i + 96)));
  }
  const __m256i all = _mm256_xor_si256(_mm256_xor_si256(a, b), _mm256_xor_si256(c, d));
  return static_cast<uint64_t>(_mm256_extract_epi64(all, 0));
}

}  // namespace

ReadBandwidthProbe::ReadBandwidthProbe(const BandwidthOptions& options)
    : options_(options),
      pool_(options.pool != nullptr ? *options.pool : DefaultThreadPool()),
      bytes_(std::max<size_t>(options.bytes / 4096 * 4096, 4096)),
      buffer_(static_cast<uint8_t*>(std::aligned_alloc(4096, bytes_))) {
  // Touch every page from the thread that will read it (first-touch placement), so
  // the timed passes see no page faults.
  pool_.ParallelFor(static_cast<int64_t>(bytes_ / 4096), [&](int64_t begin, int64_t end) {
    std::memset(buffer_ + begin * 4096, 1, (end - begin) * 4096);
  });
}

ReadBandwidthProbe::~ReadBandwidthProbe() { std::free(buffer_); }

double ReadBandwidthProbe::Pass() {
  uint64_t (*read)(const uint8_t*, size_t) =
      ActiveIsa() >= Isa::kAvx2 ? ReadSliceAvx2 : ReadSliceSse2;
  std::atomic<uint64_t> sink{0};
  const double start = Seconds(options_.process_cpu_time);
  pool_.ParallelFor(static_cast<int64_t>(bytes_ / 4096), [&](int64_t begin, int64_t end) {
    sink.fetch_xor(read(buffer_ + begin * 4096, (end - begin) * 4096),
                   std::memory_order_relaxed);
  });
  double seconds = Seconds(options_.process_cpu_time) - start;
  if (options_.process_cpu_time) seconds /= pool_.num_threads();
  return static_cast<double>(bytes_) / seconds;
}

double MeasureReadBandwidth(const BandwidthOptions& options) {
  ReadBandwidthProbe probe(options);
  double best = 0.0;
  for (int rep = 0; rep < std::max(1, options.repetitions); ++rep) {
    best = std::max(best, probe.Pass());
  }
  return best;
}

}  // namespace yard::kernels::cpu
