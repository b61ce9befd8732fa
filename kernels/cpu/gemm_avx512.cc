// Gemm kernels for AVX-512 (F/BW/VL/DQ + VBMI + BF16 + F16C + FMA). Compiled with those
// flags; reached only through Avx512GemmKernel() after a run-time check.
//
// Layout: every dot product runs along k, the contiguous dimension of both x and the
// checkpoint's w, so weights are read straight from the mapping. A tile loads each
// 64-byte piece of a weight row once for all MR rows of x (FP32 path: one weight row
// per tile; BF16 path: NR rows).
//
// Two paths:
//  - FP32 activations (decode): weights are widened to FP32 in registers and FMA'd
//    (FP8 through BF16 words, by table lookups); x is prepared once per call (FP8:
//    once per 128 weight rows, with the block scale folded in). See the section.
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
constexpr int kF32Mr = 3;
constexpr int kF32Nr = 4;
// Tall tiles, for 4-6 x rows over FP8 weights: 2 weight rows, so the 24 accumulators
// still fit in registers.
constexpr int kF32TallMr = 6;
constexpr int kF32TallNr = 2;
// Weight rows per TileF32Sequential tile (one reduction for all of them).
constexpr int kSequentialNr = 4;
// BF16 path: rows of x and columns of k per prepared block; weight rows per block.
constexpr int64_t kBf16RowChunk = 256;
constexpr int64_t kKc = 2048;
constexpr int64_t kBf16RowsPerBlock = 64;
constexpr int kDpMr = 6;
constexpr int kDpNr = 4;
// Prepared x rows and decoded panel rows are one cache line longer than their k needs:
// at k = 2048 their strides would be multiples of 4 KiB, and every row a tile reads at
// once would fall into the same L1 set (8 ways, fewer than a tile's rows).
constexpr int64_t kPadBytes = 64;

inline int64_t RoundUp(int64_t v, int64_t a) { return (v + a - 1) / a * a; }
inline int64_t Min(int64_t a, int64_t b) { return a < b ? a : b; }

// Row stride, in elements of `bytes` bytes, of a prepared row of k columns rounded up
// to `align` columns.
inline int64_t PaddedStride(int64_t k, int64_t align, int64_t bytes) {
  return RoundUp(k, align) + kPadBytes / bytes;
}

