// Latent attention over the paged BF16 cache, written once over a vector-traits
// struct V (kernels/cpu/elementwise/simd_*.h) and instantiated by each ISA's
// translation unit. Include only from those (unnamed namespace: see simd_avx512.h).
//
// All query rows of a block (heads × queries) share every cache row, so the kernel
// walks the cache once per block, a tile of kTile tokens at a time, and does for
// each tile:
//   1. scores  S[r, j] = scale · (q_r · row_j) over the whole latent row
//      [c_kv | k_rope], as dot products along the row: a tile of kScoreRows rows ×
//      4 tokens keeps one accumulator per (row, token); each 2·L-element piece of a
//      cache row is loaded once as BF16 pairs (even/odd lanes, widened by a shift
//      and a mask) and used for all rows; the queries are pre-split into even and
//      odd positions to match (the `Qp` scratch);
//   2. online softmax per row: new max, rescale factor alpha, p = e^(S - max);
//   3. values  o[r, :] = alpha_r · o[r, :] + Σ_j p[r, j] · c_kv_j, a tile of
//      kPvRows rows × kPvChunks pieces of the row, kept in the same even/odd split
//      (undone once, by Finish).
// The tile's cache rows (kTile × 1152 bytes for V2/V3) stay in L1 between 1 and 3.
//
// MlaPrecision::kBf16 (traits with kHasBf16Dot): steps 1 and 3 use vdpbf16ps on the
// raw cache words instead of widening them. Scores pair adjacent latent elements
// (queries rounded to BF16, natural order); values pair adjacent tokens (two cache
// rows interleaved by PairRows, probabilities rounded to BF16 and summed into l as
// rounded, so the weights still sum to 1). Its o layout is PairRows' dim order.
//
// Reproducibility: every (row, token) score is the same chain of FMAs along the
// latent row and the same Reduce4 tree whatever tile it falls in; every output
// element accumulates tokens in order; masked tokens contribute exact zeros. So a
// row's result depends only on its query, its visible tokens and the token range
// boundaries (t_begin, tiles from there), never on which rows share its block or on
// threads.
#ifndef SWITCHYARD_KERNELS_CPU_MLA_MLA_IMPL_H_
#define SWITCHYARD_KERNELS_CPU_MLA_MLA_IMPL_H_

#include <cmath>
#include <cstdint>
#include <cstring>

#include "kernels/cpu/mla/mla_kernels.h"

namespace yard::kernels::cpu::internal {
namespace {

template <class V>
struct MlaImpl {
  using F = typename V::F;
  static constexpr int64_t L = V::kLanes;
  // Elements per BF16 pair load: one vector of even and one of odd positions.
  static constexpr int64_t C = 2 * L;
  static constexpr int64_t kTile = V::kMlaTileTokens;
  static constexpr int kScoreRows = V::kMlaScoreRows;
  static constexpr int kPvRows = V::kMlaPvRows;
  static constexpr int kPvChunks = V::kMlaPvChunks;
  static_assert(kTile % 4 == 0 && kTile % L == 0 && 32 % kTile == 0,
                "tiles must hold whole score groups and vectors and divide 32");

  static int64_t Chunks(int64_t n) { return (n + C - 1) / C; }

  // Partial layout: m [rows] | l [rows] | o [rows, Chunks(rank) · C] (even/odd split
  // per chunk).
  static int64_t PartialFloats(int64_t rows, int64_t rank) { return rows * (2 + Chunks(rank) * C); }
  // Scratch layout: Qp [rows, Chunks(rank + rope) · C] | S [rows, kTile] | alpha [rows]
  // | (BF16 path) Pb [rows, kTile] bf16 | one assembled query row [Chunks(rank + rope)
  // · C]. The BF16 path keeps its queries as bf16 bits in the first half of Qp.
  static int64_t ScratchFloats(int64_t rows, int64_t rank, int64_t rope) {
    return rows * (Chunks(rank + rope) * C + kTile + 1 + kTile / 2) + Chunks(rank + rope) * C;
  }

