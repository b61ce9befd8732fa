// Gemm kernels for AVX-512 (F/BW/VL/DQ + BF16 + F16C + FMA). Compiled with those
// flags; reached only through Avx512GemmKernel() after a run-time check.
//
// Layout: every dot product runs along k, the contiguous dimension of both x and the
// checkpoint's w, so weights are read straight from the mapping. A tile keeps
// MR × NR accumulator vectors (rows of x × rows of w) and loads each 64-byte piece of
// a weight row once for all MR rows of x.
//
// Two paths:
//  - FP32 activations: weights are widened to FP32 in registers and FMA'd.
//    BF16: the 32-bit lane j of a 64-byte load holds w[2j] (low half) and w[2j+1]
//    (high half); `lane << 16` and `lane & 0xFFFF0000` are those two weights as FP32,
//    so x is pre-split into even and odd positions per 32 (once per call).
//    FP8 e4m3: the byte's low 7 bits shifted into an FP16's exponent/mantissa give the
//    value / 2^8 exactly (subnormals included, since both formats keep the same
//    3-bit mantissa and the bias differs by 8); vcvtph2ps widens it. The 2^8 and the
//    block scale are folded into a scaled copy of x made once per 128 weight rows.
//  - BF16 activations (prefill): x rounded to BF16 once (FP8: bf16(x · scale) per
//    128 weight rows) and multiplied with vdpbf16ps. FP8 weights are decoded to
//    BF16 (exact) in a per-thread panel of ≤ 128 rows × kKc columns, reused by all
//    rows of x.
// Each output element's reduction order depends only on k (lanes, then a fixed
// horizontal tree), never on the tile shape or the split between threads.
#include <immintrin.h>

#include <cstddef>
#include <cstdint>

#include "kernels/cpu/gemm_kernels.h"

namespace yard::kernels::cpu::internal {
namespace {

constexpr int64_t kBlock = 128;  // FP8 scale block
// FP32 path: rows of x prepared at once (bounds the scratch), rows of w per block.
constexpr int64_t kF32RowChunk = 64;
constexpr int64_t kF32RowsPerBlock = 64;
constexpr int64_t kF32PanelRows = 32;
constexpr int kF32Mr = 4;
constexpr int kF32Nr = 4;
// BF16 path: rows of x and columns of k per prepared block; weight rows per block.
constexpr int64_t kBf16RowChunk = 256;
constexpr int64_t kKc = 2048;
constexpr int64_t kBf16RowsPerBlock = 64;
constexpr int kDpMr = 6;
constexpr int kDpNr = 4;

inline int64_t RoundUp(int64_t v, int64_t a) { return (v + a - 1) / a * a; }
inline int64_t Min(int64_t a, int64_t b) { return a < b ? a : b; }

inline __mmask32 TailMask32(int64_t count) {
  return count >= 32 ? ~__mmask32{0} : (__mmask32{1} << count) - 1;
}
inline __mmask16 TailMask16(int64_t count) {
  if (count <= 0) return 0;
  return count >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << count) - 1);
}

// 32 FP8 e4m3fn bytes → 32 FP16 bit patterns holding value / 2^8 (NaN codes → NaN).
inline __m512i Fp8ToHalfBits(__m256i bytes) {
  // Sign-extending puts copies of the sign in bits 8-15; after << 7 bit 15 is the
  // sign, bit 14 a stray sign copy (cleared), bits 13-7 the exponent and mantissa.
  const __m512i h = _mm512_and_si512(_mm512_slli_epi16(_mm512_cvtepi8_epi16(bytes), 7),
                                     _mm512_set1_epi16(static_cast<int16_t>(0xBFFF)));
  const __m512i all_ones = _mm512_set1_epi16(0x3F80);
  const __mmask32 nan = _mm512_cmpeq_epi16_mask(_mm512_and_si512(h, all_ones), all_ones);
  return _mm512_mask_blend_epi16(nan, h, _mm512_set1_epi16(0x7E00));
}

// Sums of four vectors as [sum a, sum b, sum c, sum d], by a fixed tree per element.
inline __m128 Reduce4(__m512 a, __m512 b, __m512 c, __m512 d) {
  auto fold = [](__m512 v) {
    return _mm256_add_ps(_mm512_castps512_ps256(v), _mm512_extractf32x8_ps(v, 1));
  };
  const __m256 ab = _mm256_hadd_ps(fold(a), fold(b));
  const __m256 cd = _mm256_hadd_ps(fold(c), fold(d));
  const __m256 abcd = _mm256_hadd_ps(ab, cd);
  return _mm_add_ps(_mm256_castps256_ps128(abcd), _mm256_extractf128_ps(abcd, 1));
}

