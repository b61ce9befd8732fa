// The bodies of the elementwise kernels, written once over a vector-traits struct V
// (simd_avx512.h, simd_avx2.h, simd_scalar.h) and instantiated by each ISA's
// translation unit. Include only from those; everything is in an unnamed namespace
// so each instantiation stays internal to its translation unit.
//
// Reduction order (what makes results reproducible): 4 lane-wise accumulators over
// blocks of 4 vectors, the remainder vectors and a zero-padded tail into the first,
// then (a0 + a1) + (a2 + a3) and V::ReduceAdd's fixed tree. It depends on n only.
#ifndef SWITCHYARD_KERNELS_CPU_ELEMENTWISE_ELEMENTWISE_IMPL_H_
#define SWITCHYARD_KERNELS_CPU_ELEMENTWISE_ELEMENTWISE_IMPL_H_

#include <cmath>
#include <cstdint>

#include "kernels/cpu/elementwise/elementwise_kernels.h"

namespace yard::kernels::cpu::internal {
namespace {

template <class V>
struct ElementwiseImpl {
  using F = typename V::F;
  static constexpr int64_t L = V::kLanes;

  // Σ x[i]² in the order described above.
  static float SumSquares(const float* x, int64_t n) {
    F a0 = V::Zero(), a1 = V::Zero(), a2 = V::Zero(), a3 = V::Zero();
    int64_t i = 0;
    for (; i + 4 * L <= n; i += 4 * L) {
      const F v0 = V::Load(x + i), v1 = V::Load(x + i + L);
      const F v2 = V::Load(x + i + 2 * L), v3 = V::Load(x + i + 3 * L);
      a0 = V::Fma(v0, v0, a0);
      a1 = V::Fma(v1, v1, a1);
      a2 = V::Fma(v2, v2, a2);
      a3 = V::Fma(v3, v3, a3);
    }
    for (; i + L <= n; i += L) {
      const F v = V::Load(x + i);
      a0 = V::Fma(v, v, a0);
    }
    if (i < n) {
      const F v = V::LoadPartial(x + i, n - i);
      a0 = V::Fma(v, v, a0);
    }
    return V::ReduceAdd(V::Add(V::Add(a0, a1), V::Add(a2, a3)));
  }

  static float InvRms(float sum_squares, int64_t n, float eps) {
    return static_cast<float>(
        1.0 / std::sqrt(static_cast<double>(sum_squares) / static_cast<double>(n) + eps));
  }

  static F LoadWeight(const uint16_t* w_bf16, const float* w_fp32, int64_t i) {
    return w_bf16 != nullptr ? V::LoadBf16(w_bf16 + i) : V::Load(w_fp32 + i);
  }
  static F LoadWeightPartial(const uint16_t* w_bf16, const float* w_fp32, int64_t i, int64_t n) {
    return w_bf16 != nullptr ? V::LoadBf16Partial(w_bf16 + i, n) : V::LoadPartial(w_fp32 + i, n);
  }

  // y = (x · inv) · w.
  static void Scale(const float* x, int64_t n, const uint16_t* w_bf16, const float* w_fp32,
                    float inv, float* y) {
    const F s = V::Set1(inv);
    int64_t i = 0;
    for (; i + L <= n; i += L) {
      V::Store(y + i, V::Mul(V::Mul(V::Load(x + i), s), LoadWeight(w_bf16, w_fp32, i)));
    }
    if (i < n) {
      V::StorePartial(y + i,
                      V::Mul(V::Mul(V::LoadPartial(x + i, n - i), s),
                             LoadWeightPartial(w_bf16, w_fp32, i, n - i)),
                      n - i);
    }
  }

  static void RmsNorm(const float* x, int64_t n, const uint16_t* w_bf16, const float* w_fp32,
                      float eps, float* y) {
    Scale(x, n, w_bf16, w_fp32, InvRms(SumSquares(x, n), n, eps), y);
  }

  static void AddRmsNorm(float* residual, const float* delta, int64_t n, const uint16_t* w_bf16,
                         const float* w_fp32, float eps, float* y) {
    // The sum of squares must equal SumSquares(residual after the add), so the add
    // runs first and the squares are summed in exactly SumSquares' order.
    int64_t i = 0;
    for (; i + L <= n; i += L) {
      V::Store(residual + i, V::Add(V::Load(residual + i), V::Load(delta + i)));
    }
    if (i < n) {
      V::StorePartial(residual + i,
                      V::Add(V::LoadPartial(residual + i, n - i), V::LoadPartial(delta + i, n - i)),
                      n - i);
    }
    RmsNorm(residual, n, w_bf16, w_fp32, eps, y);
  }