  // --------------------------------------------------------------- scores

  // S[i, j] = scale · q_i · row_j for i < NR rows and j < nt tokens; S[i, j] = -inf
  // for nt <= j < kTile. kp: [kTile] row pointers, padded with valid rows.
  template <int NR>
  static void ScoreTile(const float* q, int64_t q_ld, const uint16_t* const* kp, int64_t nt,
                        int64_t latent, float scale, float* s) {
    for (int64_t j0 = 0; j0 < nt; j0 += 4) {
      F acc[NR][4];
      for (int i = 0; i < NR; ++i) {
        for (int j = 0; j < 4; ++j) acc[i][j] = V::Zero();
      }
      int64_t e = 0;
      for (; e + C <= latent; e += C) {
        F ke[4], ko[4];
        for (int j = 0; j < 4; ++j) V::LoadBf16Pairs(kp[j0 + j] + e, ke[j], ko[j]);
        for (int i = 0; i < NR; ++i) {
          const F qe = V::Load(q + i * q_ld + e);
          const F qo = V::Load(q + i * q_ld + e + L);
          for (int j = 0; j < 4; ++j) {
            acc[i][j] = V::Fma(qe, ke[j], acc[i][j]);
            acc[i][j] = V::Fma(qo, ko[j], acc[i][j]);
          }
        }
      }
      if (e < latent) {
        // Zero-filled tail of the row against the zero-padded queries.
        F ke[4], ko[4];
        for (int j = 0; j < 4; ++j) {
          V::LoadBf16PairsPartial(kp[j0 + j] + e, latent - e, ke[j], ko[j]);
        }
        for (int i = 0; i < NR; ++i) {
          const F qe = V::Load(q + i * q_ld + e);
          const F qo = V::Load(q + i * q_ld + e + L);
          for (int j = 0; j < 4; ++j) {
            acc[i][j] = V::Fma(qe, ke[j], acc[i][j]);
            acc[i][j] = V::Fma(qo, ko[j], acc[i][j]);
          }
        }
      }
      for (int i = 0; i < NR; ++i) {
        float sums[4];
        V::Reduce4(acc[i][0], acc[i][1], acc[i][2], acc[i][3], sums);
        for (int j = 0; j < 4; ++j) s[i * kTile + j0 + j] = sums[j] * scale;
      }
    }
    for (int i = 0; i < NR; ++i) {
      for (int64_t j = nt; j < kTile; ++j) s[i * kTile + j] = -INFINITY;
    }
  }

  static void Scores(const float* qp, int64_t q_ld, int64_t rows, const uint16_t* const* kp,
                     int64_t nt, int64_t latent, float scale, float* s) {
    int64_t r = 0;
    for (; r + kScoreRows <= rows; r += kScoreRows) {
      ScoreTile<kScoreRows>(qp + r * q_ld, q_ld, kp, nt, latent, scale, s + r * kTile);
    }
    ScoreTail<kScoreRows - 1>(qp, q_ld, rows, r, kp, nt, latent, scale, s);
  }
  template <int NR>
  static void ScoreTail(const float* qp, int64_t q_ld, int64_t rows, int64_t r,
                        const uint16_t* const* kp, int64_t nt, int64_t latent, float scale,
                        float* s) {
    if constexpr (NR > 0) {
      if (rows - r == NR) {
        ScoreTile<NR>(qp + r * q_ld, q_ld, kp, nt, latent, scale, s + r * kTile);
      } else {
        ScoreTail<NR - 1>(qp, q_ld, rows, r, kp, nt, latent, scale, s);
      }
    }
  }

  // --------------------------------------------------------------- values