template <int NR>
inline void StoreRow(float* y, __m128 v, bool accumulate) {
  constexpr __mmask8 mask = static_cast<__mmask8>((1u << NR) - 1);
  if (accumulate) v = _mm_add_ps(v, _mm_maskz_loadu_ps(mask, y));
  _mm_mask_storeu_ps(y, mask, v);
}

template <int MR, int NR>
inline void StoreTile(__m512 (&acc)[MR][NR], float* y, int64_t y_ld, bool accumulate) {
  const __m512 zero = _mm512_setzero_ps();
  for (int i = 0; i < MR; ++i) {
    const __m128 sums = Reduce4(acc[i][0], NR > 1 ? acc[i][1 % NR] : zero,
                                NR > 2 ? acc[i][2 % NR] : zero,
                                NR > 3 ? acc[i][3 % NR] : zero);
    StoreRow<NR>(y + i * y_ld, sums, accumulate);
  }
}

// ---------------------------------------------------------------- FP32 activations

// How a tile reads its weight rows: the checkpoint's BF16 widened in registers (also
// used for FP8 panels, see DecodeFp8Pairs), or its FP8 decoded in registers.
enum class WKind { kBf16, kFp8 };

// Software prefetch of the next tile's rows: measured on one core from DRAM, FP8
// M=1 goes from ~9-13 to ~20 GB/s and BF16 from ~17-22 to ~25 GB/s; prefetching 2
// or 4 tiles ahead was no better.
constexpr bool kPrefetchNextTile = true;

// One 32-wide step of an MR × NR tile. xp rows hold the prepared activations (split
// even/odd for BF16, scaled for FP8) for this 32-column piece at xp + i * xp_ld.
template <WKind kW, int MR, int NR, bool kMasked>
inline void StepF32(const float* xp, int64_t xp_ld, const uint8_t* w, int64_t w_ld,
                    __mmask32 mask, __m512 (&acc)[MR][NR]) {
  __m512 wa[NR];
  __m512 wb[NR];
  for (int r = 0; r < NR; ++r) {
    const uint8_t* row = w + r * w_ld;
    if constexpr (kPrefetchNextTile) {
      // The same columns of the next tile's rows: a whole tile (≥ 8 KiB) ahead, so
      // the line is in L1 when needed, and each row starts a fresh 4 KiB page the
      // hardware prefetcher would only find after a few misses.
      _mm_prefetch(reinterpret_cast<const char*>(row + NR * w_ld), _MM_HINT_T0);
    }
    if constexpr (kW == WKind::kFp8) {
      const __m256i bytes =
          kMasked ? _mm256_maskz_loadu_epi8(mask, row)
                  : _mm256_loadu_si256(reinterpret_cast<const __m256i*>(row));
      const __m512i h = Fp8ToHalfBits(bytes);
      wa[r] = _mm512_cvtph_ps(_mm512_castsi512_si256(h));
      wb[r] = _mm512_cvtph_ps(_mm512_extracti64x4_epi64(h, 1));
    } else {
      const __m512i v = kMasked ? _mm512_maskz_loadu_epi16(mask, row)
                                : _mm512_loadu_si512(row);
      wa[r] = _mm512_castsi512_ps(_mm512_slli_epi32(v, 16));
      wb[r] = _mm512_castsi512_ps(
          _mm512_and_si512(v, _mm512_set1_epi32(static_cast<int>(0xFFFF0000u))));
    }
  }
  for (int i = 0; i < MR; ++i) {
    const __m512 xa = _mm512_load_ps(xp + i * xp_ld);
    const __m512 xb = _mm512_load_ps(xp + i * xp_ld + 16);
    for (int r = 0; r < NR; ++r) {
      acc[i][r] = _mm512_fmadd_ps(xa, wa[r], acc[i][r]);
      acc[i][r] = _mm512_fmadd_ps(xb, wb[r], acc[i][r]);
    }
  }
}

