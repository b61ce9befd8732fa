// Vector traits of width 1 for the scalar fallback (YARD_CPU_ISA=scalar, or a CPU
// without AVX2): the same kernel templates run one lane at a time, in plain C++.
// Same interface as VecAvx512 (simd_avx512.h), which documents each function; here
// a "pair" is two adjacent values and a partial count is clamped to the width.
// Unnamed namespace for the same reason as the vector traits.
#ifndef SWITCHYARD_KERNELS_CPU_ELEMENTWISE_SIMD_SCALAR_H_
#define SWITCHYARD_KERNELS_CPU_ELEMENTWISE_SIMD_SCALAR_H_

#include <cmath>
#include <cstdint>

#include "kernels/cpu/numerics.h"

namespace yard::kernels::cpu::internal {
namespace {

struct VecScalar {
  using F = float;
  static constexpr int kLanes = 1;
  // No vdpbf16ps: MlaPrecision::kBf16 runs the FP32 path.
  static constexpr bool kHasBf16Dot = false;

  static constexpr int kMlaTileTokens = 8;
  static constexpr int kMlaScoreRows = 2;
  static constexpr int kMlaPvRows = 2;
  static constexpr int kMlaPvChunks = 4;
  static constexpr int kAbsorbTokens = 2;
  static constexpr int kAbsorbVectors = 4;

  static F Zero() { return 0.0f; }
  static F Set1(float v) { return v; }
  static F Load(const float* p) { return *p; }
  static F LoadPartial(const float* p, int64_t n) { return n > 0 ? *p : 0.0f; }
  static void Store(float* p, F v) { *p = v; }
  static void StorePartial(float* p, F v, int64_t n) {
    if (n > 0) *p = v;
  }

  static F Add(F a, F b) { return a + b; }
  static F Sub(F a, F b) { return a - b; }
  static F Mul(F a, F b) { return a * b; }
  static F Div(F a, F b) { return a / b; }
  static F Max(F a, F b) { return a > b ? a : b; }
  // Two roundings: without -mfma std::fma is a slow library call.
  static F Fma(F a, F b, F c) { return a * b + c; }

  static float ReduceAdd(F v) { return v; }
  static float ReduceMax(F v) { return v; }
  static void Reduce4(F a, F b, F c, F d, float* out) {
    out[0] = a;
    out[1] = b;
    out[2] = c;
    out[3] = d;
  }

  static F Exp(F x) { return x < -87.3365478515625f ? 0.0f : std::exp(x < 88.0f ? x : 88.0f); }

  static F LoadBf16(const uint16_t* p) { return Bf16ToFloat(*p); }
  static F LoadBf16Partial(const uint16_t* p, int64_t n) { return n > 0 ? Bf16ToFloat(*p) : 0.0f; }
  static void LoadBf16Pairs(const uint16_t* p, F& even, F& odd) {
    even = Bf16ToFloat(p[0]);
    odd = Bf16ToFloat(p[1]);
  }
  static void LoadBf16PairsPartial(const uint16_t* p, int64_t n, F& even, F& odd) {
    even = n > 0 ? Bf16ToFloat(p[0]) : 0.0f;
    odd = n > 1 ? Bf16ToFloat(p[1]) : 0.0f;
  }

  static void StoreBf16(uint16_t* p, F v) { *p = FloatToBf16(v); }
  static void StoreBf16Partial(uint16_t* p, F v, int64_t n) {
    if (n > 0) *p = FloatToBf16(v);
  }

  // A pair spans two "vectors" here, so RoPE's scalar path never calls this; the
  // elementwise kernels rotate pairs explicitly when kLanes == 1.
  static F SwapPairs(F x) { return x; }

  static void StoreInterleaved(float* out, F even, F odd) {
    out[0] = even;
    out[1] = odd;
  }
  static void StoreInterleavedPartial(float* out, F even, F odd, int64_t n) {
    if (n > 0) out[0] = even;
    if (n > 1) out[1] = odd;
  }
  static void LoadDeinterleavePartial(const float* p, int64_t n, F& even, F& odd) {
    even = n > 0 ? p[0] : 0.0f;
    odd = n > 1 ? p[1] : 0.0f;
  }

  static F LoadFp8(const uint8_t* p) { return Fp8E4m3ToFloat(*p) * (1.0f / 256.0f); }
  static F LoadFp8Partial(const uint8_t* p, int64_t n) { return n > 0 ? LoadFp8(p) : 0.0f; }
};

}  // namespace
}  // namespace yard::kernels::cpu::internal

#endif  // SWITCHYARD_KERNELS_CPU_ELEMENTWISE_SIMD_SCALAR_H_