  // o[i, c0 .. c0 + NC chunks] = alpha_i · o + Σ_{j < nt} p[i, j] · c_kv_j for NR rows.
  // kFull: all NC chunks lie inside the rank (no partial load).
  template <int NR, int NC, bool kFull>
  static void PvTile(float* o, int64_t o_ld, const float* p, const float* alpha,
                     const uint16_t* const* kp, int64_t nt, int64_t e0, int64_t rank) {
    F acc[NR][NC][2];
    for (int i = 0; i < NR; ++i) {
      const F a = V::Set1(alpha[i]);
      for (int c = 0; c < NC; ++c) {
        acc[i][c][0] = V::Mul(V::Load(o + i * o_ld + c * C), a);
        acc[i][c][1] = V::Mul(V::Load(o + i * o_ld + c * C + L), a);
      }
    }
    for (int64_t j = 0; j < nt; ++j) {
      F ve[NC], vo[NC];
      for (int c = 0; c < NC; ++c) {
        if constexpr (kFull) {
          V::LoadBf16Pairs(kp[j] + e0 + c * C, ve[c], vo[c]);
        } else {
          V::LoadBf16PairsPartial(kp[j] + e0 + c * C, rank - e0 - c * C, ve[c], vo[c]);
        }
      }
      for (int i = 0; i < NR; ++i) {
        const F pi = V::Set1(p[i * kTile + j]);
        for (int c = 0; c < NC; ++c) {
          acc[i][c][0] = V::Fma(pi, ve[c], acc[i][c][0]);
          acc[i][c][1] = V::Fma(pi, vo[c], acc[i][c][1]);
        }
      }
    }
    for (int i = 0; i < NR; ++i) {
      for (int c = 0; c < NC; ++c) {
        V::Store(o + i * o_ld + c * C, acc[i][c][0]);
        V::Store(o + i * o_ld + c * C + L, acc[i][c][1]);
      }
    }
  }

  template <int NR, int NC>
  static void PvRowsChunks(float* o, int64_t o_ld, const float* p, const float* alpha,
                           const uint16_t* const* kp, int64_t nt, int64_t c0, int64_t rank) {
    const int64_t e0 = c0 * C;
    if (e0 + NC * C <= rank) {
      PvTile<NR, NC, true>(o + e0, o_ld, p, alpha, kp, nt, e0, rank);
    } else {
      PvTile<NR, NC, false>(o + e0, o_ld, p, alpha, kp, nt, e0, rank);
    }
  }

  template <int NR>
  static void PvRows(float* o, int64_t o_ld, const float* p, const float* alpha,
                     const uint16_t* const* kp, int64_t nt, int64_t chunks, int64_t rank) {
    int64_t c = 0;
    for (; c + kPvChunks <= chunks; c += kPvChunks) {
      PvRowsChunks<NR, kPvChunks>(o, o_ld, p, alpha, kp, nt, c, rank);
    }
    PvChunkTail<NR, kPvChunks - 1>(o, o_ld, p, alpha, kp, nt, c, chunks, rank);
  }
  template <int NR, int NC>
  static void PvChunkTail(float* o, int64_t o_ld, const float* p, const float* alpha,
                          const uint16_t* const* kp, int64_t nt, int64_t c, int64_t chunks,
                          int64_t rank) {
    if constexpr (NC > 0) {
      if (chunks - c == NC) {
        PvRowsChunks<NR, NC>(o, o_ld, p, alpha, kp, nt, c, rank);
      } else {
        PvChunkTail<NR, NC - 1>(o, o_ld, p, alpha, kp, nt, c, chunks, rank);
      }
    }
  }

