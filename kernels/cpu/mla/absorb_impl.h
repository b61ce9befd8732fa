// kv_b_proj's absorbed projections, written once over a vector-traits struct V and
// instantiated by each ISA's translation unit (unnamed namespace: see
// kernels/cpu/elementwise/simd_avx512.h).
//
// absorb_query is a transposed product (q' = W_ukᵀ · q_nope): the reduction runs over
// W's rows, so it is computed as a sum of scaled rows. A tile of kAbsorbTokens
// tokens × kAbsorbVectors vectors of columns is kept in registers while the nope rows
// stream past; each row piece is widened once (BF16 shift; FP8 through FP16, value /
// 2^8) and used for all tokens of the tile. FP8's block scale (× 2^8) is folded into
// the token's coefficient, which is exact because a column group never crosses a
// 128-column scale block. Every output element sums rows in order d = 0, 1, ..., so
// it does not depend on the tile or the thread split.
#ifndef SWITCHYARD_KERNELS_CPU_MLA_ABSORB_IMPL_H_
#define SWITCHYARD_KERNELS_CPU_MLA_ABSORB_IMPL_H_

#include <cstdint>

#include "kernels/cpu/mla/mla_kernels.h"

namespace yard::kernels::cpu::internal {
namespace {

template <class V>
struct AbsorbImpl {
  using F = typename V::F;
  static constexpr int64_t L = V::kLanes;
  static constexpr int kTokens = V::kAbsorbTokens;
  static constexpr int kVectors = V::kAbsorbVectors;
  static constexpr int64_t kGroup = kVectors * L;  // columns per tile
  static constexpr int64_t kScaleBlock = 128;
  static_assert(kScaleBlock % kGroup == 0, "a column group must not cross a scale block");

  static F LoadW(const void* w, bool fp8, int64_t offset) {
    return fp8 ? V::LoadFp8(static_cast<const uint8_t*>(w) + offset)
               : V::LoadBf16(static_cast<const uint16_t*>(w) + offset);
  }
  static F LoadWPartial(const void* w, bool fp8, int64_t offset, int64_t n) {
    return fp8 ? V::LoadFp8Partial(static_cast<const uint8_t*>(w) + offset, n)
               : V::LoadBf16Partial(static_cast<const uint16_t*>(w) + offset, n);
  }

  // One tile: NT tokens × the columns [c0, c0 + kGroup) ∩ [.., col_end).
  template <int NT>
  static void QueryTile(const float* q, int64_t q_stride, const void* w, bool fp8,
                        const float* scale, int64_t k, int64_t row0, int64_t nope, int64_t c0,
                        int64_t col_end, float* out, int64_t out_stride) {
    F acc[NT][kVectors];
    for (int t = 0; t < NT; ++t) {
      for (int v = 0; v < kVectors; ++v) acc[t][v] = V::Zero();
    }
    const int64_t scale_cols = (k + kScaleBlock - 1) / kScaleBlock;
    const bool full = c0 + kGroup <= col_end;
    for (int64_t d = 0; d < nope; ++d) {
      const int64_t base = (row0 + d) * k + c0;
      F wv[kVectors];
      if (full) {
        for (int v = 0; v < kVectors; ++v) wv[v] = LoadW(w, fp8, base + v * L);
      } else {
        for (int v = 0; v < kVectors; ++v) {
          wv[v] = LoadWPartial(w, fp8, base + v * L, col_end - c0 - v * L);
        }
      }
      // FP8 loads give value / 2^8; the 2^8 rides on the (exact) power-of-two factor.
      const float s =
          fp8 ? scale[((row0 + d) / kScaleBlock) * scale_cols + c0 / kScaleBlock] * 256.0f : 1.0f;
      for (int t = 0; t < NT; ++t) {
        const F coef = V::Set1(fp8 ? q[t * q_stride + d] * s : q[t * q_stride + d]);
        for (int v = 0; v < kVectors; ++v) acc[t][v] = V::Fma(coef, wv[v], acc[t][v]);
      }
    }
    for (int t = 0; t < NT; ++t) {
      float* dst = out + t * out_stride + c0;
      for (int v = 0; v < kVectors; ++v) {
        const int64_t left = col_end - c0 - v * L;
        if (left >= L) {
          V::Store(dst + v * L, acc[t][v]);
        } else if (left > 0) {
          V::StorePartial(dst + v * L, acc[t][v], left);
        }
      }
    }
  }

  template <int NT>
  static void QueryTail(const float* q, int64_t tokens, int64_t t0, int64_t q_stride, const void* w,
                        bool fp8, const float* scale, int64_t k, int64_t row0, int64_t nope,
                        int64_t c0, int64_t col_end, float* out, int64_t out_stride) {
    if constexpr (NT > 0) {
      if (tokens - t0 == NT) {
        QueryTile<NT>(q + t0 * q_stride, q_stride, w, fp8, scale, k, row0, nope, c0, col_end,
                      out + t0 * out_stride, out_stride);
      } else {
        QueryTail<NT - 1>(q, tokens, t0, q_stride, w, fp8, scale, k, row0, nope, c0, col_end, out,
                          out_stride);
      }
    }
  }

  static void AbsorbQuery(const float* q_nope, int64_t tokens, int64_t q_stride, const void* w,
                          bool fp8, const float* scale, int64_t k, int64_t row0, int64_t nope,
                          int64_t col_begin, int64_t col_end, float* out, int64_t out_stride) {
    for (int64_t c0 = col_begin; c0 < col_end; c0 += kGroup) {
      int64_t t = 0;
      for (; t + kTokens <= tokens; t += kTokens) {
        QueryTile<kTokens>(q_nope + t * q_stride, q_stride, w, fp8, scale, k, row0, nope, c0,
                           col_end, out + t * out_stride, out_stride);
      }
      QueryTail<kTokens - 1>(q_nope, tokens, t, q_stride, w, fp8, scale, k, row0, nope, c0, col_end,
                             out, out_stride);
    }
  }

  // Plain dot products, one output at a time (a fallback; see mla_kernels.h).
  static void ExpandValue(const float* o_latent, int64_t tokens, int64_t o_stride, const void* w,
                          bool fp8, const float* scale, int64_t k, int64_t row0, int64_t v_dim,
                          float* out, int64_t out_stride) {
    const int64_t scale_cols = (k + kScaleBlock - 1) / kScaleBlock;
    for (int64_t t = 0; t < tokens; ++t) {
      const float* x = o_latent + t * o_stride;
      for (int64_t j = 0; j < v_dim; ++j) {
        const int64_t row = row0 + j;
        F acc = V::Zero();
        for (int64_t c = 0; c < k; c += L) {
          const int64_t n = k - c < L ? k - c : L;
          F xv = n == L ? V::Load(x + c) : V::LoadPartial(x + c, n);
          if (fp8) {
            xv = V::Mul(
                xv, V::Set1(scale[(row / kScaleBlock) * scale_cols + c / kScaleBlock] * 256.0f));
          }
          const F wv = n == L ? LoadW(w, fp8, row * k + c) : LoadWPartial(w, fp8, row * k + c, n);
          acc = V::Fma(xv, wv, acc);
        }
        out[t * out_stride + j] = V::ReduceAdd(acc);
      }
    }
  }

  static AbsorbKernel Kernel() {
    return AbsorbKernel{
        .absorb_query = &AbsorbQuery,
        .expand_value = &ExpandValue,
    };
  }
};

}  // namespace
}  // namespace yard::kernels::cpu::internal

#endif  // SWITCHYARD_KERNELS_CPU_MLA_ABSORB_IMPL_H_
