// Gemm kernels for AVX2 + FMA + F16C, the path for CPUs without AVX-512 BF16.
// Compiled with those flags; reached only through Avx2GemmKernel() after a run-time
// check. Same scheme as the FP32-activation path of gemm_avx512.cc at half the
// width: per 16 columns, a 32-byte BF16 load gives the even and odd weights as FP32
// (lane << 16, lane & 0xFFFF0000) against x pre-split into even/odd positions, and
// 16 FP8 bytes become FP16 bit patterns of value / 2^8 widened by vcvtph2ps against x
// pre-scaled by block scale · 2^8. There are no masked byte loads, so the last
// partial 16 columns of a row are copied to a zero-padded stack buffer.
// BF16 activations are not offered here (no vdpbf16ps): the dispatcher always asks
// for FP32 ones.
#include <immintrin.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "kernels/cpu/gemm_kernels.h"

namespace yard::kernels::cpu::internal {
namespace {

constexpr int64_t kBlock = 128;
constexpr int64_t kRowChunk = 64;
constexpr int64_t kRowsPerBlock = 64;
constexpr int kMr = 3;
constexpr int kNr = 4;
constexpr int64_t kStep = 16;

inline int64_t RoundUp(int64_t v, int64_t a) { return (v + a - 1) / a * a; }
inline int64_t Min(int64_t a, int64_t b) { return a < b ? a : b; }

// 8 int32 lanes, all ones in the first `count` (clamped to [0, 8]).
inline __m256i TailMask8(int64_t count) {
  const __m256i index = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  const int clamped = static_cast<int>(count < 0 ? 0 : (count > 8 ? 8 : count));
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(clamped), index);
}

inline __m128 Reduce4(__m256 a, __m256 b, __m256 c, __m256 d) {
  const __m256 abcd = _mm256_hadd_ps(_mm256_hadd_ps(a, b), _mm256_hadd_ps(c, d));
  return _mm_add_ps(_mm256_castps256_ps128(abcd), _mm256_extractf128_ps(abcd, 1));
}

// The 16 weights at row[0:16] as two FP32 vectors (BF16: even/odd positions; FP8:
// positions 0-7 / 8-15, value / 2^8).
template <bool kFp8>
inline void LoadWeights(const uint8_t* row, __m256& wa, __m256& wb) {
  if constexpr (kFp8) {
    const __m128i bytes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(row));
    __m256i h = _mm256_and_si256(_mm256_slli_epi16(_mm256_cvtepi8_epi16(bytes), 7),
                                 _mm256_set1_epi16(static_cast<int16_t>(0xBFFF)));
    const __m256i all_ones = _mm256_set1_epi16(0x3F80);
    const __m256i nan = _mm256_cmpeq_epi16(_mm256_and_si256(h, all_ones), all_ones);
    h = _mm256_blendv_epi8(h, _mm256_set1_epi16(0x7E00), nan);
    wa = _mm256_cvtph_ps(_mm256_castsi256_si128(h));
    wb = _mm256_cvtph_ps(_mm256_extracti128_si256(h, 1));
  } else {
    const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(row));
    wa = _mm256_castsi256_ps(_mm256_slli_epi32(v, 16));
    wb = _mm256_castsi256_ps(
        _mm256_and_si256(v, _mm256_set1_epi32(static_cast<int>(0xFFFF0000u))));
  }
}

template <bool kFp8, int MR, int NR>
inline void Step(const float* xp, int64_t xp_ld, const uint8_t* const (&rows)[NR],
                 __m256 (&acc)[MR][NR]) {
  for (int r = 0; r < NR; ++r) {
    __m256 wa, wb;
    LoadWeights<kFp8>(rows[r], wa, wb);
    for (int i = 0; i < MR; ++i) {
      acc[i][r] = _mm256_fmadd_ps(_mm256_load_ps(xp + i * xp_ld), wa, acc[i][r]);
      acc[i][r] = _mm256_fmadd_ps(_mm256_load_ps(xp + i * xp_ld + 8), wb, acc[i][r]);
    }
  }
}

// y[0:MR, 0:NR] = prepared x rows · w rows over k columns.
// xp: [MR, RoundUp(k, 16)] fp32 prepared, row stride xp_ld. w: [NR, k], row stride
// w_ld bytes. y: row stride y_ld.
template <bool kFp8, int MR, int NR>
void Tile(const float* xp, int64_t xp_ld, const uint8_t* w, int64_t w_ld, int64_t k,
          float* y, int64_t y_ld) {
  constexpr int64_t kElem = kFp8 ? 1 : 2;
  __m256 acc[MR][NR];
  for (int i = 0; i < MR; ++i) {
    for (int r = 0; r < NR; ++r) acc[i][r] = _mm256_setzero_ps();
  }
  const int64_t k_full = k / kStep * kStep;
  for (int64_t kk = 0; kk < k_full; kk += kStep) {
    const uint8_t* rows[NR];
    for (int r = 0; r < NR; ++r) {
      rows[r] = w + r * w_ld + kk * kElem;
      // The next tile's rows, same columns: a whole tile ahead, so the line is in L1
      // when needed.
      _mm_prefetch(reinterpret_cast<const char*>(rows[r] + NR * w_ld), _MM_HINT_T0);
    }
    Step<kFp8, MR, NR>(xp + kk, xp_ld, rows, acc);
  }
  if (k_full < k) {
    alignas(32) uint8_t tail[NR][kStep * kElem];
    const uint8_t* rows[NR];
    for (int r = 0; r < NR; ++r) {
      std::memset(tail[r], 0, sizeof(tail[r]));
      std::memcpy(tail[r], w + r * w_ld + k_full * kElem, (k - k_full) * kElem);
      rows[r] = tail[r];
    }
    Step<kFp8, MR, NR>(xp + k_full, xp_ld, rows, acc);
  }
  const __m256 zero = _mm256_setzero_ps();
  for (int i = 0; i < MR; ++i) {
    const __m128 sums =
        Reduce4(acc[i][0], NR > 1 ? acc[i][1 % NR] : zero, NR > 2 ? acc[i][2 % NR] : zero,
                NR > 3 ? acc[i][3 % NR] : zero);
    float* out = y + i * y_ld;
    if constexpr (NR == 4) {
      _mm_storeu_ps(out, sums);
    } else {
      alignas(16) float buffer[4];
      _mm_store_ps(buffer, sums);
      for (int r = 0; r < NR; ++r) out[r] = buffer[r];
    }
  }
}