  static void Values(float* o, int64_t o_ld, int64_t rows, const float* p, const float* alpha,
                     const uint16_t* const* kp, int64_t nt, int64_t rank) {
    const int64_t chunks = Chunks(rank);
    int64_t r = 0;
    for (; r + kPvRows <= rows; r += kPvRows) {
      PvRows<kPvRows>(o + r * o_ld, o_ld, p + r * kTile, alpha + r, kp, nt, chunks, rank);
    }
    ValuesTail<kPvRows - 1>(o, o_ld, rows, r, p, alpha, kp, nt, chunks, rank);
  }
  template <int NR>
  static void ValuesTail(float* o, int64_t o_ld, int64_t rows, int64_t r, const float* p,
                         const float* alpha, const uint16_t* const* kp, int64_t nt, int64_t chunks,
                         int64_t rank) {
    if constexpr (NR > 0) {
      if (rows - r == NR) {
        PvRows<NR>(o + r * o_ld, o_ld, p + r * kTile, alpha + r, kp, nt, chunks, rank);
      } else {
        ValuesTail<NR - 1>(o, o_ld, rows, r, p, alpha, kp, nt, chunks, rank);
      }
    }
  }

  // --------------------------------------------------------------- BF16 path

  // ScoreTile with vdpbf16ps. qb: [NR, q_ld] bf16 bits, natural order, zero-padded.
  template <int NR>
  static void ScoreTileBf16(const uint16_t* qb, int64_t q_ld, const uint16_t* const* kp, int64_t nt,
                            int64_t latent, float scale, float* s) {
    if constexpr (V::kHasBf16Dot) {
      using Raw = typename V::Raw;
      for (int64_t j0 = 0; j0 < nt; j0 += 4) {
        F acc[NR][4];
        for (int i = 0; i < NR; ++i) {
          for (int j = 0; j < 4; ++j) acc[i][j] = V::Zero();
        }
        for (int64_t e = 0; e < latent; e += C) {
          Raw k[4];
          if (e + C <= latent) {
            for (int j = 0; j < 4; ++j) k[j] = V::LoadRaw(kp[j0 + j] + e);
          } else {
            for (int j = 0; j < 4; ++j) k[j] = V::LoadRawPartial(kp[j0 + j] + e, latent - e);
          }
          for (int i = 0; i < NR; ++i) {
            const Raw q = V::LoadRaw(qb + i * q_ld + e);
            for (int j = 0; j < 4; ++j) acc[i][j] = V::DotBf16(acc[i][j], q, k[j]);
          }
        }
        for (int i = 0; i < NR; ++i) {
          float sums[4];
          V::Reduce4(acc[i][0], acc[i][1], acc[i][2], acc[i][3], sums);
          for (int j = 0; j < 4; ++j) s[i * kTile + j0 + j] = sums[j] * scale;
        }
      }
      for (int i = 0; i < NR; ++i) {
        for (int64_t j = nt; j < kTile; ++j) s[i * kTile + j] = -INFINITY;
      }
    }
  }

  static void ScoresBf16(const uint16_t* qb, int64_t q_ld, int64_t rows, const uint16_t* const* kp,
                         int64_t nt, int64_t latent, float scale, float* s) {
    int64_t r = 0;
    for (; r + kScoreRows <= rows; r += kScoreRows) {
      ScoreTileBf16<kScoreRows>(qb + r * q_ld, q_ld, kp, nt, latent, scale, s + r * kTile);
    }
    for (; r < rows; ++r)
      ScoreTileBf16<1>(qb + r * q_ld, q_ld, kp, nt, latent, scale, s + r * kTile);
  }

