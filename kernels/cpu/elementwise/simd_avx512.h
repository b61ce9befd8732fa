// Vector traits for the AVX-512 translation units of the CPU kernels: one 512-bit
// register of 16 fp32 lanes, and the loads the kernels need (BF16, FP8 e4m3fn,
// interleaved pairs). The kernel bodies (elementwise_impl.h, mla_impl.h, ...) are
// templates over a traits struct, instantiated once per ISA from that ISA's
// translation unit.
//
// Include only from a translation unit compiled with AVX512_COPTS (isa_copts.bzl).
// Everything here lives in an unnamed namespace, so each including translation unit
// gets its own internal-linkage copy, and so does every template instantiated with
// these traits: no AVX-512 code can be merged by the linker into generic code (the
// hazard gemm_kernels.h describes).
#ifndef SWITCHYARD_KERNELS_CPU_ELEMENTWISE_SIMD_AVX512_H_
#define SWITCHYARD_KERNELS_CPU_ELEMENTWISE_SIMD_AVX512_H_

#include <immintrin.h>

#include <cstdint>

namespace yard::kernels::cpu::internal {
namespace {

struct VecAvx512 {
  using F = __m512;
  static constexpr int kLanes = 16;

  // MLA attention tiling (mla_impl.h): tokens per online-softmax tile (their 36 KB
  // of BF16 rows stay in L1 between the score and the value pass), rows × tokens of
  // a score tile (16 accumulators), rows × 32-element chunks of a value tile.
  static constexpr int kMlaTileTokens = 32;
  static constexpr int kMlaScoreRows = 4;
  static constexpr int kMlaPvRows = 4;
  static constexpr int kMlaPvChunks = 2;
  // Absorbed-projection tiling (absorb_impl.h): tokens × vectors of output columns.
  static constexpr int kAbsorbTokens = 4;
  static constexpr int kAbsorbVectors = 4;

  // vdpbf16ps: products of BF16 pairs accumulated into FP32 lanes (mla_impl.h's
  // MlaPrecision::kBf16 path). The other traits lack it, and the kernels check.
  static constexpr bool kHasBf16Dot = true;
  using Raw = __m512i;  // 32 BF16 values (16 pairs), unconverted

  static __mmask16 Mask(int64_t n) {
    if (n <= 0) return 0;
    return n >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << n) - 1);
  }
  static __mmask32 Mask32(int64_t n) {
    if (n <= 0) return 0;
    return n >= 32 ? ~__mmask32{0} : (__mmask32{1} << n) - 1;
  }

  static F Zero() { return _mm512_setzero_ps(); }
  static F Set1(float v) { return _mm512_set1_ps(v); }
  static F Load(const float* p) { return _mm512_loadu_ps(p); }
  // Lanes [0, n) from p, the rest 0; never touches memory past p + n.
  static F LoadPartial(const float* p, int64_t n) { return _mm512_maskz_loadu_ps(Mask(n), p); }
  static void Store(float* p, F v) { _mm512_storeu_ps(p, v); }
  static void StorePartial(float* p, F v, int64_t n) { _mm512_mask_storeu_ps(p, Mask(n), v); }

  static F Add(F a, F b) { return _mm512_add_ps(a, b); }
  static F Sub(F a, F b) { return _mm512_sub_ps(a, b); }
  static F Mul(F a, F b) { return _mm512_mul_ps(a, b); }
  static F Div(F a, F b) { return _mm512_div_ps(a, b); }
  static F Max(F a, F b) { return _mm512_max_ps(a, b); }
  // a · b + c, one rounding.
  static F Fma(F a, F b, F c) { return _mm512_fmadd_ps(a, b, c); }

  // Sum of the lanes by a fixed tree (halves, then quarters, ...).
  static float ReduceAdd(F v) {
    const __m256 a = _mm256_add_ps(_mm512_castps512_ps256(v), _mm512_extractf32x8_ps(v, 1));
    __m128 b = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    b = _mm_add_ps(b, _mm_movehl_ps(b, b));
    b = _mm_add_ss(b, _mm_movehdup_ps(b));
    return _mm_cvtss_f32(b);
  }
  static float ReduceMax(F v) { return _mm512_reduce_max_ps(v); }