// y[0:MR, 0:NR] = prepared x rows · w rows over k columns.
// xp: [MR, RoundUp(k, 32)] fp32 prepared, row stride xp_ld. w: [NR, k] row stride
// w_ld bytes. y: row stride y_ld.
template <WKind kW, int MR, int NR>
void TileF32(const float* xp, int64_t xp_ld, const uint8_t* w, int64_t w_ld, int64_t k,
             float* y, int64_t y_ld) {
  constexpr int64_t kElem = kW == WKind::kFp8 ? 1 : 2;
  __m512 acc[MR][NR];
  for (int i = 0; i < MR; ++i) {
    for (int r = 0; r < NR; ++r) acc[i][r] = _mm512_setzero_ps();
  }
  const int64_t k_full = k / 32 * 32;
  for (int64_t kk = 0; kk < k_full; kk += 32) {
    StepF32<kW, MR, NR, false>(xp + kk, xp_ld, w + kk * kElem, w_ld, 0, acc);
  }
  if (k_full < k) {
    StepF32<kW, MR, NR, true>(xp + k_full, xp_ld, w + k_full * kElem, w_ld,
                                TailMask32(k - k_full), acc);
  }
  StoreTile<MR, NR>(acc, y, y_ld, /*accumulate=*/false);
}

using TileF32Fn = void (*)(const float*, int64_t, const uint8_t*, int64_t, int64_t,
                           float*, int64_t);

template <WKind kW>
TileF32Fn PickTileF32(int mr, int nr) {
  static constexpr TileF32Fn kTable[kF32Mr][kF32Nr] = {
      {TileF32<kW, 1, 1>, TileF32<kW, 1, 2>, TileF32<kW, 1, 3>, TileF32<kW, 1, 4>},
      {TileF32<kW, 2, 1>, TileF32<kW, 2, 2>, TileF32<kW, 2, 3>, TileF32<kW, 2, 4>},
      {TileF32<kW, 3, 1>, TileF32<kW, 3, 2>, TileF32<kW, 3, 3>, TileF32<kW, 3, 4>},
      {TileF32<kW, 4, 1>, TileF32<kW, 4, 2>, TileF32<kW, 4, 3>, TileF32<kW, 4, 4>},
  };
  return kTable[mr - 1][nr - 1];
}

// FP8 rows [rows, k] (row stride w_ld bytes) → panel [rows, RoundUp(k, 32)] of BF16
// pairs: per 32 columns, 32-bit lane j holds value / 2^8 of column j (low half) and
// of column 16 + j (high half), exact (3 mantissa bits fit BF16), zero-padded.
// TileF32<kBf16> widens lane j to exactly the two FP32 numbers StepF32<kFp8> decodes
// for lanes j of its two halves, so both give the same bits.
void DecodeFp8Pairs(const uint8_t* w, int64_t w_ld, int64_t rows, int64_t k,
                    uint16_t* panel) {
  const int64_t kp = RoundUp(k, 32);
  const __m512i high = _mm512_set1_epi32(static_cast<int>(0xFFFF0000u));
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t kk = 0; kk < k; kk += 32) {
      // Rows come straight from DRAM: prefetch a few rows ahead (see
      // kPrefetchNextTile).
      _mm_prefetch(reinterpret_cast<const char*>(w + (r + kF32Nr) * w_ld + kk), _MM_HINT_T0);
      const __m512i h =
          Fp8ToHalfBits(_mm256_maskz_loadu_epi8(TailMask32(k - kk), w + r * w_ld + kk));
      const __m512i lo = _mm512_castps_si512(_mm512_cvtph_ps(_mm512_castsi512_si256(h)));
      const __m512i hi =
          _mm512_castps_si512(_mm512_cvtph_ps(_mm512_extracti64x4_epi64(h, 1)));
      // (lo >> 16) | (hi & 0xFFFF0000): the FP32s' low halves are zero.
      _mm512_store_si512(panel + r * kp + kk,
                         _mm512_ternarylogic_epi32(_mm512_srli_epi32(lo, 16), hi, high, 0xF8));
    }
  }
}

// x row [k] fp32 → xp [RoundUp(k, 32)]: per 32 columns, the 16 even then the 16 odd
// positions, zero-padded.
void SplitEvenOdd(const float* x, int64_t k, float* xp) {
  const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24,
                                         26, 28, 30);
  const __m512i odd = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25,
                                        27, 29, 31);
  for (int64_t kk = 0; kk < k; kk += 32) {
    const __m512 lo = _mm512_maskz_loadu_ps(TailMask16(k - kk), x + kk);
    const __m512 hi = _mm512_maskz_loadu_ps(TailMask16(k - kk - 16), x + kk + 16);
    _mm512_store_ps(xp + kk, _mm512_permutex2var_ps(lo, even, hi));
    _mm512_store_ps(xp + kk + 16, _mm512_permutex2var_ps(lo, odd, hi));
  }
}