  // PvTile with vdpbf16ps over token pairs. pb: [NR, kTile] bf16 bits (probabilities,
  // 0 past nt). kp is padded to kTile (even), so the pair of a last odd token exists.
  template <int NR, int NC, bool kFull>
  static void PvTileBf16(float* o, int64_t o_ld, const uint16_t* pb, const float* alpha,
                         const uint16_t* const* kp, int64_t nt, int64_t e0, int64_t rank) {
    if constexpr (V::kHasBf16Dot) {
      using Raw = typename V::Raw;
      F acc[NR][NC][2];
      for (int i = 0; i < NR; ++i) {
        const F a = V::Set1(alpha[i]);
        for (int c = 0; c < NC; ++c) {
          acc[i][c][0] = V::Mul(V::Load(o + i * o_ld + c * C), a);
          acc[i][c][1] = V::Mul(V::Load(o + i * o_ld + c * C + L), a);
        }
      }
      for (int64_t j = 0; j < nt; j += 2) {
        Raw lo[NC], hi[NC];
        for (int c = 0; c < NC; ++c) {
          const int64_t e = e0 + c * C;
          if constexpr (kFull) {
            V::PairRows(V::LoadRaw(kp[j] + e), V::LoadRaw(kp[j + 1] + e), lo[c], hi[c]);
          } else {
            V::PairRows(V::LoadRawPartial(kp[j] + e, rank - e),
                        V::LoadRawPartial(kp[j + 1] + e, rank - e), lo[c], hi[c]);
          }
        }
        for (int i = 0; i < NR; ++i) {
          uint32_t pair;
          std::memcpy(&pair, pb + i * kTile + j, sizeof(pair));
          const Raw pp = V::Set1Pair(pair);
          for (int c = 0; c < NC; ++c) {
            acc[i][c][0] = V::DotBf16(acc[i][c][0], pp, lo[c]);
            acc[i][c][1] = V::DotBf16(acc[i][c][1], pp, hi[c]);
          }
        }
      }
      for (int i = 0; i < NR; ++i) {
        for (int c = 0; c < NC; ++c) {
          V::Store(o + i * o_ld + c * C, acc[i][c][0]);
          V::Store(o + i * o_ld + c * C + L, acc[i][c][1]);
        }
      }
    }
  }

  template <int NR>
  static void PvRowsBf16(float* o, int64_t o_ld, const uint16_t* pb, const float* alpha,
                         const uint16_t* const* kp, int64_t nt, int64_t chunks, int64_t rank) {
    int64_t c = 0;
    for (; c + kPvChunks <= chunks && (c + kPvChunks) * C <= rank; c += kPvChunks) {
      PvTileBf16<NR, kPvChunks, true>(o + c * C, o_ld, pb, alpha, kp, nt, c * C, rank);
    }
    for (; c < chunks; ++c) {
      if ((c + 1) * C <= rank) {
        PvTileBf16<NR, 1, true>(o + c * C, o_ld, pb, alpha, kp, nt, c * C, rank);
      } else {
        PvTileBf16<NR, 1, false>(o + c * C, o_ld, pb, alpha, kp, nt, c * C, rank);
      }
    }
  }

  static void ValuesBf16(float* o, int64_t o_ld, int64_t rows, const uint16_t* pb,
                         const float* alpha, const uint16_t* const* kp, int64_t nt, int64_t rank) {
    const int64_t chunks = Chunks(rank);
    int64_t r = 0;
    for (; r + kPvRows <= rows; r += kPvRows) {
      PvRowsBf16<kPvRows>(o + r * o_ld, o_ld, pb + r * kTile, alpha + r, kp, nt, chunks, rank);
    }
    for (; r < rows; ++r) {
      PvRowsBf16<1>(o + r * o_ld, o_ld, pb + r * kTile, alpha + r, kp, nt, chunks, rank);
    }
  }

  // --------------------------------------------------------------- driver

  // Cache row of token t. [latent] bf16 bits.
  static const uint16_t* Row(const MlaShape& shape, const MlaRowBlock& block, int64_t t,
                             int64_t latent) {
    const int64_t slot =
        static_cast<int64_t>(block.block_table[t / shape.block_tokens]) * shape.block_tokens +
        t % shape.block_tokens;
    return shape.pool + slot * latent;
  }