inline __mmask32 TailMask32(int64_t count) {
  if (count <= 0) return 0;
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

// Weights arrive in groups of 64 columns, as two blocks of 32 BF16 words; the 32-bit
// lane j of a block holds two weights, `lane << 16` (low word) and
// `lane & 0xFFFF0000` (high word) as FP32, paired with x's two prepared vectors of
// the block (see PrepareBf16Activations, PrepareFp8Activations for which columns).
//  - BF16 rows are the blocks as stored: low word = even column, high word = odd.
//  - FP8 e4m3 rows are decoded 64 bytes at a time by two byte-table lookups
//    (vpermt2b: the high and low byte of each code's BF16 value, which is exact;
//    the sign bit is copied over) and interleaved per 128-bit lane with
//    vpunpck{l,h}bw. The block scale is folded into the prepared x. A panel of
//    decoded rows (DecodeFp8Panel32) holds the same words, so a BF16 tile over it
//    gives the same bits as decoding in registers.
//
// Each (x row, weight row) dot product keeps two accumulator chains, so that even a
// 1 × 1 tile has independent FMAs in flight: block b of the row adds its two
// products into chain b % 2. The order is the same for every tile shape, so the
// shape can follow m: one x row (FP8: two) takes one weight row at a time, and a thread
// then reads its weight rows as one linear stream that the hardware prefetcher
// follows (one core, BF16, k = 2048, from DRAM: 23 GB/s against 25 for a plain read
// sweep; four rows side by side, four streams each starting a fresh 4 KiB page,
// reached 13.5-15 with or without software prefetch). More x rows take several
// weight rows per tile, so each widened weight vector serves more FMAs.

enum class WKind { kBf16, kFp8 };

// Software prefetch, into L1, for weight rows read one after another: this far ahead
// in the row. The hardware prefetcher brings the stream to L2, and FP8's decode
// leaves too little slack to wait for L2 (one core from DRAM: 9-11 GB/s without,
// 19-21 with; BF16 ±3%). Side-by-side tiles instead prefetch the next tile's rows
// (see PrefetchNextTile).
constexpr int64_t kPrefetchAhead = 256;

// Side-by-side tiles read NR rows at once, NR streams that each start a fresh 4 KiB
// page (a row of k = 2048 BF16 weights is one page), and the hardware prefetcher
// follows none of them well. So a tile prefetches, into L2, the NR rows the next tile
// reads (contiguous in a checkpoint: rows × row stride bytes) as one linear range,
// spread evenly over its own steps: load r of step `line` prefetches cache line
// line · NR + r of that range. DRAM then sees one stream in address order.
// (Prefetching the same columns of the next rows instead, NR streams again, left
// batched decode's routed experts at 16-17 GB/s; decode_bench, lite4 BF16, batch 32:
// experts 173-202 → 116-157 ms per step.)
template <int NR>
inline void PrefetchNextTile(const uint8_t* w, int64_t w_ld, int64_t line, int r) {
  _mm_prefetch(reinterpret_cast<const char*>(w + NR * w_ld + (line * NR + r) * 64),
               _MM_HINT_T1);
}

// FP8 e4m3fn magnitude codes (7 bits) → BF16 bits of the exact value; 0x7F is NaN.
constexpr uint16_t Fp8MagnitudeToBf16(int code) {
  const int e = code >> 3, m = code & 7;
  if (code == 0x7F) return 0x7FC0;
  if (e > 0) return static_cast<uint16_t>(((e + 120) << 7) | (m << 4));
  if (m == 0) return 0;
  const int p = m >= 4 ? 2 : m >= 2 ? 1 : 0;  // m · 2^-9 = 2^(p-9) · (m / 2^p)
  return static_cast<uint16_t>(((p + 118) << 7) | ((m - (1 << p)) << (7 - p)));
}

struct Fp8Tables {
  alignas(64) uint8_t high[128];
  alignas(64) uint8_t low[128];
};

constexpr Fp8Tables MakeFp8Tables() {
  Fp8Tables t{};
  for (int c = 0; c < 128; ++c) {
    t.high[c] = static_cast<uint8_t>(Fp8MagnitudeToBf16(c) >> 8);
    t.low[c] = static_cast<uint8_t>(Fp8MagnitudeToBf16(c) & 0xFF);
  }
  return t;
}

constexpr Fp8Tables kFp8Tables = MakeFp8Tables();

// 64 FP8 bytes → the group's two blocks of BF16 words (see above).
inline void DecodeFp8Group(__m512i bytes, __m512i& block0, __m512i& block1) {
  const __m512i* high = reinterpret_cast<const __m512i*>(kFp8Tables.high);
  const __m512i* low = reinterpret_cast<const __m512i*>(kFp8Tables.low);
  __m512i hi = _mm512_permutex2var_epi8(_mm512_load_si512(high), bytes,
                                        _mm512_load_si512(high + 1));
  const __m512i lo = _mm512_permutex2var_epi8(_mm512_load_si512(low), bytes,
                                              _mm512_load_si512(low + 1));
  // hi | (bytes & 0x80): the sign.
  hi = _mm512_ternarylogic_epi32(hi, bytes, _mm512_set1_epi8(static_cast<char>(0x80)), 0xF8);
  block0 = _mm512_unpacklo_epi8(lo, hi);
  block1 = _mm512_unpackhi_epi8(lo, hi);
}

inline __mmask64 TailMask64(int64_t count) {
  return count >= 64 ? ~__mmask64{0} : (__mmask64{1} << count) - 1;
}

// Block b (0, 1) of the group of a weight row starting at column `col`, `cols`
// columns left. FP8 decodes both blocks at once: block 1 comes back in `fp8_next`
// when b = 0, and is taken from it when b = 1.
template <WKind kW, bool kMasked>
inline __m512i LoadBlock(const uint8_t* row, int64_t col, int64_t cols, int b,
                         __m512i& fp8_next) {
  if constexpr (kW == WKind::kFp8) {
    if (b == 1) return fp8_next;
    const uint8_t* p = row + col;
    __m512i block0;
    DecodeFp8Group(kMasked ? _mm512_maskz_loadu_epi8(TailMask64(cols), p) : _mm512_loadu_si512(p),
                   block0, fp8_next);
    return block0;
  } else {
    const uint16_t* p = reinterpret_cast<const uint16_t*>(row) + col + 32 * b;
    return kMasked ? _mm512_maskz_loadu_epi16(TailMask32(cols - 32 * b), p)
                   : _mm512_loadu_si512(p);
  }
}

// One 64-column group into every accumulator of the tile. xp rows hold the prepared
// activations of this group (four vectors) at xp + i * xp_ld. One weight row
// prefetches kPrefetchAhead bytes ahead in itself, several the next tile's rows.
template <WKind kW, int MR, int NR, bool kMasked>
inline void StepF32(const float* xp, int64_t xp_ld, const uint8_t* w, int64_t w_ld,
                    int64_t col, int64_t cols, __m512 (&acc)[MR][NR][2]) {
  constexpr int64_t kGroupBytes = kW == WKind::kFp8 ? 64 : 128;  // one row's 64 columns
  const __m512i high = _mm512_set1_epi32(static_cast<int>(0xFFFF0000u));
  __m512i fp8_next[NR];
  for (int b = 0; b < 2; ++b) {
    __m512 wa[NR], wb[NR];
    for (int r = 0; r < NR; ++r) {
      if (kW == WKind::kBf16 || b == 0) {
        const int64_t line = (kGroupBytes / 64) * (col / 64) + b;  // of the row, this load's
        if constexpr (NR == 1) {
          _mm_prefetch(reinterpret_cast<const char*>(w + 64 * line + kPrefetchAhead),
                       _MM_HINT_T0);
        } else {
          PrefetchNextTile<NR>(w, w_ld, line, r);
        }
      }
      const __m512i words = LoadBlock<kW, kMasked>(w + r * w_ld, col, cols, b, fp8_next[r]);
      wa[r] = _mm512_castsi512_ps(_mm512_slli_epi32(words, 16));
      wb[r] = _mm512_castsi512_ps(_mm512_and_si512(words, high));
    }
    for (int i = 0; i < MR; ++i) {
      const __m512 xa = _mm512_load_ps(xp + i * xp_ld + 32 * b);
      const __m512 xb = _mm512_load_ps(xp + i * xp_ld + 32 * b + 16);
      for (int r = 0; r < NR; ++r) {
        acc[i][r][b] = _mm512_fmadd_ps(xa, wa[r], acc[i][r][b]);
        acc[i][r][b] = _mm512_fmadd_ps(xb, wb[r], acc[i][r][b]);
      }
    }
  }
}

// Runs one dot product's groups over k columns into acc.
template <WKind kW, int MR, int NR>
inline void DotF32(const float* xp, int64_t xp_ld, const uint8_t* w, int64_t w_ld, int64_t k,
                   __m512 (&acc)[MR][NR][2]) {
  for (int i = 0; i < MR; ++i) {
    for (int r = 0; r < NR; ++r) acc[i][r][0] = acc[i][r][1] = _mm512_setzero_ps();
  }
  const int64_t k_full = k / 64 * 64;
  for (int64_t kk = 0; kk < k_full; kk += 64) {
    StepF32<kW, MR, NR, false>(xp + kk, xp_ld, w, w_ld, kk, 64, acc);
  }
  if (k_full < k) {
    StepF32<kW, MR, NR, true>(xp + k_full, xp_ld, w, w_ld, k_full, k - k_full, acc);
  }
}

// y[j · stride] = the horizontal sum of chains[j][0] + chains[j][1], j < count ≤ 4, by
// one fixed tree (Reduce4's, the same for each of its four sums).
inline void StoreDots(const __m512 (&chains)[4][2], int count, float* y, int64_t stride) {
  __m512 sums[4];
  for (int j = 0; j < 4; ++j) {
    sums[j] = j < count ? _mm512_add_ps(chains[j][0], chains[j][1]) : _mm512_setzero_ps();
  }
  alignas(16) float out[4];
  _mm_store_ps(out, Reduce4(sums[0], sums[1], sums[2], sums[3]));
  for (int j = 0; j < count; ++j) y[j * stride] = out[j];
}

// y[0:MR, 0:NR] = prepared x rows · weight rows over k columns, all weight rows
// side by side, prefetching the next tile's rows (PrefetchNextTile).
// xp: [MR, RoundUp(k, 64)] fp32 prepared, zero-padded, row stride xp_ld. w: [NR, k]
// BF16 words or FP8 bytes, row stride w_ld bytes. y: row stride y_ld.
template <WKind kW, int MR, int NR>
void TileF32(const float* xp, int64_t xp_ld, const uint8_t* w, int64_t w_ld, int64_t k,
             float* y, int64_t y_ld) {
  __m512 acc[MR][NR][2];
  DotF32<kW, MR, NR>(xp, xp_ld, w, w_ld, k, acc);
  for (int r = 0; r < NR; ++r) {
    for (int i0 = 0; i0 < MR; i0 += 4) {
      __m512 chains[4][2];
      for (int j = 0; j < 4 && i0 + j < MR; ++j) {
        chains[j][0] = acc[i0 + j][r][0];
        chains[j][1] = acc[i0 + j][r][1];
      }
      StoreDots(chains, static_cast<int>(Min(4, MR - i0)), y + i0 * y_ld + r, y_ld);
    }
  }
}

// The same with NR ≤ 4 weight rows taken one after another: a linear read of the
// weights (see above), with one horizontal reduction per x row for all NR. For one
// or two x rows (decode), where the weights' stream, not the FMAs, sets the pace.
template <WKind kW, int MR, int NR>
void TileF32Sequential(const float* xp, int64_t xp_ld, const uint8_t* w, int64_t w_ld,
                       int64_t k, float* y, int64_t y_ld) {
  static_assert(NR <= 4);
  __m512 chains[MR][4][2];
  for (int r = 0; r < NR; ++r) {
    __m512 acc[MR][1][2];
    DotF32<kW, MR, 1>(xp, xp_ld, w + r * w_ld, w_ld, k, acc);
    for (int i = 0; i < MR; ++i) {
      chains[i][r][0] = acc[i][0][0];
      chains[i][r][1] = acc[i][0][1];
    }
  }
  for (int i = 0; i < MR; ++i) StoreDots(chains[i], NR, y + i * y_ld, 1);
}

using TileF32Fn = void (*)(const float*, int64_t, const uint8_t*, int64_t, int64_t, float*,
                           int64_t);

// Sequential tiles of one or two x rows × at most kSequentialNr weight rows.
template <WKind kW>
TileF32Fn PickTileF32Sequential(int mr, int nr) {
  static constexpr TileF32Fn kTable[2][kSequentialNr] = {
      {TileF32Sequential<kW, 1, 1>, TileF32Sequential<kW, 1, 2>, TileF32Sequential<kW, 1, 3>, TileF32Sequential<kW, 1, 4>},
      {TileF32Sequential<kW, 2, 1>, TileF32Sequential<kW, 2, 2>, TileF32Sequential<kW, 2, 3>, TileF32Sequential<kW, 2, 4>},
  };
  return kTable[mr - 1][nr - 1];
}

// Side-by-side tiles of at most kF32Mr x rows × kF32Nr weight rows.
template <WKind kW>
TileF32Fn PickTileF32(int mr, int nr) {
  static constexpr TileF32Fn kTable[kF32Mr][kF32Nr] = {
      {TileF32<kW, 1, 1>, TileF32<kW, 1, 2>, TileF32<kW, 1, 3>, TileF32<kW, 1, 4>},
      {TileF32<kW, 2, 1>, TileF32<kW, 2, 2>, TileF32<kW, 2, 3>, TileF32<kW, 2, 4>},
      {TileF32<kW, 3, 1>, TileF32<kW, 3, 2>, TileF32<kW, 3, 3>, TileF32<kW, 3, 4>},
  };
  return kTable[mr - 1][nr - 1];
}

// Tall side-by-side tiles of kF32Mr < mr ≤ kF32TallMr x rows × at most kF32TallNr
// weight rows (used for FP8 weights).
template <WKind kW>
TileF32Fn PickTileF32Tall(int mr, int nr) {
  static constexpr TileF32Fn kTable[kF32TallMr - kF32Mr][kF32TallNr] = {
      {TileF32<kW, 4, 1>, TileF32<kW, 4, 2>},
      {TileF32<kW, 5, 1>, TileF32<kW, 5, 2>},
      {TileF32<kW, 6, 1>, TileF32<kW, 6, 2>},
  };
  return kTable[mr - kF32Mr - 1][nr - 1];
}

inline TileF32Fn PickTileF32For(bool fp8, bool sequential, int mr, int nr) {
  if (fp8) {
    return sequential ? PickTileF32Sequential<WKind::kFp8>(mr, nr)
                      : PickTileF32<WKind::kFp8>(mr, nr);
  }
  return sequential ? PickTileF32Sequential<WKind::kBf16>(mr, nr)
                    : PickTileF32<WKind::kBf16>(mr, nr);
}

// FP8 rows [rows, k] (row stride w_ld bytes) → panel [rows, RoundUp(k, 64)] of the
// BF16 words TileF32<kFp8> decodes in registers, zero-padded; row stride
// PaddedStride(k, 64, 2).
void DecodeFp8Panel32(const uint8_t* w, int64_t w_ld, int64_t rows, int64_t k,
                      uint16_t* panel) {
  const int64_t kp = PaddedStride(k, 64, 2);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t kk = 0; kk < k; kk += 64) {
      _mm_prefetch(reinterpret_cast<const char*>(w + r * w_ld + kk + kPrefetchAhead),
                   _MM_HINT_T0);
      __m512i block1;
      const __m512i block0 = LoadBlock<WKind::kFp8, true>(w + r * w_ld, kk, k - kk, 0, block1);
      _mm512_store_si512(panel + r * kp + kk, block0);
      _mm512_store_si512(panel + r * kp + kk + 32, block1);
    }
  }
}