using TileFn = void (*)(const float*, int64_t, const uint8_t*, int64_t, int64_t, float*,
                        int64_t);

template <bool kFp8>
TileFn PickTile(int mr, int nr) {
  static constexpr TileFn kTable[kMr][kNr] = {
      {Tile<kFp8, 1, 1>, Tile<kFp8, 1, 2>, Tile<kFp8, 1, 3>, Tile<kFp8, 1, 4>},
      {Tile<kFp8, 2, 1>, Tile<kFp8, 2, 2>, Tile<kFp8, 2, 3>, Tile<kFp8, 2, 4>},
      {Tile<kFp8, 3, 1>, Tile<kFp8, 3, 2>, Tile<kFp8, 3, 3>, Tile<kFp8, 3, 4>},
  };
  return kTable[mr - 1][nr - 1];
}

// x row [k] → xp [RoundUp(k, 16)]: per 16 columns the 8 even then the 8 odd
// positions, zero-padded.
void SplitEvenOdd(const float* x, int64_t k, float* xp) {
  const __m256i pack = _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7);
  for (int64_t kk = 0; kk < k; kk += kStep) {
    const __m256 lo = _mm256_maskload_ps(x + kk, TailMask8(k - kk));
    const __m256 hi = _mm256_maskload_ps(x + kk + 8, TailMask8(k - kk - 8));
    // lo' = [x0 x2 x4 x6 | x1 x3 x5 x7], hi' likewise for x8..x15.
    const __m256 a = _mm256_permutevar8x32_ps(lo, pack);
    const __m256 b = _mm256_permutevar8x32_ps(hi, pack);
    _mm256_store_ps(xp + kk, _mm256_permute2f128_ps(a, b, 0x20));
    _mm256_store_ps(xp + kk + 8, _mm256_permute2f128_ps(a, b, 0x31));
  }
}

// x row [k] → xp [RoundUp(k, 16)] = x · scales[c / 128] · 2^8, zero-padded.
void ScaleForFp8(const float* x, int64_t k, const float* scales, float* xp) {
  for (int64_t kk = 0; kk < RoundUp(k, kStep); kk += 8) {
    const __m256 s = _mm256_set1_ps(scales[kk / kBlock] * 256.0f);
    _mm256_store_ps(xp + kk, _mm256_mul_ps(_mm256_maskload_ps(x + kk, TailMask8(k - kk)), s));
  }
}

void Run(const GemmArgs& a, int64_t m_begin, int64_t m_end, int64_t n_begin,
         int64_t n_end, void* scratch) {
  const int64_t kp = RoundUp(a.k, kStep);
  const int64_t w_ld = a.k * (a.fp8 ? 1 : 2);
  const uint8_t* w = static_cast<const uint8_t*>(a.w);
  const int64_t scale_cols = (a.k + kBlock - 1) / kBlock;
  float* xp = static_cast<float*>(scratch);
  for (int64_t mc = m_begin; mc < m_end; mc += kRowChunk) {
    const int64_t rows = Min(kRowChunk, m_end - mc);
    if (!a.fp8) {
      for (int64_t i = 0; i < rows; ++i) {
        SplitEvenOdd(a.x + (mc + i) * a.x_stride, a.k, xp + i * kp);
      }
    }
    int64_t nb = n_begin;
    while (nb < n_end) {
      const int64_t nb_end =
          a.fp8 ? Min(n_end, (nb / kBlock + 1) * kBlock) : Min(n_end, nb + kRowsPerBlock);
      if (a.fp8) {
        const float* scales = a.scale_inv + (nb / kBlock) * scale_cols;
        for (int64_t i = 0; i < rows; ++i) {
          ScaleForFp8(a.x + (mc + i) * a.x_stride, a.k, scales, xp + i * kp);
        }
      }
      for (int64_t mt = 0; mt < rows; mt += kMr) {
        const int mr = static_cast<int>(Min(kMr, rows - mt));
        for (int64_t nt = nb; nt < nb_end; nt += kNr) {
          const int nr = static_cast<int>(Min(kNr, nb_end - nt));
          TileFn tile = a.fp8 ? PickTile<true>(mr, nr) : PickTile<false>(mr, nr);
          tile(xp + mt * kp, kp, w + nt * w_ld, w_ld, a.k,
               a.y + (mc + mt) * a.y_stride + nt, a.y_stride);
        }
      }
      nb = nb_end;
    }
  }
}

size_t ScratchBytes(const GemmArgs& a, int64_t rows) {
  return static_cast<size_t>(Min(rows, kRowChunk) * RoundUp(a.k, kStep) * 4);
}

}  // namespace

GemmKernel Avx2GemmKernel() { return GemmKernel{&Run, &ScratchBytes}; }

}  // namespace yard::kernels::cpu::internal