// x row [k] fp32 → xp [RoundUp(k, 32)] = x · scale[k / 128] · 2^8, zero-padded.
// scales: one row of scale_inv.
void ScaleForFp8(const float* x, int64_t k, const float* scales, float* xp) {
  for (int64_t kk = 0; kk < k; kk += 16) {
    const __m512 s = _mm512_set1_ps(scales[kk / kBlock] * 256.0f);
    const __m512 v = _mm512_maskz_loadu_ps(TailMask16(k - kk), x + kk);
    _mm512_store_ps(xp + kk, _mm512_mul_ps(v, s));
  }
  if (k % 32 != 0 && k % 32 <= 16) {
    _mm512_store_ps(xp + k / 32 * 32 + 16, _mm512_setzero_ps());
  }
}

void RunF32(const GemmArgs& a, int64_t m_begin, int64_t m_end, int64_t n_begin,
            int64_t n_end, void* scratch) {
  const int64_t kp = RoundUp(a.k, 32);
  const int64_t elem = a.fp8 ? 1 : 2;
  const int64_t w_ld = a.k * elem;
  const uint8_t* w = static_cast<const uint8_t*>(a.w);
  const int64_t scale_cols = (a.k + kBlock - 1) / kBlock;
  float* xp = static_cast<float*>(scratch);
  uint16_t* panel = reinterpret_cast<uint16_t*>(xp + kF32RowChunk * kp);
  for (int64_t mc = m_begin; mc < m_end; mc += kF32RowChunk) {
    const int64_t rows = Min(kF32RowChunk, m_end - mc);
    if (!a.fp8) {
      for (int64_t i = 0; i < rows; ++i) {
        SplitEvenOdd(a.x + (mc + i) * a.x_stride, a.k, xp + i * kp);
      }
    }
    int64_t nb = n_begin;
    while (nb < n_end) {
      // FP8 blocks end on scale-row boundaries so one scaled x serves the block.
      const int64_t nb_end =
          a.fp8 ? Min(n_end, (nb / kBlock + 1) * kBlock) : Min(n_end, nb + kF32RowsPerBlock);
      if (a.fp8) {
        const float* scales = a.scale_inv + (nb / kBlock) * scale_cols;
        for (int64_t i = 0; i < rows; ++i) {
          ScaleForFp8(a.x + (mc + i) * a.x_stride, a.k, scales, xp + i * kp);
        }
      }
      if (a.fp8 && rows > kF32Mr) {
        // Several tiles of x share each weight row: decode FP8 (~5× the cost of
        // widening BF16) once per panel of rows instead of once per tile.
        for (int64_t pb = nb; pb < nb_end; pb += kF32PanelRows) {
          const int64_t pb_end = Min(nb_end, pb + kF32PanelRows);
          DecodeFp8Pairs(w + pb * w_ld, w_ld, pb_end - pb, a.k, panel);
          for (int64_t mt = 0; mt < rows; mt += kF32Mr) {
            const int mr = static_cast<int>(Min(kF32Mr, rows - mt));
            for (int64_t nt = pb; nt < pb_end; nt += kF32Nr) {
              const int nr = static_cast<int>(Min(kF32Nr, pb_end - nt));
              // k = kp: the pairs layout must not be masked by column; its padding
              // is zero, as the in-register path's masked tail is.
              PickTileF32<WKind::kBf16>(mr, nr)(
                  xp + mt * kp, kp, reinterpret_cast<const uint8_t*>(panel + (nt - pb) * kp),
                  kp * 2, kp, a.y + (mc + mt) * a.y_stride + nt, a.y_stride);
            }
          }
        }
      } else {
        for (int64_t mt = 0; mt < rows; mt += kF32Mr) {
          const int mr = static_cast<int>(Min(kF32Mr, rows - mt));
          for (int64_t nt = nb; nt < nb_end; nt += kF32Nr) {
            const int nr = static_cast<int>(Min(kF32Nr, nb_end - nt));
            TileF32Fn tile = a.fp8 ? PickTileF32<WKind::kFp8>(mr, nr)
                                   : PickTileF32<WKind::kBf16>(mr, nr);
            tile(xp + mt * kp, kp, w + nt * w_ld, w_ld, a.k,
                 a.y + (mc + mt) * a.y_stride + nt, a.y_stride);
          }
        }
      }
      nb = nb_end;
    }
  }
}

