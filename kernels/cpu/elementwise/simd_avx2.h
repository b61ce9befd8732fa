// Vector traits for the AVX2 + FMA + F16C translation units of the CPU kernels: one
// 256-bit register of 8 fp32 lanes. The same interface as VecAvx512
// (simd_avx512.h), which documents each function; only the widths differ.
//
// Include only from a translation unit compiled with AVX2_COPTS (isa_copts.bzl).
// Everything lives in an unnamed namespace (see simd_avx512.h for why).
//
// AVX2 has no masked byte/word loads: partial BF16/FP8 loads go through a zeroed
// stack buffer, partial FP32 loads through vmaskmovps (which never faults on the
// masked-off lanes).
#ifndef SWITCHYARD_KERNELS_CPU_ELEMENTWISE_SIMD_AVX2_H_
#define SWITCHYARD_KERNELS_CPU_ELEMENTWISE_SIMD_AVX2_H_

#include <immintrin.h>

#include <cstdint>
#include <cstring>

namespace yard::kernels::cpu::internal {
namespace {

struct VecAvx2 {
  using F = __m256;
  static constexpr int kLanes = 8;
  // No vdpbf16ps: MlaPrecision::kBf16 runs the FP32 path.
  static constexpr bool kHasBf16Dot = false;

  // 16 registers: smaller tiles than AVX-512 (accumulators + loads must fit).
  static constexpr int kMlaTileTokens = 16;
  static constexpr int kMlaScoreRows = 2;
  static constexpr int kMlaPvRows = 2;
  static constexpr int kMlaPvChunks = 2;
  static constexpr int kAbsorbTokens = 3;
  static constexpr int kAbsorbVectors = 4;

  static __m256i Mask(int64_t n) {
    const int clamped = static_cast<int>(n < 0 ? 0 : (n > 8 ? 8 : n));
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(clamped),
                              _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  }

  static F Zero() { return _mm256_setzero_ps(); }
  static F Set1(float v) { return _mm256_set1_ps(v); }
  static F Load(const float* p) { return _mm256_loadu_ps(p); }
  static F LoadPartial(const float* p, int64_t n) { return _mm256_maskload_ps(p, Mask(n)); }
  static void Store(float* p, F v) { _mm256_storeu_ps(p, v); }
  static void StorePartial(float* p, F v, int64_t n) { _mm256_maskstore_ps(p, Mask(n), v); }

  static F Add(F a, F b) { return _mm256_add_ps(a, b); }
  static F Sub(F a, F b) { return _mm256_sub_ps(a, b); }
  static F Mul(F a, F b) { return _mm256_mul_ps(a, b); }
  static F Div(F a, F b) { return _mm256_div_ps(a, b); }
  static F Max(F a, F b) { return _mm256_max_ps(a, b); }
  static F Fma(F a, F b, F c) { return _mm256_fmadd_ps(a, b, c); }

  static float ReduceAdd(F v) {
    __m128 b = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    b = _mm_add_ps(b, _mm_movehl_ps(b, b));
    b = _mm_add_ss(b, _mm_movehdup_ps(b));
    return _mm_cvtss_f32(b);
  }
  static float ReduceMax(F v) {
    __m128 b = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    b = _mm_max_ps(b, _mm_movehl_ps(b, b));
    b = _mm_max_ss(b, _mm_movehdup_ps(b));
    return _mm_cvtss_f32(b);
  }

  static void Reduce4(F a, F b, F c, F d, float* out) {
    const __m256 abcd = _mm256_hadd_ps(_mm256_hadd_ps(a, b), _mm256_hadd_ps(c, d));
    _mm_storeu_ps(out, _mm_add_ps(_mm256_castps256_ps128(abcd), _mm256_extractf128_ps(abcd, 1)));
  }