// x row [k] fp32 → xp [RoundUp(k, 64)] for BF16 weights: per 32 columns, the 16 even
// then the 16 odd positions, zero-padded.
void PrepareBf16Activations(const float* x, int64_t k, float* xp) {
  const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24,
                                         26, 28, 30);
  const __m512i odd = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25,
                                        27, 29, 31);
  for (int64_t kk = 0; kk < RoundUp(k, 64); kk += 32) {
    const __m512 lo = _mm512_maskz_loadu_ps(TailMask16(k - kk), x + kk);
    const __m512 hi = _mm512_maskz_loadu_ps(TailMask16(k - kk - 16), x + kk + 16);
    _mm512_store_ps(xp + kk, _mm512_permutex2var_ps(lo, even, hi));
    _mm512_store_ps(xp + kk + 16, _mm512_permutex2var_ps(lo, odd, hi));
  }
}

// x row [k] fp32 → xp [RoundUp(k, 64)] = x · scale[k / 128] for FP8 weights, in the
// decoded words' order: per 64 columns, lane j (of 16) of the four vectors takes
// column 16·(j / 4) + 2·(j % 4) plus 0, 1 (block 0's low, high word), 8, 9 (block 1's).
// scales: one row of scale_inv.
void PrepareFp8Activations(const float* x, int64_t k, const float* scales, float* xp) {
  // Source index within a pair of 16-float vectors, for lanes j < 8 (the first pair)
  // and j ≥ 8 (the second), plus the offset of each of the four vectors.
  alignas(64) static constexpr int32_t kBase[16] = {0, 2, 4, 6, 16, 18, 20, 22,
                                                    0, 2, 4, 6, 16, 18, 20, 22};
  const __m512i base = _mm512_load_si512(kBase);
  __m512i idx[4];
  for (int out = 0; out < 4; ++out) {
    idx[out] = _mm512_add_epi32(base, _mm512_set1_epi32((out & 1) + 8 * (out >> 1)));
  }
  for (int64_t kk = 0; kk < RoundUp(k, 64); kk += 64) {
    const __m512 s = _mm512_set1_ps(scales[kk / kBlock]);
    __m512 v[4];
    for (int q = 0; q < 4; ++q) {
      v[q] = _mm512_mul_ps(_mm512_maskz_loadu_ps(TailMask16(k - kk - 16 * q), x + kk + 16 * q), s);
    }
    for (int out = 0; out < 4; ++out) {
      const __m512 first = _mm512_permutex2var_ps(v[0], idx[out], v[1]);
      const __m512 second = _mm512_permutex2var_ps(v[2], idx[out], v[3]);
      _mm512_store_ps(xp + kk + 16 * out, _mm512_mask_blend_ps(0xFF00, first, second));
    }
  }
}

