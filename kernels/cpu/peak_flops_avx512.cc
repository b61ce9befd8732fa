// 12 independent accumulator chains: enough to cover latency (~4-6 cycles) × 2
// pipes, the widest issue of current x86 cores.
#include <immintrin.h>

#include <cstdint>

#include "kernels/cpu/peak_flops_kernels.h"

namespace yard::kernels::cpu::internal {

#define YARD_REPEAT12(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11)

float Dpbf16Avx512(int64_t iterations, float seed) {
  // Distinct starting values keep the compiler from merging identical chains.
#define YARD_INIT(i) __m512 acc##i = _mm512_set1_ps(seed + i);
  YARD_REPEAT12(YARD_INIT)
  const __m512bh a = _mm512_cvtne2ps_pbh(_mm512_set1_ps(seed), _mm512_set1_ps(1e-3f));
  const __m512bh b = _mm512_cvtne2ps_pbh(_mm512_set1_ps(1e-3f), _mm512_set1_ps(seed));
  for (int64_t it = 0; it < iterations; ++it) {
#define YARD_DP(i) acc##i = _mm512_dpbf16_ps(acc##i, a, b);
    YARD_REPEAT12(YARD_DP)
  }
#define YARD_SUM(i) +_mm512_reduce_add_ps(acc##i)
  return 0.0f YARD_REPEAT12(YARD_SUM);
}

float FmaAvx512(int64_t iterations, float seed) {
  YARD_REPEAT12(YARD_INIT)
  const __m512 a = _mm512_set1_ps(0.999f);
  const __m512 b = _mm512_set1_ps(seed * 1e-3f);
  for (int64_t it = 0; it < iterations; ++it) {
#define YARD_FMA(i) acc##i = _mm512_fmadd_ps(acc##i, a, b);
    YARD_REPEAT12(YARD_FMA)
  }
  return 0.0f YARD_REPEAT12(YARD_SUM);
}

}  // namespace yard::kernels::cpu::internal