  static void Attend(const MlaShape& shape, const MlaRowBlock& block, int64_t t_begin,
                     int64_t t_end, float* partial, float* scratch) {
    const int64_t rows = block.rows;
    const int64_t rank = shape.kv_lora_rank;
    const int64_t rope = shape.rope_dim;
    const int64_t latent = rank + rope;
    const int64_t q_ld = Chunks(latent) * C;
    const int64_t o_ld = Chunks(rank) * C;
    float* qp = scratch;
    float* s = qp + rows * q_ld;
    float* alpha = s + rows * kTile;
    uint16_t* pb = reinterpret_cast<uint16_t*>(alpha + rows);
    uint16_t* qb = reinterpret_cast<uint16_t*>(qp);
    const bool bf16 = V::kHasBf16Dot && shape.bf16;
    float* m = partial;
    float* l = m + rows;
    float* o = l + rows;

    // Queries as [q_absorbed | q_rope | 0 ...] (assembled in `row`), then split into
    // even/odd positions per chunk of C to match LoadBf16Pairs, or rounded to BF16.
    float* row = reinterpret_cast<float*>(pb + rows * kTile);
    for (int64_t r = 0; r < rows; ++r) {
      std::memcpy(row, block.q_absorbed + r * rank, sizeof(float) * rank);
      std::memcpy(row + rank, block.q_rope + r * rope, sizeof(float) * rope);
      std::memset(row + latent, 0, sizeof(float) * (q_ld - latent));
      if (bf16) {
        for (int64_t e = 0; e < q_ld; e += L) V::StoreBf16(qb + r * q_ld + e, V::Load(row + e));
      } else {
        for (int64_t e = 0; e < q_ld; e += C) {
          F even, odd;
          V::LoadDeinterleavePartial(row + e, C, even, odd);
          V::Store(qp + r * q_ld + e, even);
          V::Store(qp + r * q_ld + e + L, odd);
        }
      }
    }
    for (int64_t r = 0; r < rows; ++r) {
      m[r] = -INFINITY;
      l[r] = 0.0f;
    }
    std::memset(o, 0, sizeof(float) * rows * o_ld);

    const uint16_t* kp[kTile];
    for (int64_t t0 = t_begin; t0 < t_end; t0 += kTile) {
      const int64_t nt = t_end - t0 < kTile ? t_end - t0 : kTile;
      for (int64_t j = 0; j < kTile; ++j) {
        kp[j] = Row(shape, block, t0 + (j < nt ? j : 0), latent);
      }
      if (bf16) {
        ScoresBf16(qb, q_ld, rows, kp, nt, latent, shape.softmax_scale, s);
      } else {
        Scores(qp, q_ld, rows, kp, nt, latent, shape.softmax_scale, s);
      }

      // Causal mask and the online-softmax update, row by row.
      for (int64_t r = 0; r < rows; ++r) {
        float* sr = s + r * kTile;
        const int64_t visible = block.kv_len_first + r / block.heads - t0;
        for (int64_t j = visible < 0 ? 0 : visible; j < nt; ++j) sr[j] = -INFINITY;
        F mv = V::Load(sr);
        for (int64_t j = L; j < kTile; j += L) mv = V::Max(mv, V::Load(sr + j));
        const float tile_max = V::ReduceMax(mv);
        if (tile_max == -INFINITY) {
          // Nothing visible in this tile: an exact no-op on the state.
          alpha[r] = 1.0f;
          for (int64_t j = 0; j < kTile; ++j) sr[j] = 0.0f;
          if (bf16) std::memset(pb + r * kTile, 0, sizeof(uint16_t) * kTile);
          continue;
        }
        const float new_max = m[r] > tile_max ? m[r] : tile_max;
        alpha[r] = m[r] == -INFINITY ? 0.0f : std::exp(m[r] - new_max);
        const F nm = V::Set1(new_max);
        F sum = V::Zero();
        for (int64_t j = 0; j < kTile; j += L) {
          F p = V::Exp(V::Sub(V::Load(sr + j), nm));
          if (bf16) {
            // The values pass multiplies by the rounded p; sum those.
            V::StoreBf16(pb + r * kTile + j, p);
            p = V::LoadBf16(pb + r * kTile + j);
          }
          V::Store(sr + j, p);
          sum = V::Add(sum, p);
        }
        l[r] = l[r] * alpha[r] + V::ReduceAdd(sum);
        m[r] = new_max;
      }
      if (bf16) {
        ValuesBf16(o, o_ld, rows, pb, alpha, kp, nt, rank);
      } else {
        Values(o, o_ld, rows, s, alpha, kp, nt, rank);
      }
    }
  }