void RunF32(const GemmArgs& a, int64_t m_begin, int64_t m_end, int64_t n_begin,
            int64_t n_end, void* scratch) {
  const int64_t kp = PaddedStride(a.k, 64, 4);           // x rows, floats
  const int64_t panel_ld = PaddedStride(a.k, 64, 2);     // panel rows, BF16 words
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
        PrepareBf16Activations(a.x + (mc + i) * a.x_stride, a.k, xp + i * kp);
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
          PrepareFp8Activations(a.x + (mc + i) * a.x_stride, a.k, scales, xp + i * kp);
        }
      }
      // FP8 with 4-6 x rows: one tall tile decodes each weight row once for all of
      // them, cheaper than a panel (gemm_bench, one core, expert shapes, time ÷ m = 1:
      // m = 4 2.4-2.7x → 1.8-1.9x, m = 6 2.9-3.2x → 2.6-2.8x). BF16 weights gain
      // nothing from it: their widening costs two instructions, not a decode.
      const bool tall = a.fp8 && rows > kF32Mr && rows <= kF32TallMr;
      if (a.fp8 && rows > kF32TallMr) {
        // Several tiles of x share each weight row: decode FP8 once per panel of
        // rows instead of once per tile.
        for (int64_t pb = nb; pb < nb_end; pb += kF32PanelRows) {
          const int64_t pb_end = Min(nb_end, pb + kF32PanelRows);
          DecodeFp8Panel32(w + pb * w_ld, w_ld, pb_end - pb, a.k, panel);
          for (int64_t mt = 0; mt < rows; mt += kF32Mr) {
            const int mr = static_cast<int>(Min(kF32Mr, rows - mt));
            for (int64_t nt = pb; nt < pb_end; nt += kF32Nr) {
              const int nr = static_cast<int>(Min(kF32Nr, pb_end - nt));
              // k rounded up to 64: the padding is zero, as the in-register path's
              // masked tail is.
              PickTileF32<WKind::kBf16>(mr, nr)(
                  xp + mt * kp, kp,
                  reinterpret_cast<const uint8_t*>(panel + (nt - pb) * panel_ld), panel_ld * 2,
                  RoundUp(a.k, 64), a.y + (mc + mt) * a.y_stride + nt, a.y_stride);
            }
          }
        }
      } else {
        // One x row (FP8: up to two) takes the weight rows one after another, a linear
        // stream. With more, x's rows crowd L1 and the FMAs set the pace: side by side
        // is faster (gemm_bench, one core: BF16 m = 2 the same, m = 3 1.4× faster;
        // FP8 m = 2 1.4× slower).
        const bool sequential = rows == 1 || (a.fp8 && rows == 2);
        const int64_t x_rows = sequential || tall ? rows : kF32Mr;
        for (int64_t mt = 0; mt < rows; mt += x_rows) {
          const int mr = static_cast<int>(Min(x_rows, rows - mt));
          const int64_t w_rows = sequential ? kSequentialNr : tall ? kF32TallNr : kF32Nr;
          for (int64_t nt = nb; nt < nb_end; nt += w_rows) {
            const int nr = static_cast<int>(Min(w_rows, nb_end - nt));
            const TileF32Fn tile = tall ? PickTileF32Tall<WKind::kFp8>(mr, nr)
                                        : PickTileF32For(a.fp8, sequential, mr, nr);
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
// kPrefetchNext: w is read from memory, not from L2 or a panel: prefetch the next
// tile's rows into L2 (PrefetchNextTile); into L1 they would evict x (gemm_bench, BF16
// expert gate/up, time / M=1, when it prefetched the same columns of those rows: M=3
// 1.37x → 1.13x, M=8 1.89x → 1.56x, M=32 4.37x → 4.15x). Only a tile over whole rows
// has them as one linear range; a window of k columns of longer rows (RunBf16's column
// blocks) prefetches the same columns of each next row.
template <int MR, int NR, bool kPrefetchNext>
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
      if (kPrefetchNext) {
        if (k == w_ld) {
          PrefetchNextTile<NR>(reinterpret_cast<const uint8_t*>(w), 2 * w_ld, kk / 32, r);
        } else {
          _mm_prefetch(reinterpret_cast<const char*>(row + NR * w_ld), _MM_HINT_T1);
        }
      }
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

template <bool kPrefetchNext>
TileDpFn PickTileDp(int mr, int nr) {
  static constexpr TileDpFn kTable[kDpMr][kDpNr] = {
      {TileDp<1, 1, kPrefetchNext>, TileDp<1, 2, kPrefetchNext>, TileDp<1, 3, kPrefetchNext>, TileDp<1, 4, kPrefetchNext>},
      {TileDp<2, 1, kPrefetchNext>, TileDp<2, 2, kPrefetchNext>, TileDp<2, 3, kPrefetchNext>, TileDp<2, 4, kPrefetchNext>},
      {TileDp<3, 1, kPrefetchNext>, TileDp<3, 2, kPrefetchNext>, TileDp<3, 3, kPrefetchNext>, TileDp<3, 4, kPrefetchNext>},
      {TileDp<4, 1, kPrefetchNext>, TileDp<4, 2, kPrefetchNext>, TileDp<4, 3, kPrefetchNext>, TileDp<4, 4, kPrefetchNext>},
      {TileDp<5, 1, kPrefetchNext>, TileDp<5, 2, kPrefetchNext>, TileDp<5, 3, kPrefetchNext>, TileDp<5, 4, kPrefetchNext>},
      {TileDp<6, 1, kPrefetchNext>, TileDp<6, 2, kPrefetchNext>, TileDp<6, 3, kPrefetchNext>, TileDp<6, 4, kPrefetchNext>},
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
// value / 2^8, exact; row stride PaddedStride(k, 32, 2).
void DecodeFp8Panel(const uint8_t* w, int64_t w_ld, int64_t rows, int64_t k,
                    uint16_t* panel) {
  const int64_t kp = PaddedStride(k, 32, 2);
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
  uint16_t* panel = xb + kBf16RowChunk * PaddedStride(kKc, 32, 2);
  for (int64_t mc = m_begin; mc < m_end; mc += kBf16RowChunk) {
    const int64_t rows = Min(kBf16RowChunk, m_end - mc);
    for (int64_t kc = 0; kc < a.k; kc += kKc) {
      const int64_t kw = Min(kKc, a.k - kc);
      const int64_t kwp = PaddedStride(kw, 32, 2);  // x and panel rows
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
            // The first tile of x rows reads the weights from memory, the others from L2.
            const TileDpFn tile =
                a.fp8 || mt > 0 ? PickTileDp<false>(mr, nr) : PickTileDp<true>(mr, nr);
            tile(xb + mt * kwp, kwp, wrows + (nt - nb) * w_ld, w_ld, kw,
                 a.y + (mc + mt) * a.y_stride + nt, a.y_stride, accumulate);
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
    // x block [kBf16RowChunk, kKc] bf16 + FP8 panel [128, kKc] bf16, padded rows.
    return (kBf16RowChunk + kBlock) * PaddedStride(kKc, 32, 2) * 2;
  }
  // x chunk [kF32RowChunk, k] fp32 + FP8 panel [kF32PanelRows, k] bf16 words, padded.
  return static_cast<size_t>(kF32RowChunk * 4 * PaddedStride(a.k, 64, 4) +
                             kF32PanelRows * 2 * PaddedStride(a.k, 64, 2));
}

}  // namespace

GemmKernel Avx512GemmKernel() { return GemmKernel{&Run, &ScratchBytes}; }

}  // namespace yard::kernels::cpu::internal
