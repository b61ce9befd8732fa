// 12 independent accumulator chains (see peak_flops_avx512.cc).
#include <immintrin.h>

#include <cstdint>

#include "kernels/cpu/peak_flops_kernels.h"

namespace yard::kernels::cpu::internal {

#define YARD_REPEAT12(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11)

float FmaAvx2(int64_t iterations, float seed) {
#define YARD_INIT(i) __m256 acc##i = _mm256_set1_ps(seed + i);
  YARD_REPEAT12(YARD_INIT)
  const __m256 a = _mm256_set1_ps(0.999f);
  const __m256 b = _mm256_set1_ps(seed * 1e-3f);
  for (int64_t it = 0; it < iterations; ++it) {
#define YARD_FMA(i) acc##i = _mm256_fmadd_ps(acc##i, a, b);
    YARD_REPEAT12(YARD_FMA)
  }
  alignas(32) float lanes[8];
  float sum = 0.0f;
#define YARD_SUM(i)                    \
  _mm256_store_ps(lanes, acc##i);      \
  for (float v : lanes) sum += v;
  YARD_REPEAT12(YARD_SUM)
  return sum;
}

}  // namespace yard::kernels::cpu::internal