  static F Exp(F x) {
    const F underflow = _mm256_cmp_ps(x, _mm256_set1_ps(-87.3365478515625f), _CMP_LT_OQ);
    x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.3365478515625f)), _mm256_set1_ps(88.0f));
    const F n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    F r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    F p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
    const F y = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    const __m256i bits =
        _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_andnot_ps(underflow, _mm256_mul_ps(y, _mm256_castsi256_ps(bits)));
  }

  static F LoadBf16(const uint16_t* p) {
    return WidenInOrder(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  }
  static F LoadBf16Partial(const uint16_t* p, int64_t n) {
    uint16_t buffer[8] = {};
    std::memcpy(buffer, p, Clamp(n, 8) * sizeof(uint16_t));
    return LoadBf16(buffer);
  }
  // 16 BF16 values → even and odd positions as FP32.
  static void LoadBf16Pairs(const uint16_t* p, F& even, F& odd) {
    Widen(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)), even, odd);
  }
  static void LoadBf16PairsPartial(const uint16_t* p, int64_t n, F& even, F& odd) {
    uint16_t buffer[16] = {};
    std::memcpy(buffer, p, Clamp(n, 16) * sizeof(uint16_t));
    LoadBf16Pairs(buffer, even, odd);
  }

  static void StoreBf16(uint16_t* p, F v) {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(p), ToBf16(v));
  }
  static void StoreBf16Partial(uint16_t* p, F v, int64_t n) {
    uint16_t buffer[8];
    _mm_storeu_si128(reinterpret_cast<__m128i*>(buffer), ToBf16(v));
    std::memcpy(p, buffer, Clamp(n, 8) * sizeof(uint16_t));
  }

  static F SwapPairs(F x) { return _mm256_permute_ps(x, 0xB1); }

  // 16 floats.
  static void StoreInterleaved(float* out, F even, F odd) {
    const __m256 lo = _mm256_unpacklo_ps(even, odd);  // e0 o0 e1 o1 | e4 o4 e5 o5
    const __m256 hi = _mm256_unpackhi_ps(even, odd);  // e2 o2 e3 o3 | e6 o6 e7 o7
    _mm256_storeu_ps(out, _mm256_permute2f128_ps(lo, hi, 0x20));
    _mm256_storeu_ps(out + 8, _mm256_permute2f128_ps(lo, hi, 0x31));
  }
  static void StoreInterleavedPartial(float* out, F even, F odd, int64_t n) {
    const __m256 lo = _mm256_unpacklo_ps(even, odd);
    const __m256 hi = _mm256_unpackhi_ps(even, odd);
    _mm256_maskstore_ps(out, Mask(n), _mm256_permute2f128_ps(lo, hi, 0x20));
    _mm256_maskstore_ps(out + 8, Mask(n - 8), _mm256_permute2f128_ps(lo, hi, 0x31));
  }
  static void LoadDeinterleavePartial(const float* p, int64_t n, F& even, F& odd) {
    const __m256 a = _mm256_maskload_ps(p, Mask(n));
    const __m256 b = _mm256_maskload_ps(p + 8, Mask(n - 8));
    // a0 a2 b0 b2 | a4 a6 b4 b6 → a0 a2 a4 a6 b0 b2 b4 b6.
    even = _mm256_castpd_ps(_mm256_permute4x64_pd(
        _mm256_castps_pd(_mm256_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0))), 0xD8));
    odd = _mm256_castpd_ps(_mm256_permute4x64_pd(
        _mm256_castps_pd(_mm256_shuffle_ps(a, b, _MM_SHUFFLE(3, 1, 3, 1))), 0xD8));
  }

  // 8 FP8 e4m3fn bytes → FP32 value / 2^8 (see VecAvx512::LoadFp8).
  static F LoadFp8(const uint8_t* p) {
    return Fp8ToFloat(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
  }
  static F LoadFp8Partial(const uint8_t* p, int64_t n) {
    uint8_t buffer[8] = {};
    std::memcpy(buffer, p, Clamp(n, 8));
    return LoadFp8(buffer);
  }

 private:
  static int64_t Clamp(int64_t n, int64_t most) { return n < 0 ? 0 : (n > most ? most : n); }
  static F WidenInOrder(__m128i h) {
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
  }
  static void Widen(__m256i v, F& even, F& odd) {
    even = _mm256_castsi256_ps(_mm256_slli_epi32(v, 16));
    odd =
        _mm256_castsi256_ps(_mm256_and_si256(v, _mm256_set1_epi32(static_cast<int>(0xFFFF0000u))));
  }
  static __m128i ToBf16(F v) {
    const __m256i bits = _mm256_castps_si256(v);
    const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(bits, 16), _mm256_set1_epi32(1));
    __m256i rounded = _mm256_srli_epi32(
        _mm256_add_epi32(bits, _mm256_add_epi32(lsb, _mm256_set1_epi32(0x7FFF))), 16);
    const __m256i quiet = _mm256_or_si256(_mm256_srli_epi32(bits, 16), _mm256_set1_epi32(0x40));
    const __m256 nan = _mm256_cmp_ps(v, v, _CMP_UNORD_Q);
    rounded = _mm256_castps_si256(
        _mm256_blendv_ps(_mm256_castsi256_ps(rounded), _mm256_castsi256_ps(quiet), nan));
    // Every lane fits 16 bits, so the unsigned saturating pack is exact; it works
    // per 128-bit half, hence the 64-bit permute.
    const __m256i packed =
        _mm256_permute4x64_epi64(_mm256_packus_epi32(rounded, rounded), _MM_SHUFFLE(3, 1, 2, 0));
    return _mm256_castsi256_si128(packed);
  }
  static F Fp8ToFloat(__m128i bytes) {
    __m128i h = _mm_and_si128(_mm_slli_epi16(_mm_cvtepi8_epi16(bytes), 7),
                              _mm_set1_epi16(static_cast<int16_t>(0xBFFF)));
    const __m128i all_ones = _mm_set1_epi16(0x3F80);
    const __m128i nan = _mm_cmpeq_epi16(_mm_and_si128(h, all_ones), all_ones);
    h = _mm_blendv_epi8(h, _mm_set1_epi16(0x7E00), nan);
    return _mm256_cvtph_ps(h);
  }
};

}  // namespace
}  // namespace yard::kernels::cpu::internal

#endif  // SWITCHYARD_KERNELS_CPU_ELEMENTWISE_SIMD_AVX2_H_