  static void Merge(const MlaShape& shape, float* acc, const float* part, int64_t rows) {
    const int64_t rank = shape.kv_lora_rank;
    const int64_t o_ld = Chunks(rank) * C;
    float* am = acc;
    float* al = acc + rows;
    float* ao = acc + 2 * rows;
    const float* pm = part;
    const float* pl = part + rows;
    const float* po = part + 2 * rows;
    for (int64_t r = 0; r < rows; ++r) {
      if (pm[r] == -INFINITY) continue;  // part saw no visible token
      float* dst = ao + r * o_ld;
      const float* src = po + r * o_ld;
      if (am[r] == -INFINITY) {
        am[r] = pm[r];
        al[r] = pl[r];
        std::memcpy(dst, src, sizeof(float) * o_ld);
        continue;
      }
      const float new_max = am[r] > pm[r] ? am[r] : pm[r];
      const float a = std::exp(am[r] - new_max);
      const float b = std::exp(pm[r] - new_max);
      al[r] = al[r] * a + pl[r] * b;
      am[r] = new_max;
      const F av = V::Set1(a);
      const F bv = V::Set1(b);
      for (int64_t e = 0; e < o_ld; e += L) {
        V::Store(dst + e, V::Fma(V::Load(src + e), bv, V::Mul(V::Load(dst + e), av)));
      }
    }
  }

  static void Finish(const MlaShape& shape, const float* acc, int64_t rows, float* out) {
    const int64_t rank = shape.kv_lora_rank;
    const int64_t o_ld = Chunks(rank) * C;
    if constexpr (V::kHasBf16Dot) {
      if (shape.bf16) {
        FinishPaired(acc, rows, rank, o_ld, out);
        return;
      }
    }
    const float* l = acc + rows;
    const float* o = acc + 2 * rows;
    for (int64_t r = 0; r < rows; ++r) {
      const F lv = V::Set1(l[r]);
      const float* src = o + r * o_ld;
      float* dst = out + r * rank;
      int64_t e = 0;
      for (; e + C <= rank; e += C) {
        V::StoreInterleaved(dst + e, V::Div(V::Load(src + e), lv),
                            V::Div(V::Load(src + e + L), lv));
      }
      if (e < rank) {
        V::StoreInterleavedPartial(dst + e, V::Div(V::Load(src + e), lv),
                                   V::Div(V::Load(src + e + L), lv), rank - e);
      }
    }
  }

  // Finish for the BF16 path's o layout (PairRows' dim order).
  static void FinishPaired(const float* acc, int64_t rows, int64_t rank, int64_t o_ld, float* out) {
    if constexpr (V::kHasBf16Dot) {
      const float* l = acc + rows;
      const float* o = acc + 2 * rows;
      for (int64_t r = 0; r < rows; ++r) {
        const F lv = V::Set1(l[r]);
        const float* src = o + r * o_ld;
        for (int64_t e = 0; e < rank; e += C) {
          V::StorePairedPartial(out + r * rank + e, V::Div(V::Load(src + e), lv),
                                V::Div(V::Load(src + e + L), lv), rank - e);
        }
      }
    }
  }

  static MlaKernel Kernel() {
    return MlaKernel{
        .partial_floats = &PartialFloats,
        .scratch_floats = &ScratchFloats,
        .attend = &Attend,
        .merge = &Merge,
        .finish = &Finish,
    };
  }
};

}  // namespace
}  // namespace yard::kernels::cpu::internal

#endif  // SWITCHYARD_KERNELS_CPU_MLA_MLA_IMPL_H_