  // The four lane sums of a, b, c, d into out[0..3]. The tree is the same for each
  // input whatever slot it takes, so a value's sum does not depend on its neighbours.
  static void Reduce4(F a, F b, F c, F d, float* out) {
    auto fold = [](__m512 v) {
      return _mm256_add_ps(_mm512_castps512_ps256(v), _mm512_extractf32x8_ps(v, 1));
    };
    const __m256 ab = _mm256_hadd_ps(fold(a), fold(b));
    const __m256 cd = _mm256_hadd_ps(fold(c), fold(d));
    const __m256 abcd = _mm256_hadd_ps(ab, cd);
    _mm_storeu_ps(out, _mm_add_ps(_mm256_castps256_ps128(abcd), _mm256_extractf128_ps(abcd, 1)));
  }

  // e^x with a Cephes-style degree-6 polynomial after reduction by ln 2 (about 2
  // ulp); exactly 0 below ln(FLT_MIN) (so -inf → 0), inputs above 88 clamp to e^88.
  static F Exp(F x) {
    const __mmask16 underflow =
        _mm512_cmp_ps_mask(x, _mm512_set1_ps(-87.3365478515625f), _CMP_LT_OQ);
    x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-87.3365478515625f)), _mm512_set1_ps(88.0f));
    const F n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    F r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    F p = _mm512_set1_ps(1.9875691500e-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
    const F y = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    const __m512i bits =
        _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23);
    return _mm512_maskz_mul_ps(static_cast<__mmask16>(~underflow), y, _mm512_castsi512_ps(bits));
  }

  // 16 BF16 values → FP32, in order.
  static F LoadBf16(const uint16_t* p) {
    const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
  }
  static F LoadBf16Partial(const uint16_t* p, int64_t n) {
    const __m256i h = _mm256_maskz_loadu_epi16(Mask(n), p);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
  }
  // 32 BF16 values p[0..32) as FP32 vectors of the even positions (p[0], p[2], ...)
  // and the odd ones: lane j of a 32-bit load holds p[2j] in its low half, p[2j+1]
  // in its high half, so one shift and one mask widen both.
  static void LoadBf16Pairs(const uint16_t* p, F& even, F& odd) {
    Widen(_mm512_loadu_si512(p), even, odd);
  }
  // The same for p[0..n), n <= 32, the rest 0.
  static void LoadBf16PairsPartial(const uint16_t* p, int64_t n, F& even, F& odd) {
    Widen(_mm512_maskz_loadu_epi16(Mask32(n), p), even, odd);
  }

  // FP32 → BF16 bits, round to nearest even, NaN → quiet NaN (numerics.h's FloatToBf16).
  static void StoreBf16(uint16_t* p, F v) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), ToBf16(v));
  }
  static void StoreBf16Partial(uint16_t* p, F v, int64_t n) {
    _mm256_mask_storeu_epi16(p, Mask(n), ToBf16(v));
  }

  // ---- BF16 pairs (kHasBf16Dot) ----
  static Raw LoadRaw(const uint16_t* p) { return _mm512_loadu_si512(p); }
  // p[0..n), n <= 32, the rest 0.
  static Raw LoadRawPartial(const uint16_t* p, int64_t n) {
    return _mm512_maskz_loadu_epi16(Mask32(n), p);
  }
  // The same 32-bit word (a pair of BF16) in every lane.
  static Raw Set1Pair(uint32_t pair) { return _mm512_set1_epi32(static_cast<int>(pair)); }
  // acc[i] += a[2i]·b[2i] + a[2i+1]·b[2i+1] (BF16 products, FP32 sums).
  static F DotBf16(F acc, Raw a, Raw b) {
    return _mm512_dpbf16_ps(acc, reinterpret_cast<__m512bh>(a), reinterpret_cast<__m512bh>(b));
  }
  // Pairs (a[d], b[d]) of two rows: `lo` lane 4k + i holds d = 8k + i, `hi` lane
  // 4k + i holds d = 8k + 4 + i (unpack works per 128-bit lane).
  static void PairRows(Raw a, Raw b, Raw& lo, Raw& hi) {
    lo = _mm512_unpacklo_epi16(a, b);
    hi = _mm512_unpackhi_epi16(a, b);
  }
  // Inverse of PairRows' dim order: 32 floats (the first n) in natural order.
  static void StorePairedPartial(float* out, F lo, F hi, int64_t n) {
    const __m512i first = _mm512_setr_epi32(0, 1, 2, 3, 16, 17, 18, 19, 4, 5, 6, 7, 20, 21, 22, 23);
    const __m512i second =
        _mm512_setr_epi32(8, 9, 10, 11, 24, 25, 26, 27, 12, 13, 14, 15, 28, 29, 30, 31);
    _mm512_mask_storeu_ps(out, Mask(n), _mm512_permutex2var_ps(lo, first, hi));
    _mm512_mask_storeu_ps(out + 16, Mask(n - 16), _mm512_permutex2var_ps(lo, second, hi));
  }

  // [x1, x0, x3, x2, ...]: each interleaved pair swapped.
  static F SwapPairs(F x) { return _mm512_permute_ps(x, 0xB1); }

  // out[2j] = even[j], out[2j + 1] = odd[j] for 32 floats (the first n of them).
  static void StoreInterleaved(float* out, F even, F odd) {
    _mm512_storeu_ps(out, _mm512_permutex2var_ps(even, InterleaveLo(), odd));
    _mm512_storeu_ps(out + 16, _mm512_permutex2var_ps(even, InterleaveHi(), odd));
  }
  static void StoreInterleavedPartial(float* out, F even, F odd, int64_t n) {
    _mm512_mask_storeu_ps(out, Mask(n), _mm512_permutex2var_ps(even, InterleaveLo(), odd));
    _mm512_mask_storeu_ps(out + 16, Mask(n - 16),
                          _mm512_permutex2var_ps(even, InterleaveHi(), odd));
  }
  // The inverse: p[0..32) (the first n, the rest 0) split into even and odd positions.
  static void LoadDeinterleavePartial(const float* p, int64_t n, F& even, F& odd) {
    const F a = _mm512_maskz_loadu_ps(Mask(n), p);
    const F b = _mm512_maskz_loadu_ps(Mask(n - 16), p + 16);
    even = _mm512_permutex2var_ps(
        a, _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30), b);
    odd = _mm512_permutex2var_ps(
        a, _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31), b);
  }

  // 16 FP8 e4m3fn bytes → FP32 value / 2^8 (callers fold 2^8 into their scale): the
  // byte's low 7 bits shifted into an FP16's exponent/mantissa are the value / 2^8
  // exactly (subnormals included), and vcvtph2ps widens them.
  static F LoadFp8(const uint8_t* p) {
    return Fp8ToFloat(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  }
  static F LoadFp8Partial(const uint8_t* p, int64_t n) {
    return Fp8ToFloat(_mm_maskz_loadu_epi8(Mask(n), p));
  }

 private:
  static void Widen(__m512i v, F& even, F& odd) {
    even = _mm512_castsi512_ps(_mm512_slli_epi32(v, 16));
    odd =
        _mm512_castsi512_ps(_mm512_and_si512(v, _mm512_set1_epi32(static_cast<int>(0xFFFF0000u))));
  }
  static __m256i ToBf16(F v) {
    const __m512i bits = _mm512_castps_si512(v);
    const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(bits, 16), _mm512_set1_epi32(1));
    __m512i rounded = _mm512_srli_epi32(
        _mm512_add_epi32(bits, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7FFF))), 16);
    const __mmask16 nan = _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
    rounded =
        _mm512_mask_or_epi32(rounded, nan, _mm512_srli_epi32(bits, 16), _mm512_set1_epi32(0x40));
    return _mm512_cvtepi32_epi16(rounded);
  }
  static __m512i InterleaveLo() {
    return _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
  }
  static __m512i InterleaveHi() {
    return _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
  }
  static F Fp8ToFloat(__m128i bytes) {
    // Sign-extended and shifted: bit 15 is the sign, bit 14 a stray copy (cleared).
    __m256i h = _mm256_and_si256(_mm256_slli_epi16(_mm256_cvtepi8_epi16(bytes), 7),
                                 _mm256_set1_epi16(static_cast<int16_t>(0xBFFF)));
    const __m256i all_ones = _mm256_set1_epi16(0x3F80);
    const __mmask16 nan = _mm256_cmpeq_epi16_mask(_mm256_and_si256(h, all_ones), all_ones);
    h = _mm256_mask_blend_epi16(nan, h, _mm256_set1_epi16(0x7E00));
    return _mm512_cvtph_ps(h);
  }
};

}  // namespace
}  // namespace yard::kernels::cpu::internal

#endif  // SWITCHYARD_KERNELS_CPU_ELEMENTWISE_SIMD_AVX512_H_