// ---------------------------------------------------------------- BF16 activations

// y[0:MR, 0:NR] (+)= xb rows · w rows over k columns, vdpbf16ps.
// xb: [MR, RoundUp(k, 32)] bf16, zero-padded, row stride x_ld elements, 64-byte
// aligned rows. w: [NR, k] bf16, row stride w_ld elements.
template <int MR, int NR>
void TileDp(const uint16_t* xb, int64_t x_ld, const uint16_t* w, int64_t w_ld,
            int64_t k, float* y, int64_t y_ld, bool accumulate) {
  __m512 acc[MR][NR];
  for (int i = 0; i < MR; ++i) {
    for (int r = 0; r < NR; ++r) acc[i][r] = _mm512_setzero_ps();
  }
  auto step = [&](int64_t kk, __mmask32 mask, bool masked) {
    __m512bh wv[NR];
    for (int r = 0; r < NR; ++r) {
      const uint16_t* row = w + r * w_ld + kk;
      wv[r] = reinterpret_cast<__m512bh>(masked ? _mm512_maskz_loadu_epi16(mask, row)
                                                : _mm512_loadu_si512(row));
    }
    for (int i = 0; i < MR; ++i) {
      const __m512bh xv = reinterpret_cast<__m512bh>(_mm512_load_si512(xb + i * x_ld + kk));
      for (int r = 0; r < NR; ++r) acc[i][r] = _mm512_dpbf16_ps(acc[i][r], xv, wv[r]);
    }
  };
  const int64_t k_full = k / 32 * 32;
  for (int64_t kk = 0; kk < k_full; kk += 32) step(kk, 0, false);
  if (k_full < k) step(k_full, TailMask32(k - k_full), true);
  StoreTile<MR, NR>(acc, y, y_ld, accumulate);
}

using TileDpFn = void (*)(const uint16_t*, int64_t, const uint16_t*, int64_t, int64_t,
                          float*, int64_t, bool);

TileDpFn PickTileDp(int mr, int nr) {
  static constexpr TileDpFn kTable[kDpMr][kDpNr] = {
      {TileDp<1, 1>, TileDp<1, 2>, TileDp<1, 3>, TileDp<1, 4>},
      {TileDp<2, 1>, TileDp<2, 2>, TileDp<2, 3>, TileDp<2, 4>},
      {TileDp<3, 1>, TileDp<3, 2>, TileDp<3, 3>, TileDp<3, 4>},
      {TileDp<4, 1>, TileDp<4, 2>, TileDp<4, 3>, TileDp<4, 4>},
      {TileDp<5, 1>, TileDp<5, 2>, TileDp<5, 3>, TileDp<5, 4>},
      {TileDp<6, 1>, TileDp<6, 2>, TileDp<6, 3>, TileDp<6, 4>},
  };
  return kTable[mr - 1][nr - 1];
}

// x[0:k] fp32 (· scales[c / 128] · 2^8 when scales, matching the panel's value / 2^8)
// → xb [RoundUp(k, 32)] bf16, RNE, zero-padded. x starts at absolute column col0
// (a multiple of 128), which indexes `scales`.
void ToBf16(const float* x, int64_t k, const float* scales, int64_t col0, uint16_t* xb) {
  for (int64_t kk = 0; kk < k; kk += 32) {
    __m512 lo = _mm512_maskz_loadu_ps(TailMask16(k - kk), x + kk);
    __m512 hi = _mm512_maskz_loadu_ps(TailMask16(k - kk - 16), x + kk + 16);
    if (scales != nullptr) {
      // 32 | 128 and col0 % 128 == 0: one scale per 32 columns.
      const __m512 s = _mm512_set1_ps(scales[(col0 + kk) / kBlock] * 256.0f);
      lo = _mm512_mul_ps(lo, s);
      hi = _mm512_mul_ps(hi, s);
    }
    _mm512_store_si512(xb + kk, reinterpret_cast<__m512i>(_mm512_cvtne2ps_pbh(hi, lo)));
  }
}