  static F Silu(F g) {
    const F one = V::Set1(1.0f);
    return V::Div(g, V::Add(one, V::Exp(V::Sub(V::Zero(), g))));
  }

  static void SiluMul(const float* gate, const float* up, int64_t n, float* out) {
    int64_t i = 0;
    for (; i + L <= n; i += L) {
      V::Store(out + i, V::Mul(Silu(V::Load(gate + i)), V::Load(up + i)));
    }
    if (i < n) {
      V::StorePartial(out + i,
                      V::Mul(Silu(V::LoadPartial(gate + i, n - i)), V::LoadPartial(up + i, n - i)),
                      n - i);
    }
  }

  static void Softmax(float* x, int64_t n) {
    if (n <= 0) return;
    F m = V::Set1(-INFINITY);
    int64_t i = 0;
    for (; i + L <= n; i += L) m = V::Max(m, V::Load(x + i));
    float max = V::ReduceMax(m);
    for (; i < n; ++i) max = x[i] > max ? x[i] : max;
    const F mv = V::Set1(max);
    F sum = V::Zero();
    for (i = 0; i + L <= n; i += L) {
      const F e = V::Exp(V::Sub(V::Load(x + i), mv));
      V::Store(x + i, e);
      sum = V::Add(sum, e);
    }
    if (i < n) {
      // Masked-off lanes load 0, whose exp must not enter the sum: store only the
      // live lanes and add them back as a zero-padded vector.
      V::StorePartial(x + i, V::Exp(V::Sub(V::LoadPartial(x + i, n - i), mv)), n - i);
      sum = V::Add(sum, V::LoadPartial(x + i, n - i));
    }
    const F inv = V::Set1(1.0f / V::ReduceAdd(sum));
    for (i = 0; i + L <= n; i += L) V::Store(x + i, V::Mul(V::Load(x + i), inv));
    if (i < n) V::StorePartial(x + i, V::Mul(V::LoadPartial(x + i, n - i), inv), n - i);
  }

  static void ToBf16(const float* x, int64_t n, uint16_t* y) {
    int64_t i = 0;
    for (; i + L <= n; i += L) V::StoreBf16(y + i, V::Load(x + i));
    if (i < n) V::StoreBf16Partial(y + i, V::LoadPartial(x + i, n - i), n - i);
  }

  static void Rope(float* x, int64_t heads, int64_t head_stride, const float* cos_dup,
                   const float* sin_signed, int64_t dim) {
    for (int64_t h = 0; h < heads; ++h) {
      float* v = x + h * head_stride;
      if constexpr (L == 1) {
        // One lane cannot hold a pair: rotate pairs explicitly, with the same
        // roundings as the vector path (a·c, then + b·(-s); b·c, then + a·s).
        for (int64_t i = 0; i < dim; i += 2) {
          const float a = v[i], b = v[i + 1];
          v[i] = a * cos_dup[i] + b * sin_signed[i];
          v[i + 1] = b * cos_dup[i + 1] + a * sin_signed[i + 1];
        }
      } else {
        // dim is even and L is even, so a partial tail never splits a pair.
        int64_t i = 0;
        for (; i + L <= dim; i += L) {
          const F a = V::Load(v + i);
          V::Store(v + i, V::Fma(V::SwapPairs(a), V::Load(sin_signed + i),
                                 V::Mul(a, V::Load(cos_dup + i))));
        }
        if (i < dim) {
          const int64_t r = dim - i;
          const F a = V::LoadPartial(v + i, r);
          V::StorePartial(v + i,
                          V::Fma(V::SwapPairs(a), V::LoadPartial(sin_signed + i, r),
                                 V::Mul(a, V::LoadPartial(cos_dup + i, r))),
                          r);
        }
      }
    }
  }

  static ElementwiseKernels Kernels() {
    return ElementwiseKernels{
        .rms_norm = &RmsNorm,
        .add_rms_norm = &AddRmsNorm,
        .silu_mul = &SiluMul,
        .softmax = &Softmax,
        .to_bf16 = &ToBf16,
        .rope = &Rope,
    };
  }
};

}  // namespace
}  // namespace yard::kernels::cpu::internal

#endif  // SWITCHYARD_KERNELS_CPU_ELEMENTWISE_ELEMENTWISE_IMPL_H_