// FP8 rows [rows, k] (row stride w_ld bytes) → panel [rows, RoundUp(k, 32)] bf16 of
// value / 2^8, exact.
void DecodeFp8Panel(const uint8_t* w, int64_t w_ld, int64_t rows, int64_t k,
                    uint16_t* panel) {
  const int64_t kp = RoundUp(k, 32);
  for (int64_t r = 0; r < rows; ++r) {
    const uint8_t* row = w + r * w_ld;
    for (int64_t kk = 0; kk < k; kk += 32) {
      _mm_prefetch(reinterpret_cast<const char*>(row + kDpNr * w_ld + kk), _MM_HINT_T0);
      const __m512i h = Fp8ToHalfBits(_mm256_maskz_loadu_epi8(TailMask32(k - kk), row + kk));
      const __m512 lo = _mm512_cvtph_ps(_mm512_castsi512_si256(h));
      const __m512 hi = _mm512_cvtph_ps(_mm512_extracti64x4_epi64(h, 1));
      _mm512_store_si512(panel + r * kp + kk,
                         reinterpret_cast<__m512i>(_mm512_cvtne2ps_pbh(hi, lo)));
    }
  }
}

void RunBf16(const GemmArgs& a, int64_t m_begin, int64_t m_end, int64_t n_begin,
             int64_t n_end, void* scratch) {
  const int64_t scale_cols = (a.k + kBlock - 1) / kBlock;
  uint16_t* xb = static_cast<uint16_t*>(scratch);
  uint16_t* panel = xb + kBf16RowChunk * kKc;
  for (int64_t mc = m_begin; mc < m_end; mc += kBf16RowChunk) {
    const int64_t rows = Min(kBf16RowChunk, m_end - mc);
    for (int64_t kc = 0; kc < a.k; kc += kKc) {
      const int64_t kw = Min(kKc, a.k - kc);
      const int64_t kwp = RoundUp(kw, 32);
      const bool accumulate = kc > 0;
      if (!a.fp8) {
        for (int64_t i = 0; i < rows; ++i) {
          ToBf16(a.x + (mc + i) * a.x_stride + kc, kw, nullptr, kc, xb + i * kwp);
        }
      }
      int64_t nb = n_begin;
      while (nb < n_end) {
        const int64_t nb_end = a.fp8 ? Min(n_end, (nb / kBlock + 1) * kBlock)
                                     : Min(n_end, nb + kBf16RowsPerBlock);
        const uint16_t* wrows;
        int64_t w_ld;
        if (a.fp8) {
          const float* scales = a.scale_inv + (nb / kBlock) * scale_cols;
          for (int64_t i = 0; i < rows; ++i) {
            ToBf16(a.x + (mc + i) * a.x_stride + kc, kw, scales, kc, xb + i * kwp);
          }
          DecodeFp8Panel(static_cast<const uint8_t*>(a.w) + nb * a.k + kc, a.k,
                         nb_end - nb, kw, panel);
          wrows = panel;
          w_ld = kwp;
        } else {
          wrows = static_cast<const uint16_t*>(a.w) + nb * a.k + kc;
          w_ld = a.k;
        }
        for (int64_t mt = 0; mt < rows; mt += kDpMr) {
          const int mr = static_cast<int>(Min(kDpMr, rows - mt));
          for (int64_t nt = nb; nt < nb_end; nt += kDpNr) {
            const int nr = static_cast<int>(Min(kDpNr, nb_end - nt));
            PickTileDp(mr, nr)(xb + mt * kwp, kwp, wrows + (nt - nb) * w_ld, w_ld, kw,
                               a.y + (mc + mt) * a.y_stride + nt, a.y_stride,
                               accumulate);
          }
        }
        nb = nb_end;
      }
    }
  }
}

void Run(const GemmArgs& a, int64_t m_begin, int64_t m_end, int64_t n_begin,
         int64_t n_end, void* scratch) {
  if (a.bf16_activations) {
    RunBf16(a, m_begin, m_end, n_begin, n_end, scratch);
  } else {
    RunF32(a, m_begin, m_end, n_begin, n_end, scratch);
  }
}

size_t ScratchBytes(const GemmArgs& a, int64_t rows) {
  if (a.bf16_activations) {
    // x block [kBf16RowChunk, kKc] bf16 + FP8 panel [128, kKc] bf16.
    return (kBf16RowChunk + kBlock) * kKc * 2;
  }
  // x chunk [kF32RowChunk, kp] fp32 + FP8 panel [kF32PanelRows, kp] bf16 pairs.
  return static_cast<size_t>((kF32RowChunk * 4 + kF32PanelRows * 2) * RoundUp(a.k, 32));
}

}  // namespace

GemmKernel Avx512GemmKernel() { return GemmKernel{&Run, &ScratchBytes}; }

}  // namespace yard::kernels::cpu::internal
